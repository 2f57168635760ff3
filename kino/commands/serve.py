"""`kino serve`: OpenAI's Videos API and the web studio on one port (see docs/serve.md).

The order on start: check the options, take the data directory's lock, bind the port (a busy port or a
directory another server uses is one line and exit 2, before anything loads), load the model, then print
the banner and serve on the socket already bound.
"""

from __future__ import annotations

import errno
import socket
from pathlib import Path
from typing import Annotated

import typer

from kino.errors import InputError
from kino.serve.config import RestartPolicy


def serve(
    model: Annotated[list[Path] | None, typer.Option(help="A model folder, [NAME=]DIR (repeatable: several models "
                                                     "at once, the first the default; default: the built-in model).")] = None,
    data_dir: Annotated[Path, typer.Option(help="Jobs database, videos and uploads (created 0700).")] = Path("kino-serve-data"),
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8000,
    api_key_file: Annotated[Path | None, typer.Option(help="A file of accepted API keys, one a line (also KINO_API_KEYS).")] = None,
    api_key: Annotated[list[str] | None, typer.Option(hidden=True, help="Refused: a key on the command line shows in ps.")] = None,
    no_auth: Annotated[bool, typer.Option("--no-auth", help="Accept requests without a key (loopback hosts only).")] = False,
    device: Annotated[list[str] | None, typer.Option(help="A torch device; one worker each (repeatable).")] = None,
    threads: Annotated[int, typer.Option(help="Torch CPU threads (0: torch's default).")] = 0,
    queue_size: Annotated[int, typer.Option(help="Queued jobs past which requests get 429.")] = 32,
    max_active_per_key: Annotated[int, typer.Option(help="Unfinished jobs one key may have.")] = 8,
    max_seconds: Annotated[float, typer.Option(help="Longest video a request may ask for or end up with (extensions, loops, connections).")] = 20.0,
    size: Annotated[list[str] | None, typer.Option(help="A size to offer, [NAME=]WIDTHxHEIGHT (repeatable; NAME= "
                                                    "for that model only; default: each model's own).")] = None,
    steps: Annotated[int | None, typer.Option(help="Sampling steps (default: the model's).")] = None,
    enhance: Annotated[bool, typer.Option("--enhance/--no-enhance", help="Expand prompts first.")] = True,
    expiry: Annotated[int, typer.Option(help="Seconds a finished video is kept.")] = 24 * 3600,
    on_restart: Annotated[RestartPolicy, typer.Option(help="What happens to a job interrupted by a crash.")] = RestartPolicy.RETRY,
    max_attempts: Annotated[int, typer.Option(help="Runs a job gets in all (with --on-restart retry).")] = 2,
    quota_mb_per_key: Annotated[int, typer.Option(help="MiB of videos and inputs one key may keep.")] = 2048,
    quota_mb: Annotated[int, typer.Option(help="MiB of videos and inputs all keys may keep.")] = 20480,
    policy: Annotated[Path | None, typer.Option(help="Safety policy file.")] = None,
    lora: Annotated[list[str] | None, typer.Option(help="A LoRA file FILE[:SCALE] applied to the model (repeatable).")] = None,
) -> None:
    """Serve OpenAI's Videos API (/v1/videos) and the web studio (/) with kino's model."""
    import uvicorn

    from kino.serve.app import create_app
    from kino.serve.config import ServeConfig, keys_from_env
    from kino.serve.lock import DataDirLock

    if api_key:
        raise InputError("--api-key would show the key to every user of this machine (ps); put keys in a file "
                         "(--api-key-file PATH, one a line) or in KINO_API_KEYS")
    kw = {"sizes": tuple(size)} if size else {}
    config = ServeConfig(model_dir=model[0] if model else None, more_models=tuple(model[1:]) if model else (),
                         data_dir=data_dir, host=host, port=port,
                         api_keys=keys_from_file(api_key_file) + keys_from_env(), no_auth=no_auth,
                         devices=tuple(device or ("cpu",)), threads=threads, queue_size=queue_size,
                         max_active_per_key=max_active_per_key, max_seconds=max_seconds, steps=steps,
                         enhance=enhance, expiry_seconds=expiry, on_restart=on_restart, max_attempts=max_attempts,
                         quota_bytes_per_key=quota_mb_per_key * 2**20, quota_bytes_total=quota_mb * 2**20,
                         safety_policy=policy, loras=tuple(lora or ()), **kw)
    lock = DataDirLock(config.data_dir).acquire()
    sock = bind(host, port)
    app = create_app(config, lock=lock)
    bound = sock.getsockname()[1]
    typer.echo(f"kino serve: http://{host}:{bound}/ (API at /v1/videos, documentation at /docs)")
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5))
    server.run(sockets=[sock])


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port; InputError (one line, exit 2) when it is taken or not allowed."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise InputError(f"port {port} on {host} is in use by another program; stop it or give --port N") from None
        raise InputError(f"cannot listen on {host}:{port} ({e.strerror or e})") from None
    sock.set_inheritable(True)
    return sock


def keys_from_file(path: Path | None) -> tuple[str, ...]:
    """API keys from a file, one a line (blank lines and # comments skipped)."""
    if path is None:
        return ()
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as e:
        raise InputError(f"--api-key-file {path}: cannot read it ({e.strerror or e})") from None
    keys = tuple(line.strip() for line in lines if line.strip() and not line.strip().startswith("#"))
    if not keys:
        raise InputError(f"--api-key-file {path} holds no key (one a line)")
    return keys


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
