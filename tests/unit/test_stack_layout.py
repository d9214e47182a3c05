"""`govbus up` with a number of brokers the local data was not formatted for (no broker needed: it refuses first)."""

import asyncio

import pytest

from ops.stack import StackError, up
from topics.settings import settings


def test_up_with_another_number_of_brokers_refuses_before_starting_anything(tmp_path, monkeypatch):
    (tmp_path / "kafka" / "data").mkdir(parents=True)
    (tmp_path / "kafka" / "data" / "meta.properties").write_text("node.id=1\n")
    (tmp_path / "kafka" / "brokers").write_text("1\n")
    for name in ("GOVBUS_KAFKA_BOOTSTRAP", "GOVBUS_DATABASE_URL", "GOVBUS_KAFKA_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GOVBUS_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("GOVBUS_KAFKA_BROKERS", "3")
    for name in ("GOVBUS_KAFKA_PORT", "GOVBUS_PG_PORT"):  # none the suite's own stack uses, should it start at all
        monkeypatch.setenv(name, "1")
    s = settings()
    assert s.local_kafka and s.local_postgres
    with pytest.raises(StackError, match="formatted for 1 broker"):
        asyncio.run(up(s))
    assert not (tmp_path / "postgres").exists()  # PostgreSQL was not started for a stack that cannot come up
    assert not (tmp_path / "kafka-2").exists()


def test_down_says_when_nothing_was_running(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from ops.cli import main

    for name in ("GOVBUS_KAFKA_BOOTSTRAP", "GOVBUS_DATABASE_URL", "GOVBUS_KAFKA_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GOVBUS_STATE_DIR", str(tmp_path))
    out = CliRunner().invoke(main, ["down"])
    assert out.exit_code == 0, out.output
    assert out.output == f"nothing was running: the local Kafka and PostgreSQL of {tmp_path} were already stopped\n"
