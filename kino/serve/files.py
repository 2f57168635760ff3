"""Where the server keeps files, all under server-made names (a job id, or a random upload name).

    DATA/videos/<id>.mp4              the published video (watermarked, C2PA-signed)
    DATA/videos/<id>.thumbnail.jpg    its middle frame
    DATA/videos/<id>.spritesheet.jpg  up to 10 frames side by side
    DATA/uploads/<random>.png|.mp4    checked uploads and hard links to source videos of queued jobs

No path is ever built from user input: ids are checked against their server-made form first, and an
upload is stored only after its header passed the server's limits and it decodes (an image through
Pillow, a video's first frame through PyAV, its packets counted); its name says what it decoded as,
never what the client called it.
"""

from __future__ import annotations

import io
import os
import secrets
from pathlib import Path

import numpy as np

from kino.errors import InputError, MediaError
from kino.serve.jobs import valid_id

VARIANTS = {"video": ("mp4", "video/mp4"), "thumbnail": ("thumbnail.jpg", "image/jpeg"),
            "spritesheet": ("spritesheet.jpg", "image/jpeg")}
SPRITES = 10


class Storage:
    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.videos = self.root / "videos"
        self.uploads = self.root / "uploads"
        for d in (self.videos, self.uploads):
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
        for stale in [*self.videos.glob(".*"), *self.uploads.glob(".*")]:  # half-written by a killed server
            stale.unlink(missing_ok=True)

    def asset(self, jid: str, variant: str = "video") -> Path:
        if not valid_id(jid) or variant not in VARIANTS:
            raise ValueError("not a server-made id or variant")  # a bug, never user input reaching here
        return self.videos / f"{jid}.{VARIANTS[variant][0]}"

    def input_path(self, name: str) -> Path:
        """A stored input from its recorded name (made by this class)."""
        p = self.uploads / Path(name).name
        return p

    def delete_assets(self, jid: str) -> None:
        for v in VARIANTS:
            self.asset(jid, v).unlink(missing_ok=True)

    def delete_inputs(self, names) -> None:
        for n in names:
            self.input_path(n).unlink(missing_ok=True)

    # -- inputs --------------------------------------------------------------------------------------

    def keep_source(self, jid: str) -> str:
        """A hard link (else a copy) of a finished video, so a queued job keeps its input if it is deleted."""
        return _link(self.asset(jid), self.uploads / f"src-{secrets.token_hex(12)}.mp4")

    def copy_input(self, name: str) -> str:
        """A hard link (else a copy) of a stored input under a new name, for a job that reuses another's inputs
        (a remix): each job deletes its own inputs, so the two never share a file."""
        src = self.input_path(name)
        return _link(src, self.uploads / f"{name.split('-', 1)[0]}-{secrets.token_hex(12)}{src.suffix}")

    def save_image(self, data: bytes, what: str, max_pixels: int = 4096 * 4096) -> str:
        """Check an uploaded image's header (width x height <= max_pixels) before decoding it, then decode it
        and store it as PNG under a random name. InputError if it is too large or does not decode."""
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(io.BytesIO(data)) as im:  # reads the header only
                if im.width * im.height > max_pixels:
                    side = int(max_pixels ** 0.5)
                    raise InputError(f"{what} is {im.width}x{im.height}; images of up to {max_pixels} pixels "
                                     f"({side}x{side}) are accepted")
                im.load()
                rgb = im.convert("RGB")
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError, SyntaxError):
            raise InputError(f"{what} is not a readable image (PNG, JPEG, WebP, ...); it did not decode") from None
        name = f"img-{secrets.token_hex(12)}.png"
        tmp = self.uploads / f".{name}"
        try:
            rgb.save(tmp, format="PNG")
            tmp.rename(self.uploads / name)
        finally:
            tmp.unlink(missing_ok=True)
        return name

    def save_video(self, data: bytes, what: str, max_pixels: int, max_frames: int) -> tuple[str, int, tuple[int, int]]:
        """Store an uploaded video after checking its header and packets (kino.io.scan_video: size, declared
        duration and frame count, one frame decoded) against the limits; -> (name, frames, (width, height)).
        InputError when it is too large or does not decode."""
        from kino.io import scan_video

        name = f"vid-{secrets.token_hex(12)}.mp4"
        tmp = self.uploads / f".{name}"
        try:
            tmp.write_bytes(data)
            try:
                info = scan_video(tmp, max_frames)
            except (MediaError, OSError, ValueError):
                raise InputError(f"{what} is not a readable video (MP4, WebM, MOV, ...); it did not decode") from None
            if info.width * info.height > max_pixels:
                raise InputError(f"{what} is {info.width}x{info.height}; videos of up to {max_pixels} pixels a frame "
                                 f"(1920x1080) are accepted")
            if info.num_frames > max_frames:
                raise InputError(f"{what} has more than {max_frames} frames; at most {max_frames} are accepted")
            if info.num_frames == 0:
                raise InputError(f"{what} has no frames")
            tmp.rename(self.uploads / name)
        finally:
            tmp.unlink(missing_ok=True)
        return name, info.num_frames, (info.width, info.height)

    def size_of(self, names) -> int:
        """Bytes the stored inputs `names` take."""
        total = 0
        for n in names:
            try:
                total += self.input_path(n).stat().st_size
            except OSError:
                pass
        return total

    def asset_bytes(self, jid: str) -> int:
        total = 0
        for v in VARIANTS:
            try:
                total += self.asset(jid, v).stat().st_size
            except OSError:
                pass
        return total

    # -- previews --------------------------------------------------------------------------------------

    def write_previews(self, jid: str, frames: np.ndarray) -> None:
        """Thumbnail (middle frame) and spritesheet (up to 10 frames in a row) as JPEG, written atomically."""
        from PIL import Image

        frames = np.asarray(frames)  # (T, H, W, 3) uint8
        idx = np.linspace(0, len(frames) - 1, min(SPRITES, len(frames))).round().astype(int)
        sheet = np.concatenate(list(frames[idx]), axis=1)  # (H, n * W, 3)
        for variant, image in (("thumbnail", frames[len(frames) // 2]), ("spritesheet", sheet)):
            out = self.asset(jid, variant)
            tmp = out.with_name("." + out.name)
            Image.fromarray(image).save(tmp, format="JPEG", quality=90)
            tmp.rename(out)


def _link(src: Path, dst: Path) -> str:
    """Hard-link src to dst (else copy it: another file system); returns dst's name."""
    try:
        os.link(src, dst)
    except OSError:
        dst.write_bytes(src.read_bytes())
    return dst.name
