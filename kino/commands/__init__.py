"""Command groups of the `kino` CLI; each module has `register(app)`. Heavy imports stay inside commands."""

from kino.commands import enhance, quickstart, world

COMMAND_MODULES = [enhance, quickstart, world]
