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


def _stop_all(child: Path, count: int, signum: signal.Signals) -> float:
    procs = [
        subprocess.Popen([sys.executable, str(child)], stderr=subprocess.DEVNULL)
        for _ in range(count)
    ]
    try:
        time.sleep(2)  # every interpreter is in its sleep: a bench, not a test
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
    with tempfile.TemporaryDirectory() as folder:
        child = Path(folder) / "child.py"
        child.write_text(CHILD)
        figures = {
            f"{s.name.lower()}_exit_all_s": _stop_all(child, args.count, s)
            for s in (signal.SIGINT, signal.SIGTERM)
        }
    print(json.dumps({"count": args.count, **figures}, indent=2))


if __name__ == "__main__":
    main()
