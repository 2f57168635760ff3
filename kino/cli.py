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


def _print_version(value: bool) -> None:
    if value:
        from kino import __version__

        typer.echo(f"kino {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print kino's version and exit.", is_eager=True,
                                 callback=_print_version),
) -> None:
    """kino: text to video with a diffusion transformer over spacetime patches."""


def command():
    """The click command of the app, with help that reads for people: flags show no `<bool>` type, a
    repeatable option shows its item type (`<str>`, not `<list[str]>`) and an argument shows as
    PROMPT in the usage line (not `{prompt}`)."""
    cmd = typer.main.get_command(app)
    _tidy(cmd)
    return cmd


def _tidy(cmd) -> None:
    from typer.core import TyperArgument, TyperOption

    for param in cmd.params:
        if isinstance(param, TyperOption) and param.is_flag:
            param.metavar = ""  # a flag takes no value: no type column
        elif isinstance(param, TyperOption) and param.multiple and param.metavar is None:
            label = param.bare_type()
            if label.startswith("list[") and label.endswith("]"):
                param.metavar = f"<{label[5:-1]}>"  # repeat the option for several
        elif isinstance(param, TyperArgument):
            param.__class__ = _usage_argument(type(param))
    get_help_option = cmd.get_help_option

    def help_option(ctx):
        opt = get_help_option(ctx)
        if opt is not None:
            opt.metavar = ""
        return opt

    cmd.get_help_option = help_option
    for sub in getattr(cmd, "commands", {}).values():
        _tidy(sub)


def _usage_argument(base: type) -> type:
    """A subclass of typer's argument whose usage piece is NAME (or [NAME] when optional) and whose
    type is the item's for several (`<str>`, not `<list[str]>`)."""

    class Argument(base):
        def display_type(self, ctx) -> str:
            label = super().display_type(ctx)
            return f"<{label[6:-2]}>" if label.startswith("<list[") else label  # "keyframes... <str>"

        def _usage_display_name(self) -> str:
            name = (self.metavar or self.name).upper()
            name = name if self.required else f"[{name}]"
            return name + ("..." if self.nargs != 1 else "")

    return Argument


def fail(message: str, code: int) -> None:
    print(f"kino: error: {message}", file=sys.stderr)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `kino` script."""
    # CPU threads sleep between parallel regions instead of spinning (set before torch loads its OpenMP
    # runtime; a value the user set wins). On a busy 2-core machine spinning threads doubled the CPU
    # of a cold `kino generate` (8.7-10.1 s user against 5.8-6.2 s, BENCHMARKS.md).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:  # recent typer vendors click; older releases use click itself
        from typer._click import exceptions as click_exc
    except ImportError:  # pragma: no cover
        from click import exceptions as click_exc

    try:
        rv = command().main(args=argv, standalone_mode=False, prog_name="kino")
    except KinoError as e:
        fail(one_line(e), e.exit_code)
    except click_exc.NoArgsIsHelpError:
        sys.exit(0)  # help was printed
    except typer.Abort:
        fail("interrupted", 130)
    except click_exc.ClickException as e:
        # typer's value coercion words errors as pydantic does ("Value error, 'x' is not one of ...")
        fail(one_line(Exception(e.format_message().replace("Value error, ", ""))), e.exit_code)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except Exception as e:  # a bug: say so in one line unless asked for the traceback
        if os.environ.get("KINO_DEBUG"):
            raise
        fail(f"internal error: {type(e).__name__}: {one_line(e)} (set KINO_DEBUG=1 for the traceback)", 70)
    sys.exit(rv if isinstance(rv, int) else 0)
