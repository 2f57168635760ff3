"""What one served model offers: its sizes, default size and length, frame rate and frame limits.

`kino serve --model tiny=DIR --model wan=DIR` serves models of different families at once, and each has
its own native sizes (multiples of its size multiple), frame rate and frames per pass. A request's `model`
field selects one (kino/serve/api.py), and every route reads these from the ServedModel it selected: the
size a request may ask (or gets by default), the length it gets by default, the frames an input video
holds at the model's rate and the longest pass.

Sizes, per model (ServeConfig.sizes, `--size [NAME=]WIDTHxHEIGHT`): the NAME= ones given for it, else the
plain ones given, else its own: kino's DEFAULT_SIZES, another family's trained sizes both ways round
(Wan 2.1's 832x480 and 480x832). Each must be a multiple of the model's size multiple.
"""

from __future__ import annotations

from dataclasses import dataclass

from kino.errors import InputError
from kino.serve.config import DEFAULT_SIZES, ServeConfig, SizeOffer, parse_size, split_size


@dataclass(frozen=True)
class ServedModel:
    """One served model: its loaded copies (one per worker) and what requests to it get."""

    name: str
    models: tuple  # kino.families.VideoModel, one per worker (the first answers questions about the model)
    offer: SizeOffer  # the sizes it makes
    default_size: str
    default_seconds: float
    fps: float
    max_frames: int  # the most frames one pass makes
    max_input_frames: int  # the most frames an input video may hold (max_seconds at its rate)

    @property
    def model(self):
        return self.models[0]

    def offered(self) -> dict:
        """Its sizes, default size and length, rate and frames per pass, as GET /v1/models and /v1/kino/options
        list them (with the model's family, variant and modes: kino.serve.api.model_info)."""
        return {"sizes": list(self.offer.sizes), "default_size": self.default_size,
                "default_seconds": f"{self.default_seconds:g}", "fps": self.fps, "max_frames": self.max_frames}


def serve_model(name: str, models: list, config: ServeConfig) -> ServedModel:
    """`models` (one loaded VideoModel per worker) served as `name` under `config`; InputError (one line)
    when a size it is given is not one it can make."""
    from kino.generation import check_size

    m = models[0]
    d = m.defaults  # kino.families.ModelDefaults
    kino = str(m.family) == "kino"
    sizes = config.sizes_for(name)
    if not sizes or (sizes == DEFAULT_SIZES and not kino):  # none given for it: its own
        # (the default sizes are the tiny kino model's; another family offers the sizes it was trained at)
        sizes = DEFAULT_SIZES if kino else tuple(dict.fromkeys(
            f"{a}x{b}" for w, h in (d.trained_sizes or ((d.width, d.height),)) for a, b in ((w, h), (h, w))))
    for size in sizes:  # a model makes every size it offers
        try:
            check_size(*parse_size(size), d.size_multiple)
        except InputError as e:
            raise InputError(f"--size {size} for model {name} ({m.family}): {e}") from None
    native = f"{d.width}x{d.height}"
    default_size = (config.default_size if config.default_size in sizes else native if native in sizes
                    else sizes[0])
    fps = float(d.fps)
    return ServedModel(name=name, models=tuple(models), offer=SizeOffer(sizes), default_size=default_size,
                       default_seconds=config.default_seconds or min(float(d.seconds), config.max_seconds), fps=fps,
                       max_frames=d.max_frames or int(config.max_seconds * fps),
                       max_input_frames=max(1, int(config.max_seconds * fps)))


def check_named_sizes(config: ServeConfig, served: list[str]) -> None:
    """InputError when a `--size NAME=...` names no served model."""
    for entry in config.sizes:
        name, _ = split_size(entry)
        if name is not None and name not in served:
            raise InputError(f"--size {entry} names model {name}, which is not served; served models are "
                             f"{', '.join(served)}")
