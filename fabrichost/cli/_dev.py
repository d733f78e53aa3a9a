"""`fabrichost dev PACKAGE`: deploy a package, then apply every saved change as an upgrade of
the package it belongs to, following the services' console output; Ctrl-C stops it all.

The agent of the state directory is reused when one serves it; otherwise one is started tied
to this command (``LocalCluster``'s ``--owner-fd``), so it stops with it, even after a SIGKILL.
The watching and the printing are here; what a change means and how it is applied is
``fabrichost.dev``'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Final, NoReturn

import click
import watchfiles

from fabrichost.cli._cluster import ALLOW_USER_OPTION, FORK_SERVER_OPTION, NODES_OPTION
from fabrichost.cli._follow import ConsoleFollower, Selection
from fabrichost.cli._group import EXIT_ERROR, ExitCode, cli
from fabrichost.cli._logs import AgentLabels
from fabrichost.cli._output import parse_params, state_dir_of, state_dir_option
from fabrichost.client import FabricClient
from fabrichost.daemon import running_agent
from fabrichost.dev import DevSession, Outcome, stage_folder, upgrade_application
from fabrichost.errors import ConflictError, FabricHostError, ManifestError

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import FrameType

    from fabrichost import LocalCluster

# watchfiles: a burst ends after this many ms without a save, or after DEBOUNCE_MS in all.
STEP_MS: Final = 50
DEBOUNCE_MS: Final = 1600
# How long a wait for a save lasts before watchfiles says so (only the first one matters).
IDLE_MS: Final = 200
PREFIX: Final = "dev |"


@cli.command("dev")
@click.argument("package", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--name", default=None, help="Application name (default fabric:/<folder>).")
@click.option("--param", "params", multiple=True, metavar="K=V", help="Application parameter.")
@NODES_OPTION
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=19080,
    show_default=True,
    help="HTTP port of an agent this command starts (0 picks a free one).",
)
@ALLOW_USER_OPTION
@FORK_SERVER_OPTION
@state_dir_option
def dev(
    package: Path,
    name: str | None,
    params: tuple[str, ...],
    nodes: int | None,
    port: int,
    allow_users: tuple[int, ...],
    fork_server: bool,
    state_dir: str | None,
) -> None:
    """Deploy PACKAGE and keep it running the code you save.

    Each save is mapped through the manifests to the code, config or data package it belongs
    to and applied as an upgrade of that package only (versions are bumped in a staged copy,
    never in your files). A manifest that does not check keeps the running version. Reuses the
    state directory's agent, or starts one that stops with this command. Ctrl-C stops
    everything this command started.
    """
    source = package.resolve()
    app_name = name or f"fabric:/{source.name}"
    parameters = parse_params(params)
    state = state_dir_of(state_dir).resolve()
    if state == source or source in state.parents:
        raise click.BadParameter(
            f"the state directory {state} is inside the package: its files would be watched "
            "and copied with it; choose another --state-dir",
            param_hint="--state-dir",
        )
    stopped: list[str] = []  # what stopping did, for the last line
    agent = _agent(state, nodes, port, allow_users, fork_server, stopped)
    with _terminate_as_interrupt(), agent as (client, pid):
        session = DevSession(
            client,
            source,
            app_name,
            parameters,
            stage_root=stage_folder(state, app_name),
            apply=upgrade_application,
        )
        # The follower asks for names from its own thread: a client of its own.
        labels_client = FabricClient.for_state_dir(state)
        follower = ConsoleFollower(
            state / "_App",
            labels=AgentLabels(labels_client),
            selection=Selection(application=app_name),
        )
        following = _FollowThread(follower, pid)
        ok = True
        try:
            following.start()
            _watch(session, source)
        except KeyboardInterrupt:
            pass  # Ctrl-C: the way to stop
        except FabricHostError as exc:
            click.echo(f"Error: {exc}", err=True)
            ok = False
        finally:
            stopped.append(_stop_session(session))
            following.stop()
            labels_client.close()
    click.echo(f"{PREFIX} stopped: {'; '.join(part for part in stopped if part)}")
    if not ok:
        raise ExitCode(EXIT_ERROR)


def _watch(session: DevSession, source: Path) -> None:
    """Deploy once the folder is watched (so no save made meanwhile is missed), again on every
    save while the package does not check; then apply each burst of saves."""
    watching = started = False
    for changes in watchfiles.watch(
        source,
        watch_filter=watchfiles.DefaultFilter(),
        step=STEP_MS,
        debounce=DEBOUNCE_MS,
        rust_timeout=IDLE_MS,
        yield_on_timeout=True,  # the first yield says the watcher is set up
    ):
        paths = _saved_paths(changes)
        if not watching or (paths and not started):
            watching = True
            started = _start(session)
            if started:
                click.echo(
                    f"{PREFIX} watching {source}; each save is applied as an upgrade. "
                    "Ctrl-C stops."
                )
            continue
        if not paths:
            continue
        outcome = session.change(paths)
        versions = session.versions
        _print(outcome, f"{session.type_name} {versions.application if versions else ''}")


def _saved_paths(changes: set[tuple[watchfiles.Change, str]]) -> list[Path]:
    """The paths of one burst, less the files made and deleted within it (an editor's or
    sed's temporary file, saved over the real one)."""
    added = {path for change, path in changes if change == watchfiles.Change.added}
    return sorted(
        {Path(path) for _, path in changes if path not in added or Path(path).exists()}
    )


def _start(session: DevSession) -> bool:
    try:
        outcome = session.start()
    except ManifestError as exc:
        click.echo(f"{PREFIX} {session.source} does not check; fix it and save:")
        for diagnostic in exc.diagnostics:
            click.echo(str(diagnostic))
        return False
    except ConflictError:
        raise  # another application holds the name: saving cannot fix that
    except FabricHostError as exc:
        click.echo(f"{PREFIX} {session.app_name} could not be deployed; fix it and save: {exc}")
        return False
    verb = "created" if session.created else "upgraded"
    click.echo(
        f"{PREFIX} {session.app_name} {verb}: {session.type_name} {outcome.version}, "
        f"Ready in {outcome.seconds:.2f} s"
    )
    return True


def _stop_session(session: DevSession) -> str:
    """Stop the session; what it did, as a part of the last line ("" if there was nothing)."""
    try:
        deleted = session.stop()
    except FabricHostError as exc:
        return f"{session.app_name} not deleted: {exc}"
    if deleted:
        return f"deleted {session.app_name}"
    if session.versions is not None:  # deployed, as an upgrade of an application that was there
        return f"left {session.app_name} running (it was there before dev)"
    return ""


def _print(outcome: Outcome, running: str) -> None:
    """One line for one change (and the problems of a package that does not check)."""
    if outcome.ignored_only:
        click.echo(f"{PREFIX} {outcome.files}: not part of any package; nothing to do")
    elif outcome.diagnostics:
        click.echo(
            f"{PREFIX} {outcome.files}: does not check; {running} keeps running (fix and save):"
        )
        for diagnostic in outcome.diagnostics:
            click.echo(str(diagnostic))
    elif outcome.error:
        click.echo(
            f"{PREFIX} {outcome.files}: not applied, {running} keeps running: {outcome.error}"
        )
    elif not outcome.applied:
        click.echo(f"{PREFIX} {outcome.files}: nothing deployed changed; {running} runs")
    else:
        versions = ", ".join(str(part) for part in outcome.bumped) or "the application"
        did = []
        if outcome.restarted or not outcome.config_delivered:
            restarts = ", ".join(str(slot) for slot in outcome.restarted) or "nothing"
            did.append(f"restarted {restarts}")
        if outcome.config_delivered:
            took = ", ".join(str(slot) for slot in outcome.config_delivered)
            did.append(f"config delivered to {took} (no restart)")
        click.echo(
            f"{PREFIX} {outcome.files}: {versions} → {outcome.version}; "
            f"{'; '.join(did)}; {outcome.seconds:.2f} s"
        )


@contextlib.contextmanager
def _agent(
    state: Path,
    nodes: int | None,
    port: int,
    allow_users: tuple[int, ...],
    fork_server: bool,
    stopped: list[str],
) -> Iterator[tuple[FabricClient, int]]:
    """The state directory's serving agent, or one started for this command and stopped
    with it; what became of it is added to ``stopped``."""
    cluster: LocalCluster | None = None
    record = running_agent(state)
    if record is None:
        from fabrichost import LocalCluster  # (the daemon's start: only when needed)

        state.mkdir(parents=True, exist_ok=True)
        cluster = LocalCluster(
            nodes=nodes,
            state_dir=state,
            port=port,
            allow_users=allow_users,
            fork_server=fork_server,
        )
        client, pid = cluster.client, cluster.agent_pid
        click.echo(f"{PREFIX} started agent {pid} at {cluster.endpoint} (state in {state})")
    else:
        client, pid = FabricClient.for_state_dir(state), record.AgentProcessId
        click.echo(f"{PREFIX} using agent {pid} at {record.Endpoint} (state in {state})")
    try:
        yield client, pid
    finally:
        if cluster is not None:
            cluster.stop()
            stopped.append(f"stopped agent {pid}")
        else:
            client.close()
            stopped.append(f"left agent {pid} running")


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM stops this command as Ctrl-C does: what it started is stopped."""

    def interrupt(signum: int, frame: FrameType | None) -> NoReturn:
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class _FollowThread:
    """The console follower, on an event loop of its own in a thread, so the services' output
    keeps coming while a change is applied."""

    def __init__(self, follower: ConsoleFollower, agent_pid: int) -> None:
        self._follower = follower
        self._agent_pid = agent_pid
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="follow", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()

    def stop(self) -> None:
        """Print what is left, then stop following."""
        if self._loop is not None and self._task is not None:
            with contextlib.suppress(RuntimeError):  # its loop already closed
                self._loop.call_soon_threadsafe(self._task.cancel)
        if self._thread.ident is not None:
            self._thread.join()
        self._follower.print_new()
        self._follower.close()

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._ready.set()
        with contextlib.suppress(asyncio.CancelledError):
            await self._follower.follow(until_exit_of=self._agent_pid)
