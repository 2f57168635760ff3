"""`kino vae ...`: reconstruct a video through the VAE, and evaluate a VAE."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import typer

from kino.commands.output import count

vae_app = typer.Typer(help="The video compression network (causal VAE).", no_args_is_help=True)

MODEL_HELP = ("A VAE: a `kino train vae` run folder (its newest checkpoint), a VAE or pipeline folder. "
              "[default: the built-in model's VAE]")


def check_size(width: int, height: int, f: int, name: str) -> None:
    """Raise InputError unless both sides are multiples of the VAE's spatial factor `f`."""
    from kino.errors import InputError

    if width % f or height % f:
        sw, sh = max(f, width // f * f), max(f, height // f * f)
        raise InputError(f"{name}: size {width}x{height} is not a multiple of {f}; crop or scale it to e.g. {sw}x{sh}")


def _pieces(frames: Iterator[np.ndarray], factor: int, padded: list[int]):
    """uint8 frames -> tensor pieces (1, 3, t, H, W): the first frame, then groups of `factor`.

    A clip must have 1 + factor*k frames: a last group shorter than `factor` is padded with copies of
    its last frame, and how many were added is appended to `padded` (the caller trims them off again).
    """
    from kino.data.world import frames_to_tensor

    group: list[np.ndarray] = []
    first = True
    for frame in frames:
        group.append(frame)
        if first or len(group) == factor:
            yield frames_to_tensor(np.stack(group))[None]  # (1, 3, t, H, W)
            group, first = [], False
    if group:
        padded.append(factor - len(group))
        group += [group[-1]] * (factor - len(group))
        yield frames_to_tensor(np.stack(group))[None]


@vae_app.command("reconstruct")
def reconstruct_cmd(
    src: Path = typer.Argument(..., help="A video or image to encode and decode."),
    out: Path = typer.Option(..., "--output", "-o", "--out", help="Where to write the reconstruction (.mp4, .gif, "
                             ".png)."),
    model: Path = typer.Option(None, help=MODEL_HELP),
    device: str = typer.Option("cpu", help="Torch device."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the output if it exists (otherwise refused)."),
    c2pa: bool = typer.Option(True, "--c2pa/--no-c2pa", help="Sign the output with C2PA content credentials."),
) -> None:
    """Encode a video to the latent and decode it back, streaming (memory independent of length).

    The output is published like every kino output: watermarked, frame-reviewed if configured, and
    signed (mode "vae-reconstruction" in the manifest)."""
    from kino.commands.generate import check_overwrite
    from kino.data.world import tensor_to_frames
    from kino.io import iter_frames, probe
    from kino.models.vae import CausalVAE
    from kino.models.vae_stream import decode_stream, encode_stream
    from kino.train.vae_folder import resolve_vae

    check_overwrite(out, overwrite)
    info = probe(src)
    vae = CausalVAE.from_pretrained(resolve_vae(model), device=device)
    c = vae.config
    # checked before streaming: stopping PyAV's threaded decoder mid-stream can hang at close
    check_size(info.width, info.height, c.spatial_factor, src.name)
    padded: list[int] = []
    pieces = (p.to(device) for p in _pieces(iter_frames(src), c.temporal_factor, padded))
    latents = (vae.normalize(mean) for mean, _ in encode_stream(vae, pieces))
    held: deque[np.ndarray] = deque()  # the last frames, until we know how many of them are padding
    n = 0
    import hashlib

    from kino.safety import GenerationInfo, SafetyConfig
    from kino.safety.publish import PublishWriter

    safety = SafetyConfig.load().with_(c2pa=c2pa)
    with open(src, "rb") as f:  # the source identifies the output (and so its watermark id)
        source = hashlib.file_digest(f, "sha256").hexdigest()
    record = GenerationInfo(model=str(model or "built-in VAE"), mode="vae-reconstruction",
                            settings={"source_sha256": source, "width": info.width, "height": info.height,
                                      "fps": info.fps})
    with PublishWriter(out, info.fps, record, safety, expected_frames=info.num_frames) as w:
        for chunk in decode_stream(vae, latents):
            for frame in tensor_to_frames(chunk[0]):
                held.append(frame)
                if len(held) >= c.temporal_factor:
                    w.write(held.popleft())
                    n += 1
        for frame in list(held)[: len(held) - sum(padded)]:  # as many frames out as came in
            w.write(frame)
            n += 1
    typer.echo(f"wrote {out} ({count(n, 'frame')})")


@vae_app.command("eval")
def eval_cmd(
    data: str = typer.Option("heldout", help="'heldout' (held-out world clips) or a folder of videos."),
    model: Path = typer.Option(None, help=MODEL_HELP),
    clips: int = typer.Option(32, help="How many clips to evaluate."),
    max_side: int = typer.Option(256, help="Folder clips larger than this on their long side are scaled down "
                                 "to it (the first 33 frames of each)."),
    device: str = typer.Option("cpu", help="Torch device."),
    threads: int = typer.Option(0, help="Torch CPU threads (0: all cores)."),
    json_out: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """Print PSNR, SSIM, compression factor and encode/decode throughput of a VAE."""
    import json
    from dataclasses import asdict

    import torch

    from kino.errors import InputError
    from kino.models.vae import CausalVAE
    from kino.train.vae_eval import HELDOUT, evaluate, folder_clips, heldout_clips
    from kino.train.vae_folder import resolve_vae

    if threads:
        torch.set_num_threads(threads)
    if clips < 1:
        raise InputError(f"--clips {clips} must be >= 1")
    vae = CausalVAE.from_pretrained(resolve_vae(model), device=device)
    if max_side < vae.config.spatial_factor:
        raise InputError(f"--max-side {max_side} must be at least {vae.config.spatial_factor}")
    source = heldout_clips(clips) if data == HELDOUT else folder_clips(data, clips, max_side=max_side)
    res = evaluate(vae, _progress(source, clips, data), device=device)
    if json_out:
        typer.echo(json.dumps(asdict(res), indent=2))
        return
    typer.echo(f"PSNR {res.psnr:.2f} dB  SSIM {res.ssim:.4f}  compression {res.compression:.1f}x  "
               f"encode {res.encode_fps:.1f} frames/s  decode {res.decode_fps:.1f} frames/s  "
               f"({res.clips} clips, {res.frames} frames)")


def _progress(clips, total: int, data: str):
    """The clips, with one progress line per clip on stderr (a long evaluation never looks stuck)."""
    import sys
    import time

    t0 = time.perf_counter()
    for i, clip in enumerate(clips):
        _, t, h, w = clip.shape
        print(f"vae eval: clip {i + 1} of at most {total} from {data} ({w}x{h}, {count(t, 'frame')}; "
              f"{time.perf_counter() - t0:.0f} s so far)", file=sys.stderr, flush=True)
        yield clip


def register(app: typer.Typer) -> None:
    app.add_typer(vae_app, name="vae")
