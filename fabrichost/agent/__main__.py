"""``python -m fabrichost.agent``: the agent in the foreground.

The daemon ``fabrichost up`` starts, and ``fabrichost agent`` runs, this: it imports the agent and
its HTTP server only, not the command line's table printing and HTTP client, so the long-lived
process stays small.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import TYPE_CHECKING

from fabrichost.agent._backoff import RestartPolicy
from fabrichost.agent._cluster import AgentSettings
from fabrichost.agent._daemon import serve
from fabrichost.agent._statedir import resolve_state_dir
from fabrichost.errors import FabricHostError

if TYPE_CHECKING:
    from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fabrichost agent", description=__doc__)
    parser.add_argument("--state-dir", default=None)
    parser.add_argument("--nodes", type=int, default=1)
    parser.add_argument("--port", type=int, default=19080)
    parser.add_argument("--ready-fd", type=int, default=None)
    parser.add_argument("--restart-delay", type=float, default=0.5)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = AgentSettings(
        node_count=args.nodes, restart_policy=RestartPolicy(base_delay=args.restart_delay)
    )
    try:
        asyncio.run(
            serve(
                resolve_state_dir(args.state_dir),
                port=args.port,
                settings=settings,
                ready_fd=args.ready_fd,
            )
        )
    except FabricHostError as exc:
        logging.getLogger("fabrichost.agent").error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
