#!/usr/bin/env python3
"""Draws the peers bench's criterion medians as bars: docs/peers.svg.

One panel per criterion group of benches/peers (s1_l1_hit/small, s2_l2_hit/16KiB,
...), one bar per library, cachekit highlighted. Latency groups show the median
time per call (shorter is faster), groups of many tasks or threads the
operations per second (longer is faster), each with its ratio to cachekit in
the same group, as the tables `benches/peers/report.rs` prints.

    cargo bench -p cachekit-peers --bench peers          # or a few groups:
    PEERS_GROUPS_ONLY=1 cargo bench -p cachekit-peers --bench peers -- 's1_|s2_|s3_'
    ./scripts/peers-chart.py [--note "what ran where"] [--out docs/peers.svg]

It reads `<criterion dir>/**/new/{benchmark,estimates}.json`, the criterion dir
being $CRITERION_HOME, else $CARGO_TARGET_DIR/criterion, else target/criterion
under the repository (or --criterion DIR). Python 3 standard library only.
"""

import argparse
import json
import os
import sys
import textwrap
from html import escape
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The groups of benches/peers, in the order of docs/performance.md.
PREFIXES = ("s1_", "s2_", "s3_", "s4_", "scaling_")
TITLES = {
    "s1_l1_hit": "1. Memoized hit, in process (L1)",
    "s2_l2_hit": "2. Redis hit, no L1",
    "s3_miss": "3. Miss: GET, compute, store",
    "s4_mixed_64_tasks": "4. 64 tasks, 90/10 reads/writes, Zipf keys",
    "scaling_l1_hit_threads": "L1 hits on 1-8 threads",
    "scaling_l2_hit_tasks": "Redis hits of uniform keys on 1-256 tasks",
}
VALUES = {"small": "small value (166 B)", "16KiB": "16 KiB value"}

CACHEKIT = "#d9480f"
VARIANT = "#ffa94d"  # "cachekit, pool_size 1" and the like
PEER = "#5c7cfa"
BASELINE = "#adb5bd"
TEXT = "#212529"
MUTED = "#6c757d"

WIDTH = 860
LABEL_W = 250  # library names, right-aligned against the bars
BAR_X = LABEL_W + 10
BAR_W = 350  # the longest bar of a panel
ROW = 22
BAR_H = 15
FONT = "font-family=\"-apple-system, 'Segoe UI', Helvetica, Arial, sans-serif\""


def criterion_dir(arg):
    if arg:
        return Path(arg)
    if os.environ.get("CRITERION_HOME"):
        return Path(os.environ["CRITERION_HOME"])
    if os.environ.get("CARGO_TARGET_DIR"):
        return Path(os.environ["CARGO_TARGET_DIR"]) / "criterion"
    return ROOT / "target" / "criterion"


def collect(base):
    """{group: [(function, parameter or None, median ns)]} from criterion's files."""
    groups = {}
    for bench in base.glob("**/new/benchmark.json"):
        estimates = bench.with_name("estimates.json")
        try:
            meta = json.loads(bench.read_text())
            median = json.loads(estimates.read_text())["median"]["point_estimate"]
        except (OSError, ValueError, KeyError) as e:
            print(f"peers-chart: skipping {bench.parent}: {e}", file=sys.stderr)
            continue
        group = meta.get("group_id") or ""
        if not group.startswith(PREFIXES):
            continue
        groups.setdefault(group, []).append(
            (meta.get("function_id") or "", meta.get("value_str"), float(median))
        )
    return groups


def group_order(group):
    head, _, value = group.partition("/")
    prefix = next(i for i, p in enumerate(PREFIXES) if group.startswith(p))
    return (prefix, head, list(VALUES).index(value) if value in VALUES else 9, value)


def lib_order(function):
    if function == "cachekit":
        return 0
    if function == "cached":
        return 1
    if function == "cachekit-rs":
        return 2
    if function.endswith("(baseline)"):
        return 3 if "," not in function else 5
    return 4


def throughput(group):
    return group.startswith(("s4_", "scaling_"))


def human_time(ns):
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.1f} µs"
    return f"{ns:.0f} ns"


def human_rate(ns):
    per_sec = 1e9 / ns
    if per_sec >= 1e6:
        return f"{per_sec / 1e6:.2f} M ops/s"
    return f"{per_sec / 1e3:.1f} k ops/s"


def colour(function):
    if function == "cachekit":
        return CACHEKIT
    if function.startswith("cachekit,"):
        return VARIANT
    if function.endswith("(baseline)"):
        return BASELINE
    return PEER


def title(group):
    head, _, value = group.partition("/")
    text = TITLES.get(head, head)
    return f"{text}, {VALUES.get(value, value)}" if value else text


