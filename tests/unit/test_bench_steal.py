"""The steal share the benches report beside each timed run: the host's time given to others, out of the machine's."""

from ops.bench.pipeline import stolen


def test_steal_is_the_share_of_all_cpu_time_between_two_readings():
    # user nice system idle iowait irq softirq steal guest guest_nice
    before = [100, 0, 50, 800, 10, 0, 5, 35, 40, 0]
    after = [160, 0, 70, 900, 10, 0, 5, 55, 70, 0]  # 200 ticks more, 20 of them stolen; guest is inside user
    assert stolen(before, after) == 20 / 200


def test_no_time_between_readings_is_no_steal():
    same = [1, 2, 3, 4, 5, 6, 7, 8, 0, 0]
    assert stolen(same, same) == 0.0
