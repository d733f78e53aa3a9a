"""What a stop signal costs, with no supervisor at all: N trivial Python programs signalled at
once, timed until all have exited; SIGINT (Service Fabric's Ctrl-C, what fabrichost sends first)
against SIGTERM (what supervisord and circus send). Prints JSON.

    python bench/stop_signal.py [--count 200]
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = "import time\nwhile True:\n    time.sleep(3600)\n"


CLOCK_NANOSLEEP = "230"  # x86-64; where /proc/PID/syscall says otherwise, a fixed wait is used


def _wait_all_asleep(pids: list[int], deadline: float = 120.0) -> None:
    """Until every program is in its ``time.sleep`` (a signal during the interpreter's start-up
    would measure something else): read from /proc/PID/syscall, the call each is blocked in."""
    end = time.monotonic() + deadline
    waiting = set(pids)
    while waiting and time.monotonic() < end:
        for pid in list(waiting):
            try:
                call = Path(f"/proc/{pid}/syscall").read_text().split()[0]
            except (OSError, IndexError):
                time.sleep(2)  # no /proc: a fixed wait, as before
                return
            if call == CLOCK_NANOSLEEP:
                waiting.discard(pid)
        time.sleep(0.01)
    time.sleep(0.2)  # the last one just got there


def stop_all(count: int, signum: signal.Signals) -> float:
    """Seconds from signalling ``count`` fresh copies of CHILD to all having exited."""
    with tempfile.TemporaryDirectory() as folder:
        child = Path(folder) / "child.py"
        child.write_text(CHILD)
        return _stop_all(child, count, signum)


def _stop_all(child: Path, count: int, signum: signal.Signals) -> float:
    procs = [
        subprocess.Popen([sys.executable, str(child)], stderr=subprocess.DEVNULL)
        for _ in range(count)
    ]
    try:
        _wait_all_asleep([proc.pid for proc in procs])
        start = time.perf_counter()
        for proc in procs:
            proc.send_signal(signum)
        for proc in procs:
            proc.wait()
        return time.perf_counter() - start
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    args = parser.parse_args()
    figures = {
        f"{s.name.lower()}_exit_all_s": stop_all(args.count, s)
        for s in (signal.SIGINT, signal.SIGTERM)
    }
    print(json.dumps({"count": args.count, **figures}, indent=2))


if __name__ == "__main__":
    main()
