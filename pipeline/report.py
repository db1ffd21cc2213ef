"""`report.html` and `report.md`: what a run did, for the people who read it in the morning.

Every figure comes from the run's warehouse (the summary view and report.sql), so the
report, the warehouse and the files can never disagree. The HTML is one self-contained
file: inline CSS and inline SVG charts drawn here, no script, font or image from anywhere,
so it opens offline and in a mail client's preview. The Markdown carries the same
headlines as text for chat or email.
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from pipeline import db, failpoints, history, warehouse, zones
from pipeline.context import RunContext
from pipeline.errors import ConfigError
from pipeline.runfolder import MANIFEST

HTML_FILE = "report.html"
MARKDOWN_FILE = "report.md"
# What the report stage writes (warehouse first: the reports are read from it).
FILES = (warehouse.FILE, HTML_FILE, MARKDOWN_FILE)
NEEDS = {
    "issuance_by_campaign": "plan",
    "exceptions_by_category": "exceptions",
    "redemptions_per_day": "matches",
    "top_exceptions": "exceptions",
    "rejects_summary": "rejects",
    "push_by_kind": "push_results",
    "push_to_review": "push_results",
}
RECENT_RUNS = 7  # runs shown beside tonight
PALETTE = ("#2f6fb0", "#e07b39", "#3a9a5b", "#c4424a", "#8a63b8", "#8c6d4f", "#d36fb2", "#7a7a7a", "#b5b233", "#33aab8")


@dataclass
class Figures:
    """Everything the report shows, read from the warehouse."""

    manifest: dict
    summary: list[tuple[str, str, int]]
    parts: dict[str, tuple[list[str], list[tuple]]] = field(default_factory=dict)
    timezone: str = "UTC"
    history: list[dict] = field(default_factory=list)  # recent runs of the state folder, this one last

    def metric(self, area: str, name: str) -> int | None:
        return next((v for a, m, v in self.summary if a == area and m == name), None)


def run(context: RunContext) -> list[str]:
    """The report stage of a run: warehouse, report.html and report.md, listed in the manifest.

    Two commits: the warehouse, then the reports read from it (each is complete alone).
    """
    started = time.perf_counter()
    with context.progress.stage("report", 2) as step:
        step("warehouse")
        listed = [path for path in context.outputs if path not in FILES]
        warehouse.build(context.out_dir, listed, target=context.staged_path(warehouse.FILE))
        context.stage_output(warehouse.FILE, None)
        context.commit("report", _record(started, [warehouse.FILE]), replaces=(warehouse.FILE,))
        step("report.html and report.md")
        figures = gather(context.out_dir, context.manifest())
        for name, render in ((HTML_FILE, render_html), (MARKDOWN_FILE, render_markdown)):
            context.staged_path(name).write_text(render(figures), encoding="utf-8")
            context.stage_output(name, None)
        failpoints.reach("report_staged")
        context.commit("report", _record(started, list(FILES)), replaces=(HTML_FILE, MARKDOWN_FILE))
    return list(FILES)


def _record(started: float, outputs: list[str]) -> dict:
    return {"seconds": round(time.perf_counter() - started, 3), "outputs": outputs}


def rebuild(run_dir: Path) -> list[str]:
    """`omneo-bulk report`: rebuild the warehouse and reports of a run from its manifest.

    The run itself is left as it was: its id, clock and status.
    """
    if not (run_dir / MANIFEST).is_file():
        raise ConfigError(f"{run_dir / MANIFEST}: no manifest here; is {run_dir} a run folder?")
    context = RunContext(out_dir=run_dir, keeps_run=True)
    try:
        context.open()
        return run(context)
    finally:
        context.close()


def gather(run_dir: Path, manifest: dict) -> Figures:
    con = warehouse.connect(run_dir)
    try:
        views = {name for (name,) in db.rows(con, "SELECT view_name FROM duckdb_views() WHERE NOT internal")}
        settings = manifest.get("settings", {})
        figures = Figures(manifest, db.rows(con, "SELECT area, metric, value FROM summary"),
                          timezone=settings.get("default_timezone", "UTC"))
        last_day = zones.local_date(datetime.fromisoformat(manifest["as_of"]), figures.timezone)
        params = {"redemptions_per_day": {"timezone": figures.timezone, "last_day": last_day}}
        for name, sql in db.sql_parts("report").items():
            if NEEDS[name] in views:
                result = con.execute(sql, params.get(name))
                columns = [d[0] for d in result.description]
                figures.parts[name] = (columns, result.fetchall())
        figures.history = _history(manifest)
        _history_parts(figures)
        return figures
    finally:
        con.close()


def _history(manifest: dict) -> list[dict]:
    """The runs recorded before this one in its state folder, and this one (last)."""
    issued = next((s for s in manifest.get("stages", []) if s.get("stage") == "issue"), {})
    if not issued.get("state"):
        return []
    state_dir = Path(issued["state"])
    tonight = [e for e in history.entries(state_dir) if e.get("run_id") == manifest["run_id"]]
    return history.before(state_dir, manifest["run_id"], RECENT_RUNS) + tonight


def _history_parts(figures: Figures) -> None:
    """Tonight beside the recent runs, and what changed per campaign since the last run."""
    runs = figures.history
    if not runs:
        return
    tonight = runs[-1]["run_id"] == figures.manifest["run_id"]
    figures.parts["recent_runs"] = (["label", "series", "value"], [
        (("tonight " if tonight and i == len(runs) - 1 else "") + e["as_of"][:10], "benefits issued", e["benefits"])
        for i, e in enumerate(runs)])
    if tonight and len(runs) > 1:
        last, now = runs[-2].get("campaigns", {}), runs[-1].get("campaigns", {})
        rows = [(campaign, last.get(campaign, 0), now.get(campaign, 0), now.get(campaign, 0) - last.get(campaign, 0),
                 "new" if campaign not in last else "gone" if campaign not in now else "")
                for campaign in sorted(set(last) | set(now))]
        figures.parts["campaign_changes"] = (["campaign", "last run", "tonight", "change", "note"], rows)


# HTML -----------------------------------------------------------------------------------

CSS = """
:root { --ink:#1d2733; --muted:#5b6773; --line:#d9dee4; --card:#f5f7f9; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
       margin: 0 auto; max-width: 1080px; padding: 24px; }
