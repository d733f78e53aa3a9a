"""The agent in the foreground: ``python -m fabrichost.daemon`` and ``fabrichost agent``.

The daemon ``fabrichost up`` starts, and ``fabrichost agent`` runs, this: it imports the agent and
its HTTP server only, not the command line's table printing and HTTP client, so the long-lived
process stays small.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
from typing import TYPE_CHECKING

from fabrichost.agent import AgentSettings, RestartPolicy, adopt_orphans
from fabrichost.api import uid_of
from fabrichost.daemon._serve import serve
from fabrichost.errors import FabricHostError
from fabrichost.wire import resolve_state_dir

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path


def _uid(user: str) -> int:
    try:
        return uid_of(user)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fabrichost agent", description=__doc__)
    parser.add_argument("--state-dir", default=None)
    parser.add_argument(
        "--nodes",
        type=int,
        default=None,
        help="node count (default: the count the state directory records, 1 for a new one)",
    )
    parser.add_argument("--port", type=int, default=19080)
    parser.add_argument("--ready-fd", type=int, default=None)
    parser.add_argument(
        "--owner-fd",
        type=int,
        default=None,
        help="a pipe's read end: stop once its write end is closed (the owner stopped or died)",
    )
    parser.add_argument(
        "--remove-state-on-exit",
        action="store_true",
        help="delete the state directory once stopped (a temporary one)",
    )
    parser.add_argument("--restart-delay", type=float, default=0.5)
    parser.add_argument(
        "--no-fork-server",
        dest="fork_server",
        action="store_false",
        help="spawn every runtime host instead of forking it from a pre-warmed interpreter",
    )
    parser.add_argument(
        "--allow-user",
        dest="allow_users",
        action="append",
        type=_uid,
        default=[],
        metavar="USER",
        help="also serve this user (name or uid); repeatable",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.nodes is not None and not 1 <= args.nodes <= 64:
        parser.error("--nodes must be 1 to 64")
    settings = AgentSettings(
        restart_policy=RestartPolicy(base_delay=args.restart_delay), fork_server=args.fork_server
    )
    try:
        asyncio.run(
            _agent(
                resolve_state_dir(args.state_dir),
                port=args.port,
                settings=settings,
                nodes=args.nodes,
                ready_fd=args.ready_fd,
                allow_users=args.allow_users,
                owner_fd=args.owner_fd,
                remove_state=args.remove_state_on_exit,
            )
        )
    except FabricHostError as exc:
        logging.getLogger("fabrichost.agent").error("%s", exc)
        return 1
    return 0


async def _agent(
    state_dir: Path,
    *,
    port: int,
    settings: AgentSettings,
    nodes: int | None,
    ready_fd: int | None,
    allow_users: list[int],
    owner_fd: int | None = None,
    remove_state: bool = False,
) -> None:
    # This process is the agent and nothing else, so it may adopt the orphans of everything it
    # starts: a code package's daemonised grandchild is then found among its own children.
    adopt_orphans(asyncio.get_running_loop())
    try:
        await serve(
            state_dir,
            port=port,
            settings=settings,
            nodes=nodes,
            ready_fd=ready_fd,
            allow_users=allow_users,
            owner_fd=owner_fd,
        )
    finally:
        if remove_state:
            # After serve: every hosted process has stopped and the directory's lock is
            # released, so nothing writes into it any more (but this process's log, which
            # lives on unlinked).
            shutil.rmtree(state_dir, ignore_errors=True)
