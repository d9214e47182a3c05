"""The alert rules and the scrape configuration as promtool checks them, and the rules' own unit tests."""

import subprocess
from pathlib import Path

import yaml

from ops.prometheus_server import RULES, config, default_targets
from topics.settings import METRICS_PORTS, REPO_ROOT

PROM = REPO_ROOT / "ops" / "prometheus"
PROMTOOL = Path("/usr/bin/promtool")


def promtool(*args: str) -> subprocess.CompletedProcess:
    assert PROMTOOL.exists(), "promtool is missing: `make install` brings Debian's prometheus package"
    return subprocess.run([str(PROMTOOL), *args], capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)


def alert_rules() -> list[dict]:
    rules = yaml.safe_load(RULES.read_text())
    return [r for g in rules["groups"] for r in g["rules"] if "alert" in r]


def test_scrape_configuration_is_valid():
    res = promtool("check", "config", str(PROM / "prometheus.yml"))
    assert res.returncode == 0, res.stdout + res.stderr


def test_alert_rules_are_valid():
    res = promtool("check", "rules", str(RULES))
    assert res.returncode == 0, res.stdout + res.stderr


def test_alert_rules_pass_their_unit_tests():
    res = promtool("test", "rules", str(PROM / "alerts_test.yml"))
    assert res.returncode == 0, res.stdout + res.stderr


def test_every_alert_has_a_firing_and_a_quiet_case():
    cases = yaml.safe_load((PROM / "alerts_test.yml").read_text())
    firing, quiet = set(), set()
    for group in cases["tests"]:
        for case in group.get("alert_rule_test", []):
            (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    names = {r["alert"] for r in alert_rules()}
    assert names - firing == set(), "alerts never shown firing in alerts_test.yml"
    assert names - quiet == set(), "alerts never shown quiet in alerts_test.yml"
    assert (firing | quiet) - names == set(), "alerts_test.yml tests alerts that alerts.yml lacks"


def test_every_alert_tells_the_operator_what_it_means_and_what_to_do():
    for rule in alert_rules():
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        assert rule["annotations"]["summary"].strip(), rule["alert"]
        assert len(rule["annotations"]["description"].split()) >= 20, rule["alert"]


def test_the_generated_configuration_is_the_shipped_one(tmp_path, monkeypatch):
    for var, _ in METRICS_PORTS.values():
        monkeypatch.delenv(var, raising=False)
    shipped = yaml.safe_load((PROM / "prometheus.yml").read_text())
    generated = config(default_targets())
    assert generated["global"] == shipped["global"]
    assert generated["scrape_configs"] == shipped["scrape_configs"]
    assert [Path(p) for p in generated["rule_files"]] == [PROM / p for p in shipped["rule_files"]]
    # a test's own Prometheus scrapes faster than Prometheus's default timeout allows
    fast = tmp_path / "prometheus.yml"
    fast.write_text(yaml.safe_dump(config([("govbus-ledger", 9465)], scrape_interval=1, evaluation_interval=0.5)))
    res = promtool("check", "config", str(fast))
    assert res.returncode == 0, res.stdout + res.stderr
