"""The Grafana dashboard and the alert rules query only metrics that govbus's processes export, in PromQL
that Prometheus parses."""

import json
import re
import subprocess
from pathlib import Path

import yaml
from prometheus_client import REGISTRY

import topics.metrics  # noqa: F401  (registers every family govbus exports)
from topics.settings import REPO_ROOT

DASHBOARD = REPO_ROOT / "ops" / "grafana" / "govbus.json"
RULES = REPO_ROOT / "ops" / "prometheus" / "alerts.yml"
PROMTOOL = Path("/usr/bin/promtool")

SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "and", "or",
                "unless", "inf", "nan"}
# Grafana's own variables, as Prometheus would see them once Grafana has put in a value
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


def exported() -> set[str]:
    names = {"up"}  # Prometheus's own, one per scrape target
    for family in REGISTRY.collect():
        names.update(family.name + s for s in SUFFIXES.get(family.type, ("",)))
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, keywords, labels and durations left out)."""
    e = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`', '""', expr)
    e = re.sub(r"\$\{?\w+\}?", "", e)
    e = re.sub(r"\{[^}]*\}", "", e)
    e = re.sub(r"\[[^\]]*\]", "", e)
    e = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", e)
    found = re.findall(r"(?<![\w.:])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()", e)
    return set(found) - PROMQL_WORDS


def panels(items: list[dict]):
    for p in items:
        yield p
        yield from panels(p.get("panels", []))


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def dashboard_exprs() -> list[tuple[str, str]]:
    return [(p["title"], t["expr"]) for p in panels(dashboard()["panels"]) for t in p.get("targets", [])]


def rule_exprs() -> list[tuple[str, str]]:
    rules = yaml.safe_load(RULES.read_text())
    return [(r.get("alert") or r["record"], r["expr"]) for g in rules["groups"] for r in g["rules"]]


def test_metric_names_are_read_from_promql():
    assert metric_names('sum by (code) (rate(govbus_rejects_total{code="a b"}[5m])) > 3 * up offset 1h') == {
        "govbus_rejects_total", "up"}
    assert metric_names("histogram_quantile(0.99, sum by (le) (rate(x_bucket[$__rate_interval])))") == {"x_bucket"}
    assert metric_names("time() - max(last_seconds) > 1e3 and on () sum(lag) > 0") == {"last_seconds", "lag"}


def test_an_unknown_metric_is_caught():
    assert metric_names("rate(govbus_records_inn_total[5m])") - exported() == {"govbus_records_inn_total"}
    # a family's bare name is not what a counter exports
    assert "govbus_rejects" not in exported()
    assert {"govbus_rejects_total", "govbus_delivery_latency_seconds_bucket", "govbus_consumer_lag_records"} \
        <= exported()


def test_dashboard_and_alerts_name_only_exported_metrics():
    known = exported()
    unknown = {}
    for where, expr in dashboard_exprs() + rule_exprs():
        names = metric_names(expr)
        assert names, f"{where}: no metric found in {expr!r}"
        if names - known:
            unknown[where] = sorted(names - known)
    assert unknown == {}


def test_dashboard_queries_parse(tmp_path):
    def grafana_free(expr: str) -> str:
        for var, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(var, value)
        return expr

    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"govbus_dashboard:panel_{i}", "expr": grafana_free(expr)}
        for i, (_, expr) in enumerate(dashboard_exprs())]}]}
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump(rules, allow_unicode=True))
    assert PROMTOOL.exists(), "promtool is missing: `make install` brings Debian's prometheus package"
    res = subprocess.run([str(PROMTOOL), "check", "rules", str(path)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr


def test_dashboard_rows_and_datasource():
    d = dashboard()
    assert d["schemaVersion"] >= 39
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    rows = [p["title"] for p in d["panels"] if p["type"] == "row"]
    for want in ("Processes", "Flow", "Lag", "Rejects and alerts", "Deadlines", "Sinks"):
        assert want in rows
    every = list(panels(d["panels"]))
    assert len({p["id"] for p in every}) == len(every)
    for p in every:
        if p["type"] != "row":
            assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
            assert all(t["datasource"] == p["datasource"] for t in p["targets"]), p["title"]
