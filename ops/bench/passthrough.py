"""The baseline of `govbus bench pipeline`: the best pass-through a Python aiokafka process can do, in a process
of its own. It reads a batch, appends every record to each output topic as record batches per partition (the
delivery stream's streams.outputs.Outputs, through as many producers as the worker), keeps batches in flight while
the broker acknowledges them (acks=all), and commits a batch's offsets once it and every batch before it are
acknowledged: the pipeline's guarantee.

    python -m ops.bench.passthrough SOURCE[,SOURCE...] GROUP READY_FILE OUTPUT...

It reads as many input topics as the delivery stream does (one per department and the operators' one), so that
both pay the same for fetching from the same number of partitions.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from aiokafka import AIOKafkaConsumer
from aiokafka.abc import ConsumerRebalanceListener

from streams.outputs import Outputs, key_hash, lanes
from topics.fetch_sessions import use_fetch_sessions
from topics.registry import FEED_PARTITIONS
from topics.settings import kafka_options, settings

MAX_BATCH = 2000
MAX_IN_FLIGHT = 4


class Ready(ConsumerRebalanceListener):
    def __init__(self, path: Path):
        self.path = path

    async def on_partitions_revoked(self, revoked) -> None:
        pass

    async def on_partitions_assigned(self, assigned) -> None:
        if assigned:
            self.path.write_text(",".join(str(tp.partition) for tp in sorted(assigned)))


async def passthrough(sources: list[str], group: str, ready: Path, outputs: list[str], stop: asyncio.Event) -> None:
    s = settings()
    consumer = AIOKafkaConsumer(bootstrap_servers=s.bootstrap, **kafka_options(s), group_id=group,
                                enable_auto_commit=False, auto_offset_reset="earliest", max_poll_records=MAX_BATCH,
                                fetch_max_bytes=16 * 1024 * 1024)
    producers = lanes(s.bootstrap, kafka_options(s))  # the worker's own
    partitions = dict.fromkeys(outputs, FEED_PARTITIONS)
    for producer in producers:
        await producer.start()
    await consumer.start()
    use_fetch_sessions(consumer)  # as the worker's
    consumer.subscribe(sources, listener=Ready(ready))
    inflight: list[asyncio.Task] = []
    acked: dict = {}
    committing = asyncio.Lock()  # as the worker's: one commit on its way, what is acknowledged meanwhile next

    async def finish(acks: asyncio.Future, commit: dict, before: asyncio.Task | None) -> None:
        await acks
        if before is not None:
            await before
        acked.update(commit)
        async with committing:
            if acked:
                offsets = dict(acked)
                acked.clear()
                await consumer.commit(offsets)

    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=200)
            if not batches:
                continue
            out = Outputs(producers, partitions)
            for recs in batches.values():
                for r in recs:
                    h = key_hash(r.key)
                    for t in outputs:
                        out.add(t, r.key, r.value, hashed=h)
            inflight = [t for t in inflight if not t.done()]
            if len(inflight) >= MAX_IN_FLIGHT:
                await inflight[0]
            acks = await out.submit()
            commit = {tp: recs[-1].offset + 1 for tp, recs in batches.items()}
            inflight.append(asyncio.create_task(finish(acks, commit, inflight[-1] if inflight else None)))
        for t in inflight:
            await t
    finally:
        await consumer.stop()
        for producer in producers:
            await producer.stop()


def main(argv: list[str]) -> None:
    source, group, ready, *outputs = argv

    async def go():
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await passthrough(source.split(","), group, Path(ready), outputs, stop)

    asyncio.run(go())


if __name__ == "__main__":
    main(sys.argv[1:])