h1 { font-size: 24px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 32px 0 8px; }
.meta { color: var(--muted); margin: 0 0 16px; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: 10px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; }
.card .value { font-size: 24px; font-weight: 650; } .card .name { color: var(--muted); font-size: 13px; }
.card.alert .value { color: #c4424a; }
figure.chart { margin: 8px 0 0; } figure.chart svg { display: block; width: 100%; height: auto; }
figcaption { color: var(--muted); font-size: 13px; }
.legend span { display: inline-block; margin-right: 14px; font-size: 13px; }
.legend i { display: inline-block; width: 11px; height: 11px; border-radius: 2px; margin-right: 5px; vertical-align: -1px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; margin-top: 6px; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--card); } td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.empty { color: var(--muted); font-style: italic; }
footer { color: var(--muted); font-size: 12px; margin-top: 40px; }
"""


def render_html(figures: Figures) -> str:
    manifest = figures.manifest
    e = html.escape
    body = [
        f"<h1>omneo-bulk run {e(manifest['run_id'])}</h1>",
        f"<p class=\"meta\">As of {e(manifest['as_of'])} · version {e(manifest.get('version', ''))} · "
        f"stages: {e(_stage_times(manifest))}</p>",
        "<section id=\"headlines\"><h2>Headlines</h2><div class=\"cards\">",
        *(_card(name, value, alert) for name, value, alert in headlines(figures)),
        "</div></section>",
        _section("issuance", "Issuance per campaign",
                 "Profiles considered per campaign: issued, or the first skip reason.",
                 _bars_chart("issuance", figures.parts.get("issuance_by_campaign"))),
        _section("exceptions", "Exceptions per category",
                 "Reconciliation findings per category, split by the action they call for.",
                 _bars_chart("exceptions", figures.parts.get("exceptions_by_category"))),
        _section("redemptions", "Redemptions per day: Omneo vs POS",
                 f"Omneo redemption items and POS benefit usages per day ({e(figures.timezone)}), "
                 "the 30 days up to the as-of day.",
                 _day_chart("redemptions", figures.parts.get("redemptions_per_day"))),
        _section("top-exceptions", "Top exceptions", "Errors first; the full list is reconciliation/exceptions.parquet.",
                 _table(figures.parts.get("top_exceptions"))),
        _section("rejects", "Rejected input rows", "Faults per dataset, reason and column; the rows are in rejects/.",
                 _table(figures.parts.get("rejects_summary"))),
        _section("recent-runs", "Tonight beside the recent runs",
                 "Benefits issued by the runs of this state folder, oldest first; push refuses a night far above "
                 "their median.", _bars_chart("recent", figures.parts.get("recent_runs"))),
        _section("campaign-changes", "Issued per campaign: the last run and tonight",
                 "Benefits issued per campaign by the previous run of this state folder and by tonight's.",
                 _table(figures.parts.get("campaign_changes"),
                        "No earlier run in this state folder to compare with.")),
        _section("push", "Push to Omneo",
                 "Calls per payload kind and state after the last push; the calls to look at below.",
                 _push(figures)),
        f"<footer>Written by omneo-bulk {e(manifest.get('version', ''))}. Figures come from warehouse.duckdb "
        "in this folder; query it with <code>omneo-bulk query</code>.</footer>",
    ]
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>omneo-bulk report {e(manifest['run_id'])}</title><style>{CSS}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def headlines(figures: Figures) -> list[tuple[str, int, bool]]:
    """(name, value, needs attention) for the cards and the Markdown list, when known."""
    wanted = [
        ("inputs", "rows_rejected", "input rows rejected", True),
        ("issuance", "benefits_issued", "benefits issued", False),
        # A plan row is one campaign's decision on one profile: a profile two campaigns skip counts twice.
        ("issuance", "skipped", "skips (campaign × profile)", False),
        ("reconciliation", "paired", "POS usages paired", False),
        ("reconciliation", "exceptions", "exceptions", True),
        ("reconciliation", "exceptions_error", "errors", True),
        ("reconciliation", "manual_review", "for manual review", True),
        ("payloads", "calls", "API calls in payloads", False),
    ]
    found = []
    accepted = sum(v for a, m, v in figures.summary if a == "inputs" and m.endswith("_accepted"))
    if any(a == "inputs" for a, _, _ in figures.summary):
        found.append(("input rows accepted", accepted, False))
    for area, metric, name, alert in wanted:
        value = figures.metric(area, metric)
        if value is not None:
            found.append((name, value, alert and value > 0))
    return found


def _stage_times(manifest: dict) -> str:
    return ", ".join(f"{s['stage']} {s.get('seconds', 0):.1f} s" for s in manifest.get("stages", [])) or "none"


def _card(name: str, value: int, alert: bool) -> str:
    return (f"<div class=\"card{' alert' if alert else ''}\"><div class=\"value\">{value:,}</div>"
            f"<div class=\"name\">{html.escape(name)}</div></div>")


def _section(anchor: str, title: str, caption: str, content: str) -> str:
    return (f"<section id=\"{anchor}\"><h2>{html.escape(title)}</h2>"
            f"<figcaption>{caption}</figcaption>{content}</section>")


def _series_colours(rows: list[tuple]) -> dict[str, str]:
    series = list(dict.fromkeys(row[1] for row in rows))
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(series)}


def _legend(colours: dict[str, str]) -> str:
    return "<div class=\"legend\">" + "".join(
        f"<span><i style=\"background:{c}\"></i>{html.escape(s)}</span>" for s, c in colours.items()
    ) + "</div>"


NOTHING = "Nothing to show for this run."


def _no_data(message: str = NOTHING) -> str:
    return f"<p class=\"empty\">{html.escape(message)}</p>"


def _push(figures: Figures) -> str:
    """The push's calls per kind and state, and those to review; one line before any push."""
    pushed = figures.parts.get("push_by_kind")
    if not pushed or not pushed[1]:
        return _no_data("Not pushed yet: omneo-bulk push --out (this folder) sends its payloads.")
    return (_bars_chart("push", pushed)
            + _table(figures.parts.get("push_to_review"), "No call to review: every call has its answer."))


