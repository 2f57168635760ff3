"""`kino serve`: OpenAI's Videos API and the web studio on one port (see docs/serve.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kino.serve.config import RestartPolicy


def serve(
    model: Annotated[Path | None, typer.Option(help="Pipeline directory (default: the built-in model).")] = None,
    data_dir: Annotated[Path, typer.Option(help="Jobs database, videos and uploads.")] = Path("kino-serve-data"),
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8000,
    api_key: Annotated[list[str] | None, typer.Option(help="An accepted API key (repeatable; also KINO_API_KEYS).")] = None,
    no_auth: Annotated[bool, typer.Option("--no-auth", help="Accept requests without a key (loopback hosts only).")] = False,
    device: Annotated[list[str] | None, typer.Option(help="A torch device; one worker each (repeatable).")] = None,
    threads: Annotated[int, typer.Option(help="Torch CPU threads (0: torch's default).")] = 0,
    queue_size: Annotated[int, typer.Option(help="Queued jobs past which requests get 429.")] = 32,
    max_active_per_key: Annotated[int, typer.Option(help="Unfinished jobs one key may have.")] = 8,
    max_seconds: Annotated[float, typer.Option(help="Longest video a request may ask for.")] = 20.0,
    size: Annotated[list[str] | None, typer.Option(help="A size to offer, WIDTHxHEIGHT (repeatable).")] = None,
    steps: Annotated[int | None, typer.Option(help="Sampling steps (default: the model's).")] = None,
    enhance: Annotated[bool, typer.Option("--enhance/--no-enhance", help="Expand prompts first.")] = True,
    expiry: Annotated[int, typer.Option(help="Seconds a finished video is kept.")] = 24 * 3600,
    on_restart: Annotated[RestartPolicy, typer.Option(help="What happens to a job interrupted by a crash.")] = RestartPolicy.RETRY,
    max_attempts: Annotated[int, typer.Option(help="Runs a job gets in all (with --on-restart retry).")] = 2,
    policy: Annotated[Path | None, typer.Option(help="Safety policy file.")] = None,
) -> None:
    """Serve OpenAI's Videos API (/v1/videos) and the web studio (/) with kino's model."""
    import uvicorn

    from kino.serve.app import create_app
    from kino.serve.config import ServeConfig, keys_from_env

    kw = {"sizes": tuple(size)} if size else {}
    config = ServeConfig(model_dir=model, data_dir=data_dir, host=host, port=port,
                         api_keys=tuple(api_key or ()) + keys_from_env(), no_auth=no_auth,
                         devices=tuple(device or ("cpu",)), threads=threads, queue_size=queue_size,
                         max_active_per_key=max_active_per_key, max_seconds=max_seconds, steps=steps,
                         enhance=enhance, expiry_seconds=expiry, on_restart=on_restart, max_attempts=max_attempts,
                         safety_policy=policy, **kw)
    app = create_app(config)
    typer.echo(f"kino serve: http://{host}:{port}/ (API at /v1/videos, documentation at /docs)")
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=5)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
