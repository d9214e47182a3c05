"""The yearly evaluation as people read it: a terminal table that fits 100 columns, a CSV file, one self-contained
HTML report with plotly charts (its JavaScript inlined, nothing fetched), and JSON."""

from __future__ import annotations

import csv
import html
import io
import json
import unicodedata
from dataclasses import asdict, fields
from datetime import date, datetime

from streams.rules.evaluation import Counts, Evaluation, Row

MEASURES = {  # measure -> (terminal heading, full heading, rule)
    "completeness": ("compl", "catalog completeness", "R-14.1"),
    "timeliness": ("timely", "catalog timeliness", "R-14.1"),
    "fulfilment": ("fulfil", "responsibility list fulfilled", "R-13.1"),
    "answers": ("answer", "share requests answered in time", "R-26.1"),
    "quality": ("qual", "data quality", "R-20.1"),
    "share_degree": ("share", "share degree", "R-46.1"),
}
FONTS = "WenQuanYi Micro Hei, Noto Sans CJK SC, Source Han Sans SC, PingFang SC, Microsoft YaHei, sans-serif"
WIDTH = 100


def width(text: str) -> int:
    """Columns a terminal gives the text: two for each wide (CJK) character."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def fit(text: str, cols: int) -> str:
    """The text cut to `cols` terminal columns (with an ellipsis when cut) and padded to them."""
    if width(text) > cols:
        while width(text) > cols - 1:
            text = text[:-1]
        text += "…"
    return text + " " * (cols - width(text))


def clip(text: str, cols: int) -> str:
    """The text cut to `cols` terminal columns."""
    while width(text) > cols:
        text = text[:-1]
    return text


def pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.0f}%"


def _line(rank: str, code: str, name: str, score: str, cat: str, measures: list[str], extra: str) -> str:
    cols = " ".join(f"{m:>6}" for m in measures)
    return f"{rank:>4} {fit(code, 8)} {fit(name, 20)} {score:>5} {cat:>4} {cols} {extra:>6}".rstrip()


def _rows(rows: list[Row], listed: dict[str, int]) -> list[str]:
    out = []
    for r in rows:
        out.append(_line(str(r.rank or "-"), r.code, r.name, "-" if r.score is None else f"{r.score:.1f}",
                         str(r.counts.catalogued), [pct(r.measures[m]) for m in MEASURES],
                         str(listed.get(r.code, "")) if listed.get(r.code) else ""))
    return out


def text(ev: Evaluation) -> str:
    """The terminal table: departments by rank, the counties rolled up, the systems listed, what is not evaluated."""
    header = _line("rank", "code", "department", "score", "cat", [h for h, _, _ in MEASURES.values()], "R-45.1")
    scope = f"{ev.total.name} ({ev.total.code})" if ev.county else "the city and its counties"
    out = [f"govbus evaluation {ev.year}: {scope}, deadlines and periods through {ev.through}", "", header]
    if not ev.has_data:
        return "\n".join([*out[:1], f"nothing recorded for {ev.year}: no catalog, publication or case to evaluate"])
    per_dept: dict[str, int] = {}
    for item in ev.listed:
        per_dept[item.department] = per_dept.get(item.department, 0) + 1
    ranked = [r for r in ev.departments if r.score is not None]
    out += _rows(ranked, per_dept)
    unranked = [r.code for r in ev.departments if r.score is None]
    if unranked:
        out.append(f"     no data in {ev.year}: {', '.join(unranked)}" if len(unranked) <= 6 else
                   f"     {len(unranked)} departments with no data in {ev.year}")
    if ev.counties:
        out += ["", _line("rank", "county", "name", "score", "cat", [h for h, _, _ in MEASURES.values()], "")]
        out += _rows(sorted(ev.counties, key=lambda r: (r.rank is None, r.rank or 0)), {})
    if ev.county is None:  # a county's own total is its row above
        out += _rows([ev.total], {})
    if ev.listed:
        out += ["", "information systems listed under R-45.1 (duplicate collection, one source, sharing):"]
        for item in ev.listed:
            what = [f"{n} {label}" for n, label in ((item.duplicate_subjects, "subjects collected again"),
                                                    (item.one_source_violations, "one-source violations"),
                                                    (item.requests_not_answered_in_time, "requests not answered"))
                    if n]
            out.append(f"  {item.department:8} {item.system_code:12} {', '.join(what)}")
    out += ["", "cat: resources catalogued; compl: catalog completeness, timely: catalog timeliness (R-14.1)",
            "fulfil: responsibility list fulfilled (R-13.1); answer: share requests answered in time (R-26.1)",
            "qual: data quality (R-20.1); share: share degree; score: mean of the measures (R-46.1)",
            "recorded by the bus, not yet evaluated:", *(f"  {n}" for n in ev.notes)]
    return "\n".join(clip(line, WIDTH) for line in out)

# --------------------------------------------------------------------------- CSV and JSON

CSV_COLUMNS = ["year", "kind", "code", "name", "county", "rank", "score", *MEASURES,
               *(f.name for f in fields(Counts))]


def csv_text(ev: Evaluation) -> str:
    """One row per department, then one per county and one for the total; measures in percent, blank where a
    department owed nothing of the kind."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in [*ev.departments, *ev.counties, ev.total]:
        w.writerow([ev.year, r.kind, r.code, r.name, r.county or "", r.rank or "",
                    "" if r.score is None else f"{r.score:.1f}",
                    *("" if r.measures[m] is None else f"{100 * r.measures[m]:.1f}" for m in MEASURES),
                    *(getattr(r.counts, f.name) for f in fields(Counts))])
    return buf.getvalue()


