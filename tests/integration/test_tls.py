"""The local broker with TLS on its client listener (GOVBUS_KAFKA_TLS=1): SASL_SSL with a CA the stack makes,
taken by aiokafka and by kcat from the properties files the stack writes; plaintext and unknown CAs refused."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from dataclasses import replace

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaConnectionError

from ops.stack import LocalKafka
from tests.helpers import connects
from topics.admin import writable
from topics.settings import KafkaSecurity, kafka_options, kafka_security, settings

pytestmark = pytest.mark.integration
KCAT = shutil.which("kcat")


@pytest.fixture(scope="module")
async def tls_broker(tmp_path_factory):
    """A broker of its own (beside the suite's), its client listener on TLS."""
    base = settings()
    s = replace(base, state_dir=tmp_path_factory.mktemp("tls"), kafka_port=base.kafka_port + 10,
                kafka_bootstrap=None, kafka_tls=True)
    kafka = LocalKafka(s)
    await kafka.start()
    try:
        yield replace(s, kafka_security=kafka.admin_security()), kafka
    finally:
        await kafka.stop()


@pytest.mark.rule("R-39.1")
async def test_records_travel_over_tls_and_nothing_else_connects(tls_broker):
    s, kafka = tls_broker
    assert s.kafka_security.protocol == "SASL_SSL" and s.kafka_security.ca_file == str(kafka.ca_file)
    ca = kafka.ca_file.read_text()
    assert ca.startswith("-----BEGIN CERTIFICATE-----") and "PRIVATE KEY" not in ca
    assert (kafka.server_pem.stat().st_mode & 0o077) == 0  # the broker's key is its owner's alone

    admin = AIOKafkaAdminClient(bootstrap_servers=s.bootstrap, **kafka_options(s))
    await admin.start()
    try:
        await admin.create_topics([NewTopic("tls.check", 1, 1)])
        await writable(admin, ["tls.check"])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=s.bootstrap, acks="all", **kafka_options(s))
    await producer.start()
    try:
        await producer.send_and_wait("tls.check", b"over tls", key=b"k")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=s.bootstrap, auto_offset_reset="earliest", **kafka_options(s))
    await consumer.start()
    try:
        tp = TopicPartition("tls.check", 0)
        consumer.assign([tp])
        got = []
        for _ in range(20):
            got += (await consumer.getmany(tp, timeout_ms=500)).get(tp, [])
            if got:
                break
        assert [r.value for r in got] == [b"over tls"]
    finally:
        await consumer.stop()

    # the same credentials without TLS do not get in, nor does TLS against a CA that did not sign the broker
    plain = replace(s, kafka_security=replace(s.kafka_security, protocol="SASL_PLAINTEXT", ca_file=None))
    assert not await connects(plain)
    unknown_ca = replace(s, kafka_security=replace(s.kafka_security, ca_file=None))  # the system's CAs only
    with pytest.raises((KafkaConnectionError, ssl.SSLError)):
        client = AIOKafkaClient(bootstrap_servers=s.bootstrap, request_timeout_ms=5000, **kafka_options(unknown_ca))
        try:
            await client.bootstrap()
        finally:
            await client.close()


async def test_the_stacks_properties_files_carry_the_ca_for_kcat_and_for_govbus(tls_broker, tmp_path):
    s, kafka = tls_broker
    java = (s.state_dir / "admin.properties").read_text()
    assert "security.protocol=SASL_SSL" in java and f"ssl.truststore.location={kafka.ca_file}" in java
    assert "ssl.truststore.type=PEM" in java
    rdkafka = s.state_dir / "admin.librdkafka.properties"
    assert f"ssl.ca.location={kafka.ca_file}" in rdkafka.read_text()

    # govbus's own clients take the Java file as they are (GOVBUS_KAFKA_CONFIG)
    sec = kafka_security({"GOVBUS_KAFKA_CONFIG": str(s.state_dir / "admin.properties")})
    assert sec == KafkaSecurity("SASL_SSL", "SCRAM-SHA-512", s.kafka_security.username, s.kafka_security.password,
                                str(kafka.ca_file))
    assert await connects(replace(s, kafka_security=sec))

    # kcat with the librdkafka file: metadata and a round trip over TLS
    listed = subprocess.run([KCAT, "-F", str(rdkafka), "-L", "-m", "10"], capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert f"127.0.0.1:{s.kafka_port}" in listed.stdout
    # the topic is not there and the broker creates none by itself: kcat must say so, over TLS (after waiting 1 s
    # for the topic to appear, not librdkafka's default 30)
    sent = subprocess.run([KCAT, "-F", str(rdkafka), "-X", "topic.metadata.propagation.max.ms=1000", "-P", "-t",
                           "tls.kcat", "-m", "10"], input="from kcat\n", capture_output=True, text=True, timeout=60)
    assert sent.returncode != 0 and "Unknown topic" in sent.stderr, sent.stderr
    admin = AIOKafkaAdminClient(bootstrap_servers=s.bootstrap, **kafka_options(s))
    await admin.start()
    try:
        await admin.create_topics([NewTopic("tls.kcat", 1, 1)])
        await writable(admin, ["tls.kcat"])
    finally:
        await admin.close()
    sent = subprocess.run([KCAT, "-F", str(rdkafka), "-P", "-t", "tls.kcat", "-m", "10"], input="from kcat\n",
                          capture_output=True, text=True, timeout=60)
    assert sent.returncode == 0, sent.stderr
    read = subprocess.run([KCAT, "-F", str(rdkafka), "-C", "-t", "tls.kcat", "-o", "beginning", "-e", "-m", "10"],
                          capture_output=True, text=True, timeout=60)
    assert read.returncode == 0 and read.stdout.strip() == "from kcat", read.stderr

    # a kcat without the CA is refused by its own certificate check
    no_ca = tmp_path / "no-ca.properties"
    no_ca.write_text("\n".join(line for line in rdkafka.read_text().splitlines() if not line.startswith("ssl.")))
    refused = subprocess.run([KCAT, "-F", str(no_ca), "-L", "-m", "5"], capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "certificate verify failed" in refused.stderr
