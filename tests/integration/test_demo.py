"""`govbus run`'s demo, as a newcomer watches it: a citizen's verification case from the request to the correction
arriving on the feed of the department that had the old value, and nothing on the console an operator must fear."""

import re

import pytest

from ops.demo import SHARE_RESOURCE, VERIFIED_SUBJECT
from tests.helpers import Run, eventually

pytestmark = pytest.mark.integration
LEVELS = re.compile(r"\b(ERROR|WARNING|CRITICAL)\b|Traceback")


@pytest.mark.rule("R-19.1")
@pytest.mark.rule("R-19.2")
async def test_the_demo_shows_a_verification_from_request_to_the_correction_on_the_feed(bus, tmp_path):
    run = Run(bus, tmp_path, demo=True)
    feed_line = re.compile(rf"\[feed NJ-YB\] .* {SHARE_RESOURCE} {VERIFIED_SUBJECT} \{{(?P<items>[^}}]*)\}}.*")

    def lines(marker: str) -> list[str]:
        return [m.group(0) for m in feed_line.finditer(run.output()) if marker in m.group(0)]

    async def corrected():
        return lines("corrects ")

    try:
        (correction, *_) = await eventually(corrected, timeout=300, interval=1) or [None]
        assert correction is not None, run.output()[-4000:]
        assert "保障类别=城市低保" in correction and "[correction: " in correction
        flagged = lines("[under_verification: ")
        assert flagged and all("保障类别=农村低保" in line for line in flagged)  # the old value, flagged, not held
        out = run.output()
        assert "registers on the portal" in out and "asks WY-MZ to verify" in out
        assert re.search(r"answered by WY-MZ \(熊燕\)\s+-> corrected", out)
        assert not LEVELS.search(out), out
    finally:
        run.stop()
