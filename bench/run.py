"""fabrichost beside supervisord and circus, measured in one run; prints JSON, writes
docs/PERFORMANCE.md.

Usage (the peers come with the ``bench`` extra: ``pip install -e ".[bench]"``)::

    python bench/run.py [--quick] [--reps 3] [--counts 50,200]

Scenarios (see ``bench/peers.py`` for how each system is driven):

* ``N up`` / ``stop N`` / daemon RSS / idle CPU, for N trivial Python programs, every system
  in turn within each repetition (interleaved, so a busy moment hits all of them);
* CLI latency: ``fabrichost --version`` and a query (``fabrichost status``) against a bare
  ``python -c pass``, from a plain ``pip install .`` in a new venv (``--quick``: from this
  environment, whose editable install slows every interpreter's start a little);
* fabrichost's own scenarios, in one agent with zero restart backoff (``bench/scenarios.py``):
  crash to restart begun, a replica's open round trip (p50/p99), 1,000 replicas into a shared
  host, and the SharedProcess/ExclusiveProcess trade-off at 1, 10 and 100 replicas;
* exclusive activation against its floors, when ``bench/exclusive.py`` exists (run as
  ``python bench/exclusive.py [--quick]``; its JSON object is taken as it prints it).

``--quick`` (one repetition, 50 programs, fewer samples, the trade-off at 1 and 10) takes under
three minutes.

Figures are medians over the repetitions, with min-max; a ratio is fabrichost's figure over the
best peer's from the same run. Nothing here is asserted: targets live in the issue tracker and
``docs/PERFORMANCE.md`` shows the measured gap.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import Circus, FabricHost, Run, Supervisord, System
from scenarios import crash_restart, open_round_trip, shared_1000, tradeoff, zero_backoff_agent
from stop_signal import stop_all

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
STARTED = time.perf_counter()
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


def _plain_install(where: Path) -> Path:
    """A virtual environment with this checkout installed as a user installs it (a wheel, not
    editable); its ``bin`` folder. An editable install puts an import hook in every
    interpreter's start-up (about 10 ms here, ``python -c pass`` included), which would
    flatter the CLI's ratios."""
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True)
    subprocess.run(
        [str(where / "bin" / "python"), "-m", "pip", "install", "-q", str(REPO)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return where / "bin"


def _cli(reps: int, bin_dir: Path) -> dict[str, list[float]]:
    from fabrichost.daemon import start_background, stop_background

    fabrichost = str(bin_dir / "fabrichost")
    python = str(bin_dir / "python")
    state = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-cli-{os.getpid()}"
    start_background(state, nodes=1, port=0)
    try:
        results: dict[str, list[float]] = {"python -c pass": [], "--version": [], "status": []}
        for _ in range(reps):  # interleaved
            results["python -c pass"] += _timed([python, "-c", "pass"], 1)
            results["--version"] += _timed([fabrichost, "--version"], 1)
            results["status"] += _timed([fabrichost, "status", "--state-dir", str(state)], 1)
        return results
    finally:
        stop_background(state)
        shutil.rmtree(state, ignore_errors=True)


def _progress(what: str) -> None:
    print(f"[{time.perf_counter() - STARTED:6.1f} s] {what}", file=sys.stderr, flush=True)


def _own_scenarios(quick: bool) -> dict[str, Any]:
    root = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-own-{os.getpid()}"
    try:
        with zero_backoff_agent(root / "state") as client:
            own: dict[str, Any] = {}
            _progress("crash -> restart")
            own["crash_restart"] = crash_restart(client, root, 5 if quick else 20)
            _progress("replica open round trip")
            own["open_round_trip"] = open_round_trip(client, 30 if quick else 200)
            _progress("1,000 replicas into a shared host")
            own["shared_1000"] = shared_1000(client)
            _progress("the SharedProcess / ExclusiveProcess trade-off")
            own["tradeoff"] = tradeoff(client, [1, 10] if quick else [1, 10, 100])
            return own
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _exclusive(quick: bool) -> dict[str, Any] | None:
    """bench/exclusive.py's figures (exclusive activation against the floors), if it exists."""
    script = REPO / "bench" / "exclusive.py"
    if not script.exists():
        return None
    argv = [sys.executable, str(script)] + (["--quick"] if quick else [])
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    figures: dict[str, Any] = json.loads(out)
    return figures


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
                _progress(f"{system.name}: {count} programs")
                runs.setdefault((count, system.name), []).append(system.run(count))
    # The floor of every "stop N": N bare Python programs signalled at once with no supervisor,
    # SIGINT (what fabrichost sends, as Service Fabric does) against SIGTERM (the peers').
    _progress("stop floors")
    floors: dict[str, dict[str, list[float]]] = {}
    for count in counts:
        for _ in range(reps):
            for signum in (signal.SIGINT, signal.SIGTERM):
                floors.setdefault(str(count), {}).setdefault(signum.name, []).append(
                    stop_all(count, signum)
                )
    if args.quick:
        _progress("CLI (this environment's install)")
        cli_install = "this environment (editable in a checkout)"
        cli = _cli(max(reps, 5), BIN)
    else:
        _progress("CLI (a plain install in a new venv)")
        cli_install = "a plain `pip install .` in a new venv"
        with tempfile.TemporaryDirectory(prefix="bench-venv-") as venv:
            cli = _cli(max(reps, 5), _plain_install(Path(venv)))
    own = _own_scenarios(args.quick)
    _progress("bench/exclusive.py" if (REPO / "bench" / "exclusive.py").exists() else "done")
    exclusive = _exclusive(args.quick)

    load_at_end = os.getloadavg()[0]
    figures: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_1m_at_start": load_at_start,
            "load_1m_at_end": load_at_end,
        },
        "reps": reps,
        "missing_peers": missing,
        "hosts": {},
        "cli": {name: _summary(v) for name, v in cli.items()},
        "cli_install": cli_install,
        "stop_floor": {
            count: {name: _summary(v) for name, v in by_signal.items()}
            for count, by_signal in floors.items()
        },
        "own": own,
        "exclusive": exclusive,
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
        f"{m['platform']}; load (1 min) {m['load_1m_at_start']:.2f} at start, "
        f"{m['load_1m_at_end']:.2f} at the end (other work on the machine shows here). "
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
        if count in figures["stop_floor"]:
            floor = figures["stop_floor"][count]
            lines += [
                "",
                f"No supervisor at all, {count} of the same programs signalled at once until all "
                f"have exited: SIGINT (fabrichost's first stop signal, Service Fabric's Ctrl-C) "
                f"{_cell(floor['SIGINT'], 's')}, SIGTERM (the peers') "
                f"{_cell(floor['SIGTERM'], 's')}.",
            ]
        lines.append("")
    cli = figures["cli"]
    floor = cli["python -c pass"]["median"]
    lines += ["## CLI", "", f"Measured in {figures['cli_install']}.", ""]
    lines += ["| command | time | x `python -c pass` |", "|---|---|---|"]
    for name, entry in cli.items():
        lines.append(f"| `{name}` | {_cell(entry, 's')} | x{entry['median'] / floor:.1f} |")
    lines += ["", *_own_markdown(figures["own"])]
    if figures["exclusive"] is not None:
        lines += ["## Exclusive activation (bench/exclusive.py)", "", "| figure | value |"]
        lines += ["|---|---|"]
        lines += [f"| {k} | {_number(v)} |" for k, v in _flat(figures["exclusive"]).items()]
        lines.append("")
    return "\n".join(lines) + "\n"


def _own_markdown(own: dict[str, Any]) -> list[str]:
    crash, rt, many = own["crash_restart"], own["open_round_trip"], own["shared_1000"]
    lines = [
        "## fabrichost alone (one agent, zero restart backoff)",
        "",
        "| scenario | figure |",
        "|---|---|",
        f"| crash -> restart begun ({crash['crashes']} SIGKILLs of a guest) | "
        f"p50 {1000 * crash['restart_begun_p50_s']:.1f} ms, "
        f"max {1000 * crash['restart_begun_max_s']:.1f} ms |",
        f"| replica open round trip (create -> Ready, {rt['samples']} in a running shared "
        f"host) | p50 {rt['p50_ms']:.1f} ms, p99 {rt['p99_ms']:.1f} ms |",
        f"| {many['replicas']:,} replicas into a shared host | {many['place_s']:.2f} s, "
        f"{many['host_kib_per_replica']:.1f} KiB each |",
        "",
        "### The same service at 1, 10 and 100 replicas: SharedProcess or ExclusiveProcess",
        "",
        "| service | processes | total PSS | to all Ready | one crash takes down | "
        "all Ready again |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in own["tradeoff"].items():
        lines.append(
            f"| {name} | {row['processes']} | {row['total_pss_mib']:.1f} MiB | "
            f"{row['ready_s']:.2f} s | {row['one_crash_takes_down']} of {row['replicas']} | "
            f"{row['all_ready_again_s']:.2f} s |"
        )
    return [*lines, ""]


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


if __name__ == "__main__":
    main()
