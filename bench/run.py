"""fabrichost beside supervisord and circus, measured in one run; prints JSON, writes
docs/PERFORMANCE.md.

Usage (the peers come with the ``bench`` extra: ``pip install -e ".[bench]"``)::

    python bench/run.py [--quick] [--reps 3] [--counts 50,200]

Scenarios (see ``bench/peers.py`` for how each system is driven):

* ``N up`` / ``stop N`` / daemon RSS / idle CPU, for N trivial Python programs, every system
  in turn within each repetition (interleaved, so a busy moment hits all of them);
* CLI latency: ``fabrichost --version`` and a query (``fabrichost status``) against a bare
  ``python -c pass``.

Figures are medians over the repetitions, with min-max; a ratio is fabrichost's figure over the
best peer's from the same run. Nothing here is asserted: targets live in the issue tracker and
``docs/PERFORMANCE.md`` shows the measured gap.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import Circus, FabricHost, Run, Supervisord, System

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ANALYSIS_MARKER = "<!-- written by hand below: kept by bench/run.py -->\n"


def _systems() -> tuple[list[System], list[str]]:
    systems: list[System] = []
    missing = []
    if (BIN / "supervisord").exists():
        systems.append(Supervisord(BIN))
    else:
        missing.append("supervisord")
    if (BIN / "circusd").exists():
        systems.append(Circus(BIN))
    else:
        missing.append("circus")
    systems.append(FabricHost())
    return systems, missing


def _timed(argv: list[str], reps: int) -> list[float]:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return times


def _cli(reps: int) -> dict[str, list[float]]:
    from fabrichost.daemon import start_background, stop_background

    fabrichost = str(BIN / "fabrichost")
    state = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-cli-{os.getpid()}"
    start_background(state, nodes=1, port=0)
    try:
        results: dict[str, list[float]] = {"python -c pass": [], "--version": [], "status": []}
        for _ in range(reps):  # interleaved
            results["python -c pass"] += _timed([sys.executable, "-c", "pass"], 1)
            results["--version"] += _timed([fabrichost, "--version"], 1)
            results["status"] += _timed([fabrichost, "status", "--state-dir", str(state)], 1)
        return results
    finally:
        stop_background(state)


def _summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one repetition, 50 programs")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--counts", default="50,200")
    args = parser.parse_args()
    reps = 1 if args.quick else args.reps
    load_at_start = os.getloadavg()[0]
    counts = [50] if args.quick else [int(c) for c in args.counts.split(",")]
    systems, missing = _systems()

    runs: dict[tuple[int, str], list[Run]] = {}
    for count in counts:
        for _ in range(reps):
            for system in systems:  # interleaved: each repetition runs every system once
                runs.setdefault((count, system.name), []).append(system.run(count))
    cli = _cli(max(reps, 5))

    figures: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_1m_at_start": load_at_start,
        },
        "reps": reps,
        "missing_peers": missing,
        "hosts": {},
        "cli": {name: _summary(v) for name, v in cli.items()},
    }
    for (count, name), measured in runs.items():
        figures["hosts"].setdefault(str(count), {})[name] = {
            metric: _summary([getattr(r, metric) for r in measured])
            for metric in ("up_s", "stop_s", "rss_mib", "idle_cpu_percent")
        }
    print(json.dumps(figures, indent=2))
    doc = REPO / "docs" / "PERFORMANCE.md"
    # What follows the marker is written by hand (the analysis of the gaps) and kept.
    kept = doc.read_text().partition(ANALYSIS_MARKER)[2] if doc.exists() else ""
    doc.write_text(_markdown(figures) + "\n" + ANALYSIS_MARKER + kept)


def _ratio(table: dict[str, Any], metric: str) -> str:
    peers = [v[metric]["median"] for k, v in table.items() if k != "fabrichost"]
    ours = table["fabrichost"][metric]["median"]
    best = min(peers) if peers else None
    return f"x{ours / best:.2f}" if best else "-"


def _cell(entry: dict[str, float], unit: str) -> str:
    return f"{entry['median']:.3g} {unit} ({entry['min']:.3g}-{entry['max']:.3g})"


def _markdown(figures: dict[str, Any]) -> str:
    m = figures["machine"]
    lines = [
        "# Performance: fabrichost beside supervisord and circus",
        "",
        "Written by `python bench/run.py` (see its docstring for what each figure is). "
        f"Machine: {m['cpus']} CPUs, {m['memory_gib']} GiB, Python {m['python']}, "
        f"{m['platform']}; load at start {m['load_1m_at_start']:.2f}. "
        f"Median of {figures['reps']} interleaved repetitions (min-max); the ratio is "
        "fabrichost over the best peer in the same run.",
        "",
    ]
    if figures["missing_peers"]:
        lines += [f"Not measured (not installed): {', '.join(figures['missing_peers'])}.", ""]
    units = {"up_s": "s", "stop_s": "s", "rss_mib": "MiB", "idle_cpu_percent": "%"}
    for count, table in figures["hosts"].items():
        names = list(table)
        lines += [
            f"## {count} programs",
            "",
            "| figure | " + " | ".join(names) + " | fabrichost / best peer |",
            "|---|" + "---|" * (len(names) + 1),
        ]
        for metric, unit in units.items():
            cells = " | ".join(_cell(table[n][metric], unit) for n in names)
            lines.append(f"| {metric} | {cells} | {_ratio(table, metric)} |")
        lines.append("")
    cli = figures["cli"]
    floor = cli["python -c pass"]["median"]
    lines += ["## CLI", "", "| command | time | x `python -c pass` |", "|---|---|---|"]
    for name, entry in cli.items():
        lines.append(f"| `{name}` | {_cell(entry, 's')} | x{entry['median'] / floor:.1f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
