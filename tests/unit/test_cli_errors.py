"""What `govbus` says to a person who typed something wrong: one line naming the mistake and the way out, exit code
1 or 2, never a traceback. (Refusals by the broker: tests/integration/test_cli.py.)"""

import pytest
from click.testing import CliRunner

from ops.cli import main

COMMANDS_TAKING_A_DEPARTMENT = [
    ["feed", "tail", "NJ-XX"],
    ["subscribe", "NJ-XX", "GA-RK-001"],
    ["publish", "--as", "NJ-XX", "--resource", "GA-RK-001", "-"],
    ["catalog", "responsibilities", "NJ-XX"],
    ["deadlines", "list", "--party", "NJ-XX"],
    ["share", "grants", "--grantee", "NJ-XX"],
    ["audit", "what-received", "NJ-XX"],
    ["dept", "credentials", "NJ-XX", "--out", "x.properties"],
]


def govbus(*args: str, env: dict | None = None):
    return CliRunner().invoke(main, list(args), env=env)


@pytest.mark.parametrize("args", COMMANDS_TAKING_A_DEPARTMENT, ids=lambda a: " ".join(a[:2]))
def test_an_unknown_department_is_refused_before_anything_is_looked_up(args):
    out = govbus(*args)
    assert out.exit_code == 2  # click's usage error
    assert "NJ-XX is not a department registered on the bus" in out.output
    assert "Traceback" not in out.output


def test_an_unknown_county_is_refused_with_the_counties_there_are():
    out = govbus("catalog", "list", "--county", "XX")
    assert out.exit_code == 2 and "no county 'XX' in the registry; the counties are" in out.output


@pytest.mark.rule("R-17.2")
def test_an_audit_of_a_subject_no_record_could_be_about_is_refused_with_why():
    out = govbus("audit", "who-received", "--subject", "123")
    assert out.exit_code == 2 and "'123' has 3 characters" in out.output
    assert "the bus takes no record about a subject so written" in out.output


def test_the_rights_of_a_principal_the_registry_does_not_know_are_not_an_empty_list():
    out = govbus("acls", "list", "--principal", "NJ-GAA")
    assert out.exit_code == 1 and "the registry gives no principal 'NJ-GAA' any ACL" in out.output
    assert "did you mean NJ-GA" in out.output
    listed = govbus("acls", "list", "--principal", "NJ-GA")
    assert listed.exit_code == 0 and "User:NJ-GA write topic govbus.publish.NJ-GA" in listed.output


def test_a_misspelled_department_is_answered_with_the_nearest_codes():
    out = govbus("feed", "tail", "nj-gaa")
    assert out.exit_code == 2
    assert "nj-gaa is not a department registered on the bus" in out.output and "did you mean NJ-GA or" in out.output


def test_a_file_that_is_not_there_is_named_in_one_line(tmp_path):
    for path in (tmp_path / "residents.csv", tmp_path):  # missing, and a directory
        out = govbus("publish", "--as", "NJ-GA", "--resource", "GA-RK-001", str(path))
        assert out.exit_code == 1 and isinstance(out.exception, SystemExit)
        assert out.output.startswith(f"Error: {path}: ")
        assert len(out.output.strip().splitlines()) == 1


def test_a_client_properties_file_that_cannot_be_read_is_named_in_one_line(tmp_path):
    missing = tmp_path / "nj-ga.properties"
    out = govbus("subscribe", "NJ-MZ", "GA-RK-001", env={"GOVBUS_KAFKA_CONFIG": str(missing),
                                                           "GOVBUS_KAFKA_BOOTSTRAP": "127.0.0.1:1"})
    assert out.exit_code == 1 and isinstance(out.exception, SystemExit)
    assert f"GOVBUS_KAFKA_CONFIG={missing}" in out.output and "No such file" in out.output