def write_csv(ev: Evaluation, path: str) -> None:
    # with a byte-order mark, so that spreadsheet programs read the Chinese names as UTF-8
    with open(path, "w", encoding="utf-8-sig", newline="") as f:
        f.write(csv_text(ev))


def as_json(ev: Evaluation) -> str:
    def default(v):
        if isinstance(v, (date, datetime)):
            return v.isoformat()
        raise TypeError(type(v).__name__)

    return json.dumps(asdict(ev), ensure_ascii=False, default=default, indent=1)


# --------------------------------------------------------------------------- HTML


def _figure_html(fig) -> str:
    import plotly.io as pio

    fig.update_layout(font={"family": FONTS, "size": 13}, margin={"l": 10, "r": 10, "t": 50, "b": 10},
                      paper_bgcolor="white", plot_bgcolor="white")
    return pio.to_html(fig, include_plotlyjs=False, full_html=False, config={"displaylogo": False,
                                                                            "responsive": True})


def _label(r: Row) -> str:
    return f"{r.name} ({r.code})"


def score_chart(rows: list[Row], title: str):
    """Scores as horizontal bars, the best on top."""
    import plotly.graph_objects as go

    rows = [r for r in rows if r.score is not None]
    fig = go.Figure(go.Bar(x=[r.score for r in rows], y=[_label(r) for r in rows], orientation="h",
                           text=[f"{r.score:.1f}" for r in rows], textposition="auto", marker_color="#1f77b4"))
    fig.update_layout(title=title, height=120 + 32 * len(rows), xaxis={"range": [0, 100], "title": "score"},
                      yaxis={"autorange": "reversed", "automargin": True})
    return fig


def measures_chart(rows: list[Row], title: str):
    """Each measure of each department, grouped by department."""
    import plotly.graph_objects as go

    rows = [r for r in rows if r.score is not None]
    fig = go.Figure()
    for m, (_, full, rule) in MEASURES.items():
        fig.add_bar(name=f"{full} ({rule})", x=[r.code for r in rows], hovertext=[r.name for r in rows],
                    y=[None if r.measures[m] is None else round(100 * r.measures[m], 1) for r in rows])
    fig.update_layout(title=title, barmode="group", height=460, yaxis={"range": [0, 100], "title": "%"},
                      xaxis={"automargin": True}, legend={"orientation": "h", "y": -0.3})
    return fig


