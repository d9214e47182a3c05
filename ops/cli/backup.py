"""`govbus backup DIR` and `govbus restore DIR` (R-42.1, R-44.1)."""

from __future__ import annotations

from pathlib import Path

import click

from ops.cli import common
from topics.settings import settings


def _run(coro):
    from ops.backup import BackupError

    try:
        return common.run(coro)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None


@click.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def backup(directory: Path) -> None:
    """A consistent snapshot in DIRECTORY: the database, the compacted state topics and the bus's consumer
    positions, with a manifest of checksums; registered in the ledger. The bus may go on running."""
    from ops.backup import backup as take

    b = _run(take(settings(), directory))
    topics = b.manifest["topics"]
    records = sum(t["records"] for t in topics.values())
    click.echo(f"{b.backup_id}: {len(topics)} state topics ({records} records), database, "
               f"{sum(len(t) for g in b.manifest['groups'].values() for t in g.values())} consumer positions")
    click.echo(f"manifest {b.directory / 'manifest.json'} sha256 {b.manifest_sha256}")


@click.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
def restore(directory: Path) -> None:
    """Rebuild a fresh stack from the backup in DIRECTORY: the database, the state topics that were lost, and
    the bus's consumer positions, so the log since the snapshot is replayed when `govbus run` starts."""
    from ops import stack
    from ops.backup import restore as rebuild

    s = common.run(stack.up(settings()))
    r = _run(rebuild(s, directory))
    click.echo(f"restored {r.backup_id}: database and ledger chains to "
               + (", ".join(f"{t} #{h[0]}" for t, h in r.chain_heads.items()) or "no rows"))
    for topic, n in r.topics_loaded.items():
        click.echo(f"  {topic}: {n} records written back")
    for topic in r.topics_kept:
        click.echo(f"  {topic}: still there, kept as it is")
    for group, n in r.groups.items():
        click.echo(f"  {group}: {n} positions put back to the snapshot's")
    click.echo("start the bus (govbus run): it replays the log since the snapshot; what the ledger and the feeds'"
               " readers already have is dropped by its event id")
