"""`kino world ...`: sample the procedural world and analyze videos (filled in by the world work)."""

from __future__ import annotations

import typer

world_app = typer.Typer(help="The procedural world: sample clips, analyze videos.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(world_app, name="world")
