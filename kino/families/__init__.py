"""Model families behind one interface: kino's own pipeline, LTX-Video and Wan (diffusers components).

`load_model(DIR)` looks at a folder (or a single-file checkpoint with a local diffusers config), decides
which family it holds and returns a `VideoModel`; the generation path (kino.generation) runs every
request through `VideoModel.generate`, so the command line, the Python API, the server and the evaluator
work the same with every family, as far as the family can do the mode.
"""

from kino.families.base import Family, Generated, ModelDefaults, ModelInfo, VideoModel
from kino.families.loading import detect_family, load_model

__all__ = ["Family", "Generated", "ModelDefaults", "ModelInfo", "VideoModel", "detect_family", "load_model"]
