"""`govbus open ...`: the open catalog (R-30.1), as JSON or as DCAT JSON-LD for portals that harvest it, and a
party's open feed read as the open-data SDK reads it."""

from __future__ import annotations

import json

import click

from ops.cli import common
from topics.settings import settings


@click.group("open")
def open_() -> None:
    """Open data (Ch. 5): the open catalog and the open feeds."""


def _open_entries() -> list[dict]:
    """The open catalog as published on its stream, which departments and parties alike may read."""
    from schemas.codec import default_codec
    from topics import registry
    from topics.views import snapshot

    s = settings()
    codec = default_codec()
    latest = common.run(snapshot(s.bootstrap, registry.name_of(registry.OPEN_CATALOG, s.topic_prefix)))
    return [codec.decode(v, "govbus.catalog.CatalogEntry").record for v in latest.values()]


@open_.command("catalog")
@click.option("--format", "fmt", type=click.Choice(("text", "json", "dcat")), default="text", show_default=True,
              help="text for people, json (one object per resource) or dcat (JSON-LD in the DCAT vocabulary, for "
                   "CKAN's DCAT harvester and the like).")
@click.option("--base-uri", default="urn:govbus:", show_default=True,
              help="What the DCAT identifiers of the catalog, its datasets and departments start with.")
def open_catalog(fmt: str, base_uri: str) -> None:
    """The open catalog: every approved resource whose open attribute is unconditional or conditional, with its
    items and how each is desensitized (R-29.1, R-30.1)."""
    from streams.rules.opening import dcat_catalog, open_catalog_json
    from topics import registry
    from topics.departments import load

    departments = load()
    names = {code: d.name for code, d in departments.items()}
    entries = _open_entries()
    if fmt == "dcat":
        s = settings()
        authority = next((code for code, d in departments.items() if d.kind == "authority"), None)

        def access_url(entry: dict) -> str:
            topic = registry.name_of(registry.OPEN_FEED, s.topic_prefix) \
                if entry["entry"]["open_attribute"] == "unconditional" else f"{s.topic_prefix}govbus.open.party.<party>"
            return f"kafka://{s.bootstrap.split(',')[0]}/{topic}"

        doc = dcat_catalog(entries, names, base=base_uri, title="政务数据开放目录", publisher=authority,
                           access_url=access_url)
        click.echo(json.dumps(doc, ensure_ascii=False, indent=2))
        return
    rows = open_catalog_json(entries, names)
    if fmt == "json":
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not rows:
        click.echo("the open catalog is empty: no approved resource is open")
    for r in rows:
        conditions = f" ({r['open_conditions']})" if r["open_conditions"] else ""
        click.echo(f"{r['resource_code']}  {r['name']}  {r['provider']} {r['provider_name']}  "
                   f"{r['open_label']}{conditions}  v{r['version']}")
        for i in r["data_items"]:
            click.echo(f"    {i['name']} ({i['type']}{', personal' if i['personal'] else ''}): {i['open_treatment']}")
        click.echo(f"    {r['how_to_receive']}")


@open_.group("feed")
def open_feed() -> None:
    """A party's open feed."""


@open_feed.command("tail")
@click.argument("party")
@click.option("--group", default=None, help="Consumer group, under the party's own prefix, to go on from where it "
                                            "last committed (default: none; everything from the start, nothing "
                                            "committed).")
@click.option("--limit", type=int, default=0, help="Stop after this many records.")
def open_feed_tail(party: str, group: str | None, limit: int) -> None:
    """Print what PARTY receives as open data, as it arrives: the unconditionally open data and its approved
    conditionally open data, desensitized, each with its source department and retrieval date. Run it with the
    party's credentials (GOVBUS_KAFKA_CONFIG, from `govbus party credentials`)."""
    from consumers.open_feed import OpenFeed
    from ops.display import format_open_record
    common.tail_feed(OpenFeed(party, group_id=group, commits=group is not None), format_open_record, limit)