def _bars_chart(name: str, part: tuple[list[str], list[tuple]] | None) -> str:
    """Horizontal stacked bars: one bar per label, one coloured segment per series."""
    if not part or not part[1]:
        return _no_data()
    rows = part[1]
    colours = _series_colours(rows)
    labels = list(dict.fromkeys(row[0] for row in rows))
    totals = {label: sum(r[2] for r in rows if r[0] == label) for label in labels}
    widest = max(totals.values()) or 1
    left, right, bar, gap = 210, 70, 22, 10
    width, height = 900, len(labels) * (bar + gap) + gap
    plot = width - left - right
    shapes = []
    for i, label in enumerate(labels):
        y = gap + i * (bar + gap)
        shapes.append(f"<text x=\"{left - 8}\" y=\"{y + bar * 0.7:.1f}\" text-anchor=\"end\" class=\"label\">"
                      f"{html.escape(_clip(label))}</text>")
        x = float(left)
        for row in (r for r in rows if r[0] == label):
            w = plot * row[2] / widest
            shapes.append(
                f"<rect class=\"bar\" x=\"{x:.1f}\" y=\"{y}\" width=\"{max(w, 1):.1f}\" height=\"{bar}\" "
                f"fill=\"{colours[row[1]]}\"><title>{html.escape(f'{label} · {row[1]}: {row[2]:,}')}</title></rect>"
            )
            x += w
        shapes.append(f"<text x=\"{x + 6:.1f}\" y=\"{y + bar * 0.7:.1f}\" class=\"total\">{totals[label]:,}</text>")
    return _figure(name, width, height, shapes, colours)


