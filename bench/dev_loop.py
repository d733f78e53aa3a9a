"""`fabrichost dev`: from a saved edit of a service's code to the first answer with the new code,
and which processes restarted. Prints JSON.

The package is a copy of examples/testing/WebApp with a second code package (Worker, hosting
a service of its own) in the same service package: an edit of Web's code should restart Web's
process only, on every node, and leave Worker's running.

    python bench/dev_loop.py [--rounds 5] [--nodes 1]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from fabrichost.client import FabricClient
from fabrichost.dev import restarted, running_code_packages
from fabrichost.errors import FabricHostError

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "testing" / "WebApp"
APP = "fabric:/WebApp"
WORKER = """from fabrichost.runtime import StatelessService, run_host


class Worker(StatelessService):
    def open(self) -> str:
        return "worker"


run_host({"WorkerType": Worker})
"""


def _package(root: Path) -> Path:
    """The example WebApp, with a Worker code package and service beside Web."""
    package = Path(shutil.copytree(EXAMPLE, root / "WebApp"))
    code = package / "WebPkg" / "Worker"
    code.mkdir()
    (code / "worker.py").write_text(WORKER)
    (code / "run.sh").write_text("#!/bin/sh\nexec python3 worker.py\n")
    (code / "run.sh").chmod(0o755)
    manifest = package / "WebPkg" / "ServiceManifest.xml"
    text = manifest.read_text()
    text = text.replace(
        "  </ServiceTypes>",
        '    <StatelessServiceType ServiceTypeName="WorkerType" />\n  </ServiceTypes>',
    )
    text = text.replace(
        "  <Resources>",
        '  <CodePackage Name="Worker" Version="1.0.0">\n    <EntryPoint><ExeHost>'
        "<Program>run.sh</Program><WorkingFolder>CodePackage</WorkingFolder></ExeHost>"
        "</EntryPoint>\n  </CodePackage>\n  <Resources>",
    )
    manifest.write_text(text)
    app = package / "ApplicationManifest.xml"
    app.write_text(
        app.read_text().replace(
            "  </DefaultServices>",
            '    <Service Name="Worker">\n      <StatelessService ServiceTypeName="WorkerType" '
            'InstanceCount="-1"><SingletonPartition /></StatelessService>\n    </Service>\n'
            "  </DefaultServices>",
        )
    )
    return package


class _Output:
    """`dev`'s output, read in a thread (so its pipe never fills), waited on by pattern."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._seen = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with self._seen:
                self.lines.append(line.rstrip("\n"))
                self._seen.notify_all()

    def wait_for(self, pattern: str, start: int, timeout: float = 120.0) -> tuple[int, str]:
        """The first line from ``start`` on matching ``pattern``: (its index, the line)."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._seen:
            while True:
                for i in range(start, len(self.lines)):
                    if regex.search(self.lines[i]):
                        return i, self.lines[i]
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    raise RuntimeError(f"{pattern!r} not seen; output:\n" + "\n".join(self.lines))
                self._seen.wait(left)


def _answer(client: FabricClient) -> str | None:
    """What Web answers now, or None while it does not (restarting, moving ports)."""
    try:
        url = client.endpoints(f"{APP}/Web")["Web"]
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())
    except (FabricHostError, OSError, urllib.error.URLError):
        return None


def _round(package: Path, client: FabricClient, out: _Output, k: int) -> dict[str, object]:
    web = package / "WebPkg" / "Code" / "web.py"
    before = running_code_packages(client, APP)
    text = re.sub(r"body = .*", f'body = b"round {k}"', web.read_text(), count=1)
    start_line = len(out.lines)
    saved = time.perf_counter()
    web.write_text(text)  # the save
    while _answer(client) != f"round {k}":
        time.sleep(0.005)  # a bench polls for the first new answer; tests wait for events
    served = time.perf_counter() - saved
    _, line = out.wait_for(r"^dev \| WebPkg/Code/web\.py: ", start_line)
    after = running_code_packages(client, APP)
    reported = re.search(r"; ([\d.]+) s$", line)
    return {
        "save_to_new_answer_s": round(served, 3),
        "dev_reported_s": float(reported[1]) if reported else None,
        "restarted": [str(slot) for slot in restarted(before, after)],
        "kept": [str(slot) for slot in sorted(set(after) - set(restarted(before, after)))],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--nodes", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        package = _package(root)
        state = root / "state"
        proc = subprocess.Popen(
            [sys.executable, "-m", "fabrichost", "dev", str(package), "--port", "0",
             "--nodes", str(args.nodes), "--state-dir", str(state)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        try:
            out = _Output(proc)
            out.wait_for(r"^dev \| watching ", 0)
            with FabricClient.for_state_dir(state) as client:
                rounds = [_round(package, client, out, k) for k in range(1, args.rounds + 1)]
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=60)
    served = [float(r["save_to_new_answer_s"]) for r in rounds]  # type: ignore[arg-type]
    only_web = all(
        all("WebPkg/Code on" in s for s in r["restarted"])  # type: ignore[attr-defined]
        and any("WebPkg/Worker on" in s for s in r["kept"])  # type: ignore[attr-defined]
        for r in rounds
    )
    figures = {
        "nodes": args.nodes,
        "rounds": rounds,
        "save_to_new_answer_median_s": round(statistics.median(served), 3),
        "save_to_new_answer_max_s": round(max(served), 3),
        "target_s": 1.0,
        "only_the_edited_code_package_restarted": only_web,
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
