"""The `kino` command line: a thin typer app over the pipeline and the package's parts.

Each command group lives in `kino/commands/<group>.py` and exposes `register(app)`; this file
only assembles them and turns `KinoError` into one line, `kino: error: ...`, with its exit code.
Set KINO_DEBUG=1 to see the traceback of an unexpected error.
"""

from __future__ import annotations

import os
import sys

import typer

from kino.errors import KinoError, one_line

app = typer.Typer(
    name="kino",
    help="kino: text to video with a diffusion transformer over spacetime patches.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    from kino.commands import COMMAND_MODULES

    for module in COMMAND_MODULES:
        module.register(app)


_register()


def fail(message: str, code: int) -> None:
    print(f"kino: error: {message}", file=sys.stderr)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `kino` script."""
    try:  # recent typer vendors click; older releases use click itself
        from typer._click import exceptions as click_exc
    except ImportError:  # pragma: no cover
        from click import exceptions as click_exc

    try:
        rv = app(args=argv, standalone_mode=False, prog_name="kino")
    except KinoError as e:
        fail(one_line(e), e.exit_code)
    except click_exc.NoArgsIsHelpError:
        sys.exit(0)  # help was printed
    except typer.Abort:
        fail("interrupted", 130)
    except click_exc.ClickException as e:
        fail(one_line(Exception(e.format_message())), e.exit_code)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except Exception as e:  # a bug: say so in one line unless asked for the traceback
        if os.environ.get("KINO_DEBUG"):
            raise
        fail(f"internal error: {type(e).__name__}: {one_line(e)} (set KINO_DEBUG=1 for the traceback)", 70)
    sys.exit(rv if isinstance(rv, int) else 0)
