"""Command groups of the `kino` CLI; each module has `register(app)`. Heavy imports stay inside commands."""

from kino.commands import (
    data,
    enhance,
    eval,
    generate,
    lora,
    model_export,
    models,
    modes,
    quickstart,
    serve,
    storyboard,
    train,
    vae,
    verify,
    world,
)

COMMAND_MODULES = [data, enhance, eval, generate, model_export, models, modes, quickstart, serve, storyboard, train, lora, vae, verify, world]
