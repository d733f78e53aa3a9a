"""A cluster's logs as one text: the agent's log, then every code package's console files."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from pathlib import Path

# Where the agent redirects code packages' consoles: <state>/_App/<node>/<app>/log/<file>.
CONSOLE_GLOB: Final = "_App/*/*/log/*"
# The most of each file shown: a failing test's report stays readable.
TAIL_BYTES: Final = 64 * 1024


def console_files(state_dir: Path) -> list[Path]:
    """The console files (``.out``/``.err``) of every code package, in a stable order."""
    return sorted(p for p in state_dir.glob(CONSOLE_GLOB) if p.suffix in (".out", ".err"))


def collect_logs(state_dir: Path, agent_log: str) -> str:
    """The agent's log and each console file (its last :data:`TAIL_BYTES`), headed by name."""
    sections = [_section(state_dir / agent_log, "agent")]
    for path in console_files(state_dir):
        node, app = path.parent.parent.parent.name, path.parent.parent.name
        sections.append(_section(path, f"{node} {app} {path.name}"))
    return "\n".join(s for s in sections if s)


def _section(path: Path, title: str) -> str:
    try:
        with path.open("rb") as f:
            size = f.seek(0, 2)
            f.seek(max(0, size - TAIL_BYTES))
            text = f.read().decode(errors="replace")
    except OSError:  # removed meanwhile (a rotated file, a stopped cluster)
        return ""
    if size > TAIL_BYTES:
        text = f"[… {size - TAIL_BYTES} bytes before]\n" + text
    return f"---- {title} ({path}) ----\n{text.rstrip()}\n"
