"""The broker's ACLs and SCRAM credentials, administered over Kafka's own protocol: `apply_acls` keeps them in step
with the registry (`govbus acls apply`), `issue_password` hands a principal a new password."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from collections.abc import Mapping

from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.admin import (
    CreateAclsRequest_v1,
    DeleteAclsRequest_v1,
    DescribeAclsRequest_v1,
)
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import (
    CompactArray,
    CompactBytes,
    CompactString,
    Int8,
    Int16,
    Int32,
    Schema,
    TaggedFields,
)

from topics.acls import ALLOW, ANY, USER_NAME, Acl, AclReport, managed, plan, wanted_acls
from topics.settings import Settings, kafka_options

log = logging.getLogger("govbus.acls")

SCRAM_SHA_512 = 2  # the mechanism's code in the SCRAM credential requests
ITERATIONS = 8192  # Kafka takes 4096 at least


class AccessError(RuntimeError):
    """The broker refused an ACL or credential change; the message has its reason."""


# ------------------------------------------------------------------ requests aiokafka has no builder for

class _DescribeAcls(Request[DescribeAclsRequest_v1]):
    API_KEY = 29

    def build(self, cls):
        return cls(ANY, None, ANY, None, None, ANY, ANY)


class _CreateAcls(Request[CreateAclsRequest_v1]):
    API_KEY = 30

    def __init__(self, acls: list[Acl]):
        self.acls = acls

    def build(self, cls):
        return cls([(a.resource_type, a.resource_name, a.pattern_type, a.principal, "*", a.operation, ALLOW)
                    for a in self.acls])


class _DeleteAcls(Request[DeleteAclsRequest_v1]):
    API_KEY = 31

    def __init__(self, acls: list[Acl]):
        self.acls = acls

    def build(self, cls):
        return cls([(a.resource_type, a.resource_name, a.pattern_type, a.principal, "*", a.operation, ALLOW)
                    for a in self.acls])


class DescribeUserScramCredentialsResponse_v0(Response):
    API_KEY = 50
    API_VERSION = 0
    SCHEMA = Schema(
        ("throttle_time_ms", Int32), ("error_code", Int16), ("error_message", CompactString("utf-8")),
        ("results", CompactArray(
            ("user", CompactString("utf-8")), ("error_code", Int16), ("error_message", CompactString("utf-8")),
            ("credential_infos", CompactArray(("mechanism", Int8), ("iterations", Int32), ("tags", TaggedFields))),
            ("tags", TaggedFields))),
        ("tags", TaggedFields),
    )


class DescribeUserScramCredentialsRequest_v0(RequestStruct):
    FLEXIBLE_VERSION = True
    API_KEY = 50
    API_VERSION = 0
    RESPONSE_TYPE = DescribeUserScramCredentialsResponse_v0
    SCHEMA = Schema(("users", CompactArray(("name", CompactString("utf-8")), ("tags", TaggedFields))),
                    ("tags", TaggedFields))


class _DescribeScram(Request[DescribeUserScramCredentialsRequest_v0]):
    API_KEY = 50

    def build(self, cls):
        return cls(None, {})  # every user


class AlterUserScramCredentialsResponse_v0(Response):
    API_KEY = 51
    API_VERSION = 0
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("results", CompactArray(("user", CompactString("utf-8")), ("error_code", Int16),
                                 ("error_message", CompactString("utf-8")), ("tags", TaggedFields))),
        ("tags", TaggedFields),
    )


class AlterUserScramCredentialsRequest_v0(RequestStruct):
    FLEXIBLE_VERSION = True
    API_KEY = 51
    API_VERSION = 0
    RESPONSE_TYPE = AlterUserScramCredentialsResponse_v0
    SCHEMA = Schema(
        ("deletions", CompactArray(("name", CompactString("utf-8")), ("mechanism", Int8), ("tags", TaggedFields))),
        ("upsertions", CompactArray(("name", CompactString("utf-8")), ("mechanism", Int8), ("iterations", Int32),
                                    ("salt", CompactBytes), ("salted_password", CompactBytes),
                                    ("tags", TaggedFields))),
        ("tags", TaggedFields),
    )


class _AlterScram(Request[AlterUserScramCredentialsRequest_v0]):
    API_KEY = 51

    def __init__(self, deletions: list[str], upsertions: Mapping[str, str]):
        self.deletions, self.upsertions = deletions, upsertions

    def build(self, cls):
        ups = []
        for name, password in self.upsertions.items():
            salt = secrets.token_bytes(32)
            salted = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, ITERATIONS)
            ups.append((name, SCRAM_SHA_512, ITERATIONS, salt, salted, {}))
        return cls([(n, SCRAM_SHA_512, {}) for n in self.deletions], ups, {})


# ------------------------------------------------------------------ talking to the broker

class BrokerAdmin:
    """A client of the broker for ACLs and credentials, connected with the settings' (an admin's) credentials."""

    def __init__(self, settings: Settings, timeout: float = 30.0):
        self.client = AIOKafkaClient(bootstrap_servers=settings.bootstrap, client_id="govbus-acls",
                                     request_timeout_ms=int(timeout * 1000), **kafka_options(settings))

    async def __aenter__(self) -> BrokerAdmin:
        await self.client.bootstrap()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.client.close()

    async def _send(self, request):
        return await self.client.send(self.client.get_random_node(), request)

    async def acls(self) -> list[Acl]:
        resp = await self._send(_DescribeAcls())
        if resp.error_code:
            raise AccessError(f"the broker does not list its ACLs: {resp.error_message} (error {resp.error_code})")
        return [Acl(principal, rtype, name, ptype, op)
                for rtype, name, ptype, entries in resp.resources
                for principal, _host, op, perm in entries if perm == ALLOW]

    async def create(self, acls: list[Acl]) -> None:
        for i in range(0, len(acls), 500):
            resp = await self._send(_CreateAcls(acls[i:i + 500]))
            failed = [(a, msg) for a, (code, msg) in zip(acls[i:i + 500], resp.creation_responses, strict=True)
                      if code]
            if failed:
                raise AccessError(f"the broker refused ACL {failed[0][0]}: {failed[0][1]}")

    async def delete(self, acls: list[Acl]) -> None:
        for i in range(0, len(acls), 500):
            resp = await self._send(_DeleteAcls(acls[i:i + 500]))
            for code, msg, _ in resp.filter_responses:
                if code:
                    raise AccessError(f"the broker refused to delete ACLs: {msg}")

    async def scram_users(self) -> list[str]:
        resp = await self._send(_DescribeScram())
        if resp.error_code:
            raise AccessError(f"the broker does not list its SCRAM users: {resp.error_message}")
        return [user for user, code, _msg, infos, _tags in resp.results if not code and infos]

    async def alter_scram(self, deletions: list[str] = (), upsertions: Mapping[str, str] | None = None) -> None:
        for name in [*deletions, *(upsertions or {})]:
            if not USER_NAME.match(name):
                raise AccessError(f"{name!r} cannot be a SCRAM user name")
        resp = await self._send(_AlterScram(list(deletions), dict(upsertions or {})))
        for user, code, msg, _tags in resp.results:
            if code:
                raise AccessError(f"credentials of {user} not changed: {msg} (error {code})")


def new_password() -> str:
    return secrets.token_urlsafe(24)


async def issue_passwords(settings: Settings, names: list[str], *, wait: float = 15.0,
                          keep: Mapping[str, str] | None = None) -> dict[str, str]:
    """New passwords for these principals (the old ones stop working), but the one `keep` gives a principal, which is
    set again as it was; returns once the broker takes them."""
    passwords = {name: (keep or {}).get(name) or new_password() for name in names}
    async with BrokerAdmin(settings) as admin:
        await admin.alter_scram(upsertions=passwords)
        # the credential reaches the broker's view through the metadata log: wait until it is listed
        deadline = asyncio.get_running_loop().time() + wait
        while not set(names) <= set(await admin.scram_users()):
            if asyncio.get_running_loop().time() > deadline:
                raise AccessError(f"the broker has not yet taken the credentials of {', '.join(names)}")
            await asyncio.sleep(0.1)
    return passwords


async def _visible(admin: BrokerAdmin, created: set[Acl], deleted: set[Acl], wait: float = 60.0) -> None:
    """Return once the broker's authorizer shows the change: the controller acknowledges it before the broker has
    applied it from the metadata log, and a client right after would still be judged by the old ACLs."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        have = set(await admin.acls())
        if created <= have and not deleted & have:
            return
        if loop.time() > deadline:
            raise AccessError(f"the broker has not applied {len(created - have)} new ACLs after {wait:.0f}s")
        await asyncio.sleep(0.2)


