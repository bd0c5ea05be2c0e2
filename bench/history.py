"""The bench's memory: every `make bench` run appended to bench/results/history.jsonl, and the
ratios of the last runs drawn as an SVG line chart (bench/results/ratios.svg, shown in
docs/bench.md). No dependency: the SVG is written by hand.

    append(path, rows, machine, details) -> entry     one JSON line per run
    load(path) -> [entry, ...]                       oldest first; unreadable lines skipped
    write_svg(path, entries, last=20)                 the chart
"""
import json
import math
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parent.parent
#: Where the measured code lives: "dirty" in an entry means one of these had uncommitted changes.
MEASURED_PATHS = ("foodapp", "actors", "bench", "testing.ini", "development.ini", "production.ini", "setup.py")


def _git(*argv):
    try:
        done = subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _finite(value):
    return value if isinstance(value, (int, float)) and math.isfinite(value) else None


def measured_changes():
    """`git status` of the measured code: its uncommitted changes, a line each ("" for none).
    The bench's own results (bench/results) are not measured code: a run writes them before
    it records itself."""
    return _git("status", "--porcelain", "--", *MEASURED_PATHS, ":(exclude)bench/results")


def append(path, rows, machine, details=None):
    """Add this run to ``path`` (JSON lines); returns the entry written."""
    status = measured_changes()
    entry = {
        "timestamp": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": _git("rev-parse", "HEAD") or "unknown",
        "dirty": bool(status),
        "machine": machine,
        "details": details or {},
        "rows": [{"key": r["key"], "figure": r["figure"], "foodapp": _finite(r["foodapp"]),
                  "baseline": r["baseline"], "baseline_value": _finite(r["baseline_value"]),
                  "ratio": _finite(r["ratio"]), "target": r["target"], "met": r["met"]} for r in rows],
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as out:
        out.write(json.dumps(entry, allow_nan=False) + "\n")
    return entry


def load(path):
    entries = []
    path = Path(path)
    if not path.exists():
        return entries
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("rows"), list):
            entries.append(entry)
    return entries


# -- the chart ----------------------------------------------------------------------------------

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd")
TICKS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
WIDTH, HEIGHT = 980, 480
LEFT, TOP, PLOT_W, PLOT_H = 60, 40, 520, 360


def _series(entries):
    """{key: (label, target, [ratio or None per entry])} for the rows that have a target."""
    series = {}
    for i, entry in enumerate(entries):
        for r in entry["rows"]:
            if r.get("met") is None or not r.get("key"):
                continue  # context rows: no target, not drawn
            label = f"÷ {r.get('baseline', '')}"
            found = series.setdefault(r["key"], [label, r.get("target", ""), [None] * len(entries)])
            found[0], found[1] = label, r.get("target", "")  # the newest wording
            values = found[2]
            ratio = r.get("ratio")
            values[i] = ratio if isinstance(ratio, (int, float)) and ratio > 0 else None
    return series


def _short(text, limit=70):
    return text if len(text) <= limit else text[:limit - 1] + "…"


def write_svg(path, entries, last=20):
    """An SVG line chart of each targeted figure's ratio over the last ``last`` runs (log scale)."""
    entries = entries[-last:]
    series = _series(entries)
    values = [v for _, _, vs in series.values() for v in vs if v]
    low, high = (min(values), max(values)) if values else (0.5, 2)
    low, high = min(low, 1.0), max(high, 1.0)
    bottom = max([t for t in TICKS if t <= low] or [TICKS[0]])
    top = min([t for t in TICKS if t >= high] or [TICKS[-1]])
    if top <= bottom:
        top = bottom * 10
    span = math.log10(top) - math.log10(bottom)

    def y(value):
        value = min(max(value, bottom), top)
        return TOP + PLOT_H - (math.log10(value) - math.log10(bottom)) / span * PLOT_H

    def x(i):
        return LEFT + (PLOT_W / 2 if len(entries) <= 1 else i * PLOT_W / (len(entries) - 1))

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
           f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11">',
           f'<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
           f'<text x="{LEFT}" y="22" font-size="14" font-weight="bold">make bench: foodapp ÷ baseline, '
           f'the last {len(entries)} run{"s" if len(entries) != 1 else ""} (log scale; above 1 is foodapp ahead)</text>']
    for tick in TICKS:
        if bottom <= tick <= top:
            ty = y(tick)
            out.append(f'<line x1="{LEFT}" y1="{ty:.1f}" x2="{LEFT + PLOT_W}" y2="{ty:.1f}" '
                       f'stroke="{"#444" if tick == 1 else "#ddd"}" stroke-width="{1.5 if tick == 1 else 1}"/>')
            out.append(f'<text x="{LEFT - 6}" y="{ty + 4:.1f}" text-anchor="end">{tick:g}</text>')
    out.append(f'<rect x="{LEFT}" y="{TOP}" width="{PLOT_W}" height="{PLOT_H}" fill="none" stroke="#888"/>')
    step = max(1, math.ceil(len(entries) / 6))
    for i, entry in enumerate(entries):
        if i % step == 0 or i == len(entries) - 1:
            label = f"{entry.get('timestamp', '')[5:16].replace('T', ' ')} {str(entry.get('commit', ''))[:7]}"
            out.append(f'<text x="{x(i):.1f}" y="{TOP + PLOT_H + 16}" text-anchor="middle" font-size="9">'
                       f'{escape(label)}</text>')
    out.append(f'<text x="{LEFT + PLOT_W / 2}" y="{TOP + PLOT_H + 34}" text-anchor="middle">run (UTC time, commit)</text>')
    for n, (key, (label, target, vs)) in enumerate(series.items()):
        color = PALETTE[n % len(PALETTE)]
        points = [(x(i), y(v)) for i, v in enumerate(vs) if v]
        if len(points) > 1:
            out.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.8" points="'
                       + " ".join(f"{px:.1f},{py:.1f}" for px, py in points) + '"/>')
        for px, py in points:
            out.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="2.8" fill="{color}"/>')
        latest = next((v for v in reversed(vs) if v), None)
        ly = TOP + 6 + n * 22
        out.append(f'<rect x="{LEFT + PLOT_W + 16}" y="{ly}" width="10" height="10" fill="{color}"/>')
        out.append(f'<text x="{LEFT + PLOT_W + 32}" y="{ly + 9}">{escape(key)}: '
                   f'{"-" if latest is None else f"{latest:.2f}"} (target {escape(str(target))[:40]})</text>')
        out.append(f'<text x="{LEFT + PLOT_W + 32}" y="{ly + 19}" font-size="8" fill="#555">{escape(_short(label))}</text>')
    out.append("</svg>")
    Path(path).write_text("\n".join(out) + "\n")
