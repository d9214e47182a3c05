"""Replication as declared in topics/: three copies and two in sync in production, scaled down to smaller clusters,
and a cluster's size counted with the brokers that are down for the moment."""

import pytest

from topics.admin import cluster_size, new_topic, wanted_configs
from topics.departments import load
from topics.registry import MIN_INSYNC_REPLICAS, REPLICATION_FACTOR, Replication, all_topics, replication


@pytest.mark.parametrize(("brokers", "factor", "min_insync"), [(1, 1, 1), (2, 2, 1), (3, 3, 2), (5, 3, 2)])
def test_replication_scales_down_to_the_cluster(brokers, factor, min_insync):
    assert replication(brokers) == Replication(factor, min_insync)


def test_every_topic_is_declared_with_the_production_replication():
    assert (REPLICATION_FACTOR, MIN_INSYNC_REPLICAS) == (3, 2)
    for spec in all_topics(load()):
        assert spec.replication(3) == Replication(3, 2), spec.name


def test_a_new_topic_is_created_with_the_replication_of_its_cluster():
    spec = all_topics(load())[0]
    topic = new_topic("x", spec, 3)
    assert topic.replication_factor == 3 and topic.topic_configs["min.insync.replicas"] == "2"
    assert wanted_configs(spec, 1)["min.insync.replicas"] == "1"


def test_a_broker_that_is_down_still_counts_in_the_cluster():
    up = {"brokers": [{"node_id": 1}, {"node_id": 3}]}
    described = [{"topic": "t", "partitions": [{"replicas": [1, 2, 3]}, {"replicas": [3, 1, 2]}]}]
    assert cluster_size(up, described) == 3
    assert cluster_size(up, []) == 2
    assert cluster_size({"brokers": []}, []) == 1
