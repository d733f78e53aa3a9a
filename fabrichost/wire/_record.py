"""Where a client finds the agent of a state directory: ``agent.json``, and the directory itself.

The agent writes :class:`AgentRecord` once it serves; the CLI, the Python client and ``down``
read it. The state directory is ``--state-dir``, else ``$FABRICHOST_STATE_DIR``, else the user's
state directory (XDG).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final

AGENT_FILE: Final = "agent.json"
# The agent's token: a secret, readable by the agent's user only, that lets a client in when the
# kernel cannot tell its user (docs/security.md). A new one on every start.
TOKEN_FILE: Final = "token"
ENV_STATE_DIR: Final = "FABRICHOST_STATE_DIR"


def resolve_state_dir(option: str | os.PathLike[str] | None = None) -> Path:
    """``--state-dir``, else ``$FABRICHOST_STATE_DIR``, else the user's state dir (XDG)."""
    if option:
        return Path(option).expanduser().resolve()
    if os.environ.get(ENV_STATE_DIR):
        return Path(os.environ[ENV_STATE_DIR]).expanduser().resolve()
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return (Path(base) / "fabrichost").resolve()


@dataclass(frozen=True, slots=True)
class AgentRecord:
    """What ``agent.json`` holds; field names follow the JSON of ``fabrichost status``."""

    Endpoint: str
    AgentProcessId: int
    AgentStartTime: float
    StateDirectory: str
    NodeCount: int

    def write(self, state_dir: Path) -> None:
        tmp = state_dir / (AGENT_FILE + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(state_dir / AGENT_FILE)  # atomic: a reader never sees half a file

    @classmethod
    def read(cls, state_dir: Path) -> AgentRecord | None:
        try:
            data = json.loads((state_dir / AGENT_FILE).read_text())
            return cls(**data)
        except (OSError, ValueError, TypeError):
            return None


def read_token(state_dir: Path) -> str | None:
    """The token of the agent of ``state_dir``, if this user owns it (a token file of another
    user is not this user's agent's: it is not sent)."""
    try:
        with (state_dir / TOKEN_FILE).open() as f:
            if os.fstat(f.fileno()).st_uid != os.geteuid():
                return None
            return f.read().strip() or None
    except OSError:
        return None