async def grant_acls(settings: Settings, acls: list[Acl]) -> list[Acl]:
    """Create these ACLs where the broker lacks them (a party's, say); returns the new ones once they are in force."""
    async with BrokerAdmin(settings) as admin:
        new = sorted(set(acls) - set(await admin.acls()))
        if new:
            await admin.create(new)
            await _visible(admin, set(new), set())
    for acl in new:
        log.info("ACL created: %s", acl)
    return new


async def apply_acls(settings: Settings, departments: Mapping[str, object] | None = None) -> AclReport:
    """Create the ACLs the registry wants, delete what managed principals hold beyond them, and remove the SCRAM
    credentials of managed principals no longer in the registry. Safe to re-run."""
    from topics.acls import PROCESSES, department_principal, process_principal

    if departments is None:
        from topics.departments import load

        departments = load()
    prefix = settings.topic_prefix
    wanted = wanted_acls(departments, prefix)
    keep = {department_principal(c, prefix) for c in departments} | {process_principal(p, prefix)
                                                                     for p in PROCESSES}
    report = AclReport()
    async with BrokerAdmin(settings) as admin:
        existing = await admin.acls()
        report.created, report.deleted = plan(wanted, existing, prefix)
        report.unchanged = len(wanted) - len(report.created)
        if report.deleted:
            await admin.delete(report.deleted)
        if report.created:
            await admin.create(report.created)
        if report.deleted or report.created:
            await _visible(admin, set(report.created), set(report.deleted))
        report.principals_removed = sorted(u for u in await admin.scram_users() if managed(u, prefix) and u not in keep)
        if report.principals_removed:
            await admin.alter_scram(deletions=report.principals_removed)
    for acl in report.deleted:
        log.info("ACL removed: %s", acl)
    for name in report.principals_removed:
        log.info("credentials removed: %s is no longer in the registry", name)
    return report
