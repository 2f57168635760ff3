"""`kino vae ...`: reconstruct a video through the VAE, and evaluate a VAE."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import typer

vae_app = typer.Typer(help="The video compression network (causal VAE).", no_args_is_help=True)

DEFAULT_MODEL = Path("runs/vae-world-tiny")


def check_size(width: int, height: int, f: int, name: str) -> None:
    """Raise InputError unless both sides are multiples of the VAE's spatial factor `f`."""
    from kino.errors import InputError

    if width % f or height % f:
        sw, sh = max(f, width // f * f), max(f, height // f * f)
        raise InputError(f"{name}: size {width}x{height} is not a multiple of {f}; crop or scale it to e.g. {sw}x{sh}")


def _pieces(frames: Iterator[np.ndarray], factor: int):
    """uint8 frames -> tensor pieces (1, 3, t, H, W): the first frame, then groups of `factor`.

    A last group shorter than `factor` is dropped (a clip must have 1 + factor*k frames).
    """
    from kino.data.world import frames_to_tensor

    group: list[np.ndarray] = []
    first = True
    for frame in frames:
        group.append(frame)
        if first or len(group) == factor:
            yield frames_to_tensor(np.stack(group))[None]  # (1, 3, t, H, W)
            group, first = [], False


@vae_app.command("reconstruct")
def reconstruct_cmd(
    src: Path = typer.Argument(..., help="A video or image to encode and decode."),
    out: Path = typer.Option(..., "-o", "--out", help="Where to write the reconstruction (.mp4, .gif, .png)."),
    model: Path = typer.Option(DEFAULT_MODEL, help="A VAE model folder, checkpoint or run folder."),
    device: str = typer.Option("cpu", help="Torch device."),
) -> None:
    """Encode a video to the latent and decode it back, streaming (memory independent of length)."""
    from kino.data.world import tensor_to_frames
    from kino.io import VideoWriter, iter_frames, probe
    from kino.models.vae_stream import decode_stream, encode_stream
    from kino.train.vae_eval import load_vae

    info = probe(src)
    vae = load_vae(model, device=device)
    c = vae.config
    # checked before streaming: stopping PyAV's threaded decoder mid-stream can hang at close
    check_size(info.width, info.height, c.spatial_factor, src.name)
    pieces = (p.to(device) for p in _pieces(iter_frames(src), c.temporal_factor))
    latents = (vae.normalize(mean) for mean, _ in encode_stream(vae, pieces))
    n = 0
    with VideoWriter(out, fps=info.fps) as w:
        for chunk in decode_stream(vae, latents):
            for frame in tensor_to_frames(chunk[0]):
                w.write(frame)
                n += 1
    typer.echo(f"wrote {out} ({n} frames)")


@vae_app.command("eval")
def eval_cmd(
    data: str = typer.Option("heldout", help="'heldout' (held-out world clips) or a folder of videos."),
    model: Path = typer.Option(DEFAULT_MODEL, help="A VAE model folder, checkpoint or run folder."),
    clips: int = typer.Option(32, help="How many clips to evaluate."),
    device: str = typer.Option("cpu", help="Torch device."),
    threads: int = typer.Option(0, help="Torch CPU threads (0: all cores)."),
    json_out: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """Print PSNR, SSIM, compression factor and encode/decode throughput of a VAE."""
    import json
    from dataclasses import asdict

    import torch

    from kino.errors import InputError
    from kino.train.vae_eval import HELDOUT, evaluate, folder_clips, heldout_clips, load_vae

    if threads:
        torch.set_num_threads(threads)
    if clips < 1:
        raise InputError(f"--clips {clips} must be >= 1")
    vae = load_vae(model, device=device)
    source = heldout_clips(clips) if data == HELDOUT else folder_clips(data, clips)
    res = evaluate(vae, source, device=device)
    if json_out:
        typer.echo(json.dumps(asdict(res), indent=2))
        return
    typer.echo(f"PSNR {res.psnr:.2f} dB  SSIM {res.ssim:.4f}  compression {res.compression:.1f}x  "
               f"encode {res.encode_fps:.1f} frames/s  decode {res.decode_fps:.1f} frames/s  "
               f"({res.clips} clips, {res.frames} frames)")


def register(app: typer.Typer) -> None:
    app.add_typer(vae_app, name="vae")
