"""The ledger's topics come from the registry: a renamed or added topic cannot silently drop out."""

import re

from consumers.ledger import WRITERS, ledger_pattern
from topics import registry
from topics.departments import load


def test_the_ledger_reads_exactly_the_recorded_topics():
    pattern = re.compile(ledger_pattern("p."))
    for spec in registry.all_topics(load()):
        assert bool(pattern.match("p." + spec.name)) is spec.recorded, spec.name
        assert not pattern.match(spec.name)  # another deployment's topics are not this one's
        if spec.recorded:
            assert spec.value_schema in WRITERS, f"the ledger has no table for {spec.value_schema}"
    assert not pattern.match("p.govbus.deliveries")  # what is not yet accepted is not recorded