def panel(group, rows, y):
    """SVG elements of one group's panel starting at height y; returns (elements, new y)."""
    rate = throughput(group)
    params = sorted({p for _, p, _ in rows if p is not None}, key=lambda p: int(p) if p.isdigit() else 0)
    if params:
        # Variants (a comma in the name: "cachekit, pool_size 1", "raw, GET+PTTL
        # pipeline") stay in the printed tables; one bar per library and count
        # is already many bars.
        rows = [r for r in rows if "," not in r[0]]
    out = []
    note = "operations per second, longer is faster" if rate else "median time per call, shorter is faster"
    out.append(
        f'<text x="20" y="{y + 16}" font-size="15" font-weight="600" fill="{TEXT}">{escape(title(group))}</text>'
        f'<text x="{WIDTH - 20}" y="{y + 16}" font-size="12" fill="{MUTED}" text-anchor="end">{note}</text>'
    )
    y += 28
    values = [1e9 / ns if rate else ns for _, _, ns in rows]
    top = max(values) if values else 1.0
    for param in params or [None]:
        chosen = sorted((r for r in rows if r[1] == param), key=lambda r: lib_order(r[0]))
        ours = next((ns for f, _, ns in chosen if f == "cachekit"), None)
        if param is not None:
            unit = "thread" if "threads" in group else "task"
            plural = "" if param == "1" else "s"
            out.append(f'<text x="20" y="{y + 12}" font-size="12" fill="{MUTED}">{param} {unit}{plural}</text>')
            y += 16
        for function, _, ns in chosen:
            value = 1e9 / ns if rate else ns
            width = max(1.0, BAR_W * value / top)
            if ours is None or function == "cachekit":
                ratio = ""
            elif rate:
                ratio = f" · {ours / ns:.2f}× cachekit's rate"
            else:
                ratio = f" · {ns / ours:.2f}× cachekit's time"
            label = (human_rate(ns) if rate else human_time(ns)) + ratio
            weight = ' font-weight="600"' if function == "cachekit" else ""
            out.append(
                f'<text x="{LABEL_W}" y="{y + 12}" font-size="12.5" fill="{TEXT}" text-anchor="end"{weight}>'
                f"{escape(function)}</text>"
                f'<rect x="{BAR_X}" y="{y + 1}" width="{width:.1f}" height="{BAR_H}" rx="2" fill="{colour(function)}">'
                f"<title>{escape(function)}: {escape(label)}</title></rect>"
                f'<text x="{BAR_X + width + 6:.1f}" y="{y + 12}" font-size="12" fill="{TEXT}"{weight}>{escape(label)}</text>'
            )
            y += ROW
    return out, y + 14


def render(groups, note):
    body = []
    y = 20
    body.append(
        f'<text x="20" y="{y + 18}" font-size="19" font-weight="700" fill="{TEXT}">cachekit against other Rust caches</text>'
    )
    y += 30
    legend = [("cachekit", CACHEKIT)]
    if any(f.startswith("cachekit,") for rows in groups.values() for f, _, _ in rows):
        legend.append(("cachekit variants", VARIANT))
    legend += [("other libraries", PEER), ("raw moka / redis-rs (floor)", BASELINE)]
    for i, (name, fill) in enumerate(legend):
        x = 20 + i * 190
        body.append(
            f'<rect x="{x}" y="{y + 2}" width="12" height="12" rx="2" fill="{fill}"/>'
            f'<text x="{x + 18}" y="{y + 12}" font-size="12" fill="{TEXT}">{escape(name)}</text>'
        )
    y += 22
    for line in textwrap.wrap(note, 120):
        body.append(f'<text x="20" y="{y + 12}" font-size="12" fill="{MUTED}">{escape(line)}</text>')
        y += 16
    y += 10
    for group in sorted(groups, key=group_order):
        elements, y = panel(group, groups[group], y)
        body.extend(elements)
    body.append(
        f'<text x="20" y="{y + 4}" font-size="11" fill="{MUTED}">Criterion medians of benches/peers; '
        f"drawn by scripts/peers-chart.py.</text>"
    )
    height = y + 20
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" {FONT}>\n'
        f'<rect width="100%" height="100%" fill="#ffffff"/>\n' + "\n".join(body) + "\n</svg>\n"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--criterion", help="criterion's output directory (default: see above)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "peers.svg"), help="the SVG to write")
    parser.add_argument("--note", default="", help="a line under the title: which run, which machine")
    args = parser.parse_args()
    base = criterion_dir(args.criterion)
    groups = collect(base)
    if not groups:
        sys.exit(f"peers-chart: no peers groups under {base}; run the peers bench first")
    Path(args.out).write_text(render(groups, args.note), encoding="utf-8")
    print(f"peers-chart: {len(groups)} groups from {base} -> {args.out}")


if __name__ == "__main__":
    main()