def _day_chart(name: str, part: tuple[list[str], list[tuple]] | None) -> str:
    """Grouped vertical bars: one group per day, one bar per side (Omneo, POS)."""
    if not part or not part[1]:
        return _no_data()
    rows = part[1]
    colours = {"Omneo": PALETTE[0], "POS": PALETTE[1]}
    days = sorted({row[0] for row in rows})
    value = {(row[0], row[1]): row[2] for row in rows}
    top = max(row[2] for row in rows) or 1
    left, bottom, width, height = 44, 46, 900, 260
    plot_w, plot_h = width - left - 10, height - bottom - 10
    slot = plot_w / len(days)
    bar = max(min(slot * 0.38, 26), 1)
    shapes = [f"<line x1=\"{left}\" y1=\"{10 + plot_h}\" x2=\"{width - 10}\" y2=\"{10 + plot_h}\" stroke=\"#999\"/>",
              f"<text x=\"{left - 6}\" y=\"16\" text-anchor=\"end\" class=\"total\">{top:,}</text>",
              f"<text x=\"{left - 6}\" y=\"{10 + plot_h}\" text-anchor=\"end\" class=\"total\">0</text>"]
    for i, day in enumerate(days):
        x0 = left + i * slot + (slot - 2 * bar) / 2
        for j, side in enumerate(colours):
            n = value.get((day, side), 0)
            h = plot_h * n / top
            shapes.append(
                f"<rect class=\"bar\" x=\"{x0 + j * bar:.1f}\" y=\"{10 + plot_h - h:.1f}\" width=\"{bar:.1f}\" "
                f"height=\"{max(h, 0.5):.1f}\" fill=\"{colours[side]}\"><title>{day} · {side}: {n:,}</title></rect>"
            )
        if len(days) <= 12 or i % max(1, len(days) // 10) == 0:
            shapes.append(f"<text x=\"{left + (i + 0.5) * slot:.1f}\" y=\"{height - bottom + 24}\" "
                          f"text-anchor=\"middle\" class=\"label\">{day[5:]}</text>")
    return _figure(name, width, height, shapes, colours)


def _figure(name: str, width: int, height: int, shapes: list[str], colours: dict[str, str]) -> str:
    return (
        f"<figure class=\"chart\" id=\"chart-{name}\">{_legend(colours)}"
        f"<svg class=\"chart\" data-chart=\"{name}\" viewBox=\"0 0 {width} {height}\" role=\"img\" "
        f"aria-label=\"{name} chart\" style=\"font-size:13px\">"
        "<style>.label{fill:#1d2733}.total{fill:#5b6773}</style>"
        + "".join(shapes)
        + "</svg></figure>"
    )


def _table(part: tuple[list[str], list[tuple]] | None, empty: str = NOTHING) -> str:
    if not part or not part[1]:
        return _no_data(empty)
    columns, rows = part
    numeric = [all(isinstance(r[i], (int, float)) or r[i] is None for r in rows) for i in range(len(columns))]
    def cell(tag: str, value: object, number: bool) -> str:
        align = ' class="num"' if number else ""
        return f"<{tag}{align}>{html.escape(_text(value))}</{tag}>"

    head = "".join(cell("th", c, n) for c, n in zip(columns, numeric))
    body = "".join("<tr>" + "".join(cell("td", v, n) for v, n in zip(row, numeric)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _clip(text: str, limit: int = 30) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# Markdown -------------------------------------------------------------------------------


def render_markdown(figures: Figures) -> str:
    manifest = figures.manifest
    lines = [f"# omneo-bulk run {manifest['run_id']}", "", f"As of {manifest['as_of']}; "
             f"stages: {_stage_times(manifest)}.", ""]
    lines += [f"- **{value:,}** {name}" for name, value, _ in headlines(figures)]
    for title, key, columns in (("Issuance per campaign", "issuance_by_campaign", ["campaign", "outcome", "profiles"]),
                                ("Exceptions per category", "exceptions_by_category", ["category", "action", "findings"]),
                                ("Rejected input rows", "rejects_summary", None),
                                ("Issued per campaign: the last run and tonight", "campaign_changes", None),
                                ("Push to Omneo", "push_by_kind", ["kind", "state", "calls"]),
                                ("Push: calls to look at", "push_to_review", None)):
        part = figures.parts.get(key)
        if part and part[1]:
            lines += ["", f"## {title}", "", *_markdown_table(columns or part[0], part[1])]
    lines += ["", "Details: report.html, warehouse.duckdb (`omneo-bulk query`), reconciliation/exceptions.parquet.", ""]
    return "\n".join(lines)


def _markdown_table(columns: list[str], rows: list[tuple]) -> list[str]:
    def cell(value: object) -> str:
        return _text(value).replace("|", "\\|").replace("\n", " ")

    return [
        "| " + " | ".join(columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
        *("| " + " | ".join(cell(v) for v in row) + " |" for row in rows),
    ]
