"""Views of one follower that ask at once share one ListOffsets; a catch-up cancelled before it asked is not joined."""

import asyncio

from topics.views import CompactedView, ViewFollower


def follower_with(views: list[CompactedView]) -> tuple[ViewFollower, list]:
    follower = ViewFollower("127.0.0.1:1", views)  # never started: the end offsets are answered here
    asked: list = []

    async def end_offsets(tps):
        asked.append(sorted(tps))
        return {}

    follower.end_offsets = end_offsets
    return follower, asked


def test_views_asking_in_one_turn_share_one_round_trip_and_both_are_fresh_after_it():
    async def go():
        views = [CompactedView("127.0.0.1:1", t, lambda k, v: None) for t in ("grants", "flags")]
        follower, asked = follower_with(views)
        await asyncio.gather(*(v.ensure_fresh_since(1.0) for v in views))
        assert len(asked) == 1
        assert all(v._fresh_at > 1.0 for v in views)  # noqa: SLF001

    asyncio.run(go())


def test_a_catch_up_cancelled_before_it_asked_is_not_joined():
    async def go():
        view = CompactedView("127.0.0.1:1", "grants", lambda k, v: None)
        follower, asked = follower_with([view])
        first = follower.catch_up(view)
        first.cancel()
        await asyncio.sleep(0)
        again = follower.catch_up(view)
        assert again is not first
        await again
        assert asked == [[]] and view._fresh_at > 0  # noqa: SLF001

    asyncio.run(go())
