"""Command groups of the `kino` CLI; each module has `register(app)`. Heavy imports stay inside commands."""

from kino.commands import quickstart, world

COMMAND_MODULES = [quickstart, world]