def _table(rows: list[Row]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in
                   ["rank", "code", "name", "score", "catalogued", *(f"{f} ({r})" for _, f, r in MEASURES.values()),
                    "late updates", "rejected", "duplicate subjects", "one-source violations", "security incidents"])
    body = []
    for r in rows:
        cells = [r.rank or "-", r.code, r.name, "-" if r.score is None else f"{r.score:.1f}", r.counts.catalogued,
                 *(pct(r.measures[m]) for m in MEASURES), r.counts.late_updates, r.counts.rejected,
                 r.counts.duplicate_subjects, r.counts.one_source_violations, r.counts.security_incidents]
        body.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _section(title: str, rows: list[Row], chart_title: str) -> str:
    parts = [f"<h2>{html.escape(title)}</h2>"]
    if any(r.score is not None for r in rows):
        parts += [_figure_html(score_chart(rows, f"{chart_title}: score")),
                  _figure_html(measures_chart(rows, f"{chart_title}: measures"))]
    else:
        parts.append("<p class='none'>nothing recorded in the year for these departments</p>")
    parts.append(_table(rows))
    return "\n".join(parts)


STYLE = """
body { font-family: %s; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0 2em; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: right; }
td:nth-child(2), td:nth-child(3) { text-align: left; }
td:nth-child(2), td:nth-child(3) { white-space: nowrap; }
th { background: #f0f4f8; }
h2 { border-bottom: 2px solid #1f77b4; padding-bottom: 4px; margin-top: 2em; }
.none { color: #888; }
""" % FONTS


def html_report(ev: Evaluation) -> str:
    """One HTML file: the city's (or the county's) ranking and charts, a section per county, the systems listed
    under R-45.1 and what is not yet evaluated; plotly.js inlined once, nothing fetched."""
    from plotly.offline import get_plotlyjs

    scope = ev.total.name if ev.county else "内江市"
    title = f"{scope} {ev.year} 年度政务数据资源评估 (yearly evaluation, R-46.1)"
    parts = [f"<h1>{html.escape(title)}</h1>",
             f"<p>Deadlines and update-cycle periods through {ev.through}; made by <code>govbus evaluate</code>.</p>"]
    if not ev.has_data:
        parts.append(f"<p class='none'>nothing recorded for {ev.year}: no catalog, publication or case to "
                     "evaluate</p>")
    else:
        parts.append(_section(f"{scope}: departments by rank", ev.departments, scope))
        if len(ev.counties) > 1:
            parts.append(f"<h2>{html.escape(scope)}: counties rolled up</h2>")
            parts.append(_figure_html(score_chart([*ev.counties, ev.total], "counties and the city: score")))
            parts.append(_table([*ev.counties, ev.total]))
        for c in ev.counties:
            rows = [r for r in ev.departments if r.county == c.code]
            parts.append(_section(f"{c.name} ({c.code})", rows, c.name))
        if ev.listed:
            parts.append("<h2>Information systems listed under R-45.1</h2><table><thead><tr><th>department</th>"
                         "<th>system</th><th>subjects collected again</th><th>one-source violations</th>"
                         "<th>share requests not answered in time</th><th>resources</th></tr></thead><tbody>")
            for item in ev.listed:
                cells = [item.department, item.system_code, item.duplicate_subjects, item.one_source_violations,
                         item.requests_not_answered_in_time, ", ".join(item.resources)]
                parts.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
            parts.append("</tbody></table>")
    parts.append("<h2>Recorded by the bus, not yet evaluated</h2><ul>"
                 + "".join(f"<li>{html.escape(n)}</li>" for n in ev.notes) + "</ul>")
    return (f"<!DOCTYPE html>\n<html lang='zh-CN'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style><script>{get_plotlyjs()}</script></head>\n<body>\n" + "\n".join(parts)
            + "\n</body></html>\n")


def write_html(ev: Evaluation, path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(html_report(ev))
