"""The root click group and the mapping from errors to exit codes.

Exit codes: 0 ok, 1 error, 2 usage, 3 conflict (a name that is already taken).
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Final

import click

from fabrichost import __version__
from fabrichost.errors import ConflictError, FabricHostError

if TYPE_CHECKING:
    from collections.abc import Sequence

EXIT_OK: Final = 0
EXIT_ERROR: Final = 1
EXIT_USAGE: Final = 2
EXIT_CONFLICT: Final = 3


class ExitCode(Exception):
    """Raised by a command that has printed its result and wants a specific exit code."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


#: Which module defines each top-level command. A command's module is imported only when that
#: command runs (or ``--help`` lists them all), so ``fabrichost --version`` or a query loads
#: neither the agent nor the HTTP server. ``tests/cli/test_lazy_commands.py`` keeps this true.
COMMAND_MODULES: Final[dict[str, str]] = {
    "app": "_apps",
    "service": "_apps",
    "up": "_cluster",
    "down": "_cluster",
    "status": "_cluster",
    "view": "_cluster",
    "node": "_cluster",
    "agent": "_cluster",
    "demo": "_demo",
    "dev": "_dev",
    "deployed": "_deployed",
    "code-package": "_deployed",
    "health": "_health",
    "instance": "_instances",
    "logs": "_logs",
    "manifest": "_manifest",
    "run": "_run",
    "samples": "_samples",
}


class LazyGroup(click.Group):
    """A group whose commands are imported on first use (see :data:`COMMAND_MODULES`)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMAND_MODULES})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMAND_MODULES.get(cmd_name)
        if module is not None and cmd_name not in self.commands:
            importlib.import_module(f"fabrichost.cli.{module}")  # registers its commands
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fabrichost")
def cli() -> None:
    """fabrichost: a local process host for Service Fabric application packages."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``) and return the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        result = cli.main(args=args, prog_name="fabrichost", standalone_mode=False)
    except ExitCode as exc:
        return exc.code
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.Abort:
        click.echo("Aborted.", err=True)
        return EXIT_ERROR
    except click.UsageError as exc:
        exc.show()
        return EXIT_USAGE
    except click.ClickException as exc:
        exc.show()
        return EXIT_ERROR
    except ConflictError as exc:
        click.echo(f"Conflict: {exc.message} ({exc.code})", err=True)
        return EXIT_CONFLICT
    except FabricHostError as exc:
        click.echo(f"Error: {exc}", err=True)
        return EXIT_ERROR
    return result if isinstance(result, int) else EXIT_OK
