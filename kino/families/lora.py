"""LoRA adapters of a family's transformer: add, read, write, convert and apply them.

Two file formats, both safetensors:
- diffusers (`pytorch_lora_weights.safetensors`, what kino writes): peft's keys under `transformer.`
  (`transformer.blocks.0.attn1.to_q.lora_A.weight`), the adapter's LoraConfig in the metadata entry
  `lora_adapter_metadata` as diffusers' `save_lora_weights` writes it (`transformer.r`,
  `transformer.lora_alpha`, ...), so `pipe.load_lora_weights(FILE)` reads it; kino's own entry `kino`
  says the family, the expert (Wan 2.2 A14B) and the base folder.
- ComfyUI (`kino lora export --format comfyui`): the original checkpoints' module names under
  `diffusion_model.` with `lora_A`/`lora_B` and one `.alpha` per module, which ComfyUI's LoRA loader
  maps onto its models (Wan: `blocks.0.self_attn.q`, LTX-Video: the same names as diffusers).
  diffusers converts it back (`_convert_non_diffusers_wan_lora_to_diffusers`, `..._ltxv_...`), as
  `read_lora` does here.

`apply_loras(transformers, files)` adds each file as its own named adapter, at its scale, into the
transformer it was trained for (Wan 2.2 A14B: the high-noise `transformer` or the low-noise
`transformer_2`). peft does the LoRA arithmetic everywhere: W x + scale * (alpha / r) * B A x.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from kino.errors import InputError, ModelError
from kino.families.base import Family

WEIGHT_NAME = "pytorch_lora_weights.safetensors"  # diffusers' LORA_WEIGHT_NAME_SAFE
LOW_NOISE_NAME = "pytorch_lora_weights_low_noise.safetensors"  # Wan 2.2 A14B's transformer_2 adapter
ADAPTER = "default"  # the adapter a trainer adds

# The attention and FFN projections of each family's transformer (peft suffix matches). Wan's I2V
# cross-attention image projections (add_k_proj / add_v_proj) are not in the default.
DEFAULT_TARGETS: dict[Family, tuple[str, ...]] = {
    Family.LTX: ("to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2"),
    Family.WAN: ("to_q", "to_k", "to_v", "to_out.0", "ffn.net.0.proj", "ffn.net.2"),
    Family.KINO: ("attn.qk", "attn.v", "attn.out", "cross.q", "cross.kv", "cross.out", "mlp.0", "mlp.2"),
}

# diffusers -> the original Wan checkpoint's module names (what ComfyUI loads), per path segment run
_WAN_TO_ORIGINAL = (("attn1.", "self_attn."), ("attn2.", "cross_attn."), ("to_out.0", "o"), ("to_q", "q"),
                    ("to_k", "k"), ("to_v", "v"), ("add_k_proj", "k_img"), ("add_v_proj", "v_img"),
                    ("ffn.net.0.proj", "ffn.0"), ("ffn.net.2", "ffn.2"))


class LoRAFormat(StrEnum):
    DIFFUSERS = "diffusers"
    COMFYUI = "comfyui"


class Expert(StrEnum):
    """Which denoiser of Wan 2.2 A14B an adapter belongs to (others have one: `high`, the `transformer`)."""

    HIGH = "high"  # `transformer`: the steps with t >= boundary_ratio x 1000
    LOW = "low"  # `transformer_2`: the rest


@dataclass(frozen=True)
class LoRASpec:
    """An adapter's shape: rank, alpha (scale alpha / rank) and the module names it wraps."""

    rank: int = 16
    alpha: float = 16.0
    targets: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "targets", tuple(str(t) for t in self.targets))
        if self.rank < 1:
            raise InputError(f"--rank {self.rank} must be >= 1")
        if not self.alpha > 0:
            raise InputError(f"--alpha {self.alpha:g} must be positive")
        if not self.targets:
            raise InputError("a LoRA needs at least one target module name (--targets)")

    def config(self):
        from peft import LoraConfig

        return LoraConfig(r=self.rank, lora_alpha=self.alpha, target_modules=list(self.targets),
                          init_lora_weights=True, lora_dropout=0.0)


@dataclass(frozen=True)
class LoRAFile:
    """A LoRA read from either format: peft's state dict (no prefix, no adapter name) and its shape."""

    state: dict  # "blocks.0.attn1.to_q.lora_A.weight" -> (r, in) tensor
    spec: LoRASpec
    family: str = ""  # "" when the file does not say
    expert: Expert = Expert.HIGH
    meta: dict = field(default_factory=dict)  # kino's metadata entry (base folder, steps, ...)


def default_targets(family: Family | str) -> tuple[str, ...]:
    return DEFAULT_TARGETS[Family(family)]


def add_lora(transformer, spec: LoRASpec, name: str = ADAPTER) -> None:
    """Wrap the transformer's target projections with a fresh adapter (B = 0: the output is unchanged)."""
    try:
        if hasattr(transformer, "add_adapter"):  # a diffusers model (PeftAdapterMixin)
            transformer.add_adapter(spec.config(), adapter_name=name)
        else:  # kino's DiT, a plain module
            from peft import inject_adapter_in_model

            inject_adapter_in_model(spec.config(), transformer, adapter_name=name)
    except ValueError as e:
        if "not found" in str(e) or "Target modules" in str(e):
            raise InputError(f"--targets {','.join(spec.targets)}: no module of {type(transformer).__name__} has "
                             f"such a name; the defaults name its attention and FFN projections") from None
        raise


def lora_state(transformer, name: str = ADAPTER) -> dict:
    """The adapter's weights, keyed as peft saves them ("...to_q.lora_A.weight"), on the CPU."""
    from peft.utils import get_peft_model_state_dict

    sd = get_peft_model_state_dict(transformer, adapter_name=name)
    sd = {k: v.full_tensor() if hasattr(v, "full_tensor") else v for k, v in sd.items()}  # FSDP2: gather (collective)
    return {k: v.detach().to("cpu").clone().contiguous() for k, v in sd.items()}


def set_lora_state(transformer, state: dict, name: str = ADAPTER) -> None:
    """Load peft-keyed weights into the adapter `name`; ModelError when a key does not fit."""
    from peft.utils import set_peft_model_state_dict

    result = set_peft_model_state_dict(transformer, state, adapter_name=name)
    unexpected = [k for k in getattr(result, "unexpected_keys", []) if "lora_" in k]
    if unexpected:
        raise ModelError(f"the LoRA has weights for {unexpected[0]}, which this transformer lacks (another "
                         f"model or other --targets?)")


def spec_of(state: dict, alpha: float | None) -> LoRASpec:
    """The rank (from lora_A's rows), alpha (rank when unknown) and target modules of a state dict."""
    downs = [k for k in state if k.endswith("lora_A.weight")]
    if not downs:
        raise ModelError("the file holds no LoRA weights (no *.lora_A.weight)")
    rank = int(state[downs[0]].shape[0])
    targets = tuple(sorted({k.removesuffix(".lora_A.weight") for k in downs}))
    return LoRASpec(rank=rank, alpha=float(alpha if alpha is not None else rank), targets=targets)


# ----------------------------------------------------------------------------- files


def save_lora(path: str | os.PathLike, state: dict, spec: LoRASpec, family: Family | str,
              expert: Expert | str = Expert.HIGH, meta: dict | None = None) -> Path:
    """Write a diffusers-format LoRA file atomically (the layout of diffusers' `save_lora_weights`)."""
    from safetensors.torch import save_file

    from kino.io import atomic_write

    adapter = {"r": spec.rank, "lora_alpha": spec.alpha, "target_modules": sorted(spec.targets),
               "lora_dropout": 0.0, "bias": "none", "use_dora": False, "lora_bias": False,
               "init_lora_weights": True, "peft_type": "LORA"}
    metadata = {"format": "pt",
                "lora_adapter_metadata": json.dumps({f"transformer.{k}": v for k, v in adapter.items()},
                                                    indent=2, sort_keys=True),
                "kino": json.dumps({"family": str(family), "expert": str(Expert(expert)), **(meta or {})},
                                   sort_keys=True)}
    tensors = {f"transformer.{k}": v.contiguous() for k, v in state.items()}
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(p, mode=None) as tmp:
        save_file(tensors, tmp, metadata=metadata)
    return p


def lora_path(path: str | os.PathLike) -> Path:
    """A LoRA file, or a folder holding pytorch_lora_weights.safetensors; InputError otherwise."""
    p = Path(path)
    if p.is_dir() and (p / WEIGHT_NAME).is_file():
        return p / WEIGHT_NAME
    if not p.is_file():
        raise InputError(f"{p}: no such LoRA file (a .safetensors file, or a folder with {WEIGHT_NAME})")
    return p


def read_lora(path: str | os.PathLike) -> LoRAFile:
    """Read a LoRA in the diffusers or the ComfyUI format (detected from the keys)."""
    from safetensors import SafetensorError, safe_open

    p = lora_path(path)
    try:
        with safe_open(str(p), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no items())
    except (SafetensorError, OSError) as e:
        raise ModelError(f"{p}: not a readable safetensors file ({str(e).splitlines()[0]})") from None
    kino = json.loads(metadata.get("kino", "{}"))
    if tensors and all(k.startswith("diffusion_model.") for k in tensors):
        state, alpha, family = from_comfyui(tensors)
        return LoRAFile(state, spec_of(state, alpha), kino.get("family", family),
                        Expert(kino.get("expert", "high")), kino)
    state = {k.removeprefix("transformer."): v for k, v in tensors.items() if k.startswith("transformer.")}
    if not state:
        raise ModelError(f"{p}: no transformer LoRA weights (keys start neither with transformer. nor "
                         f"diffusion_model.)")
    adapter = json.loads(metadata.get("lora_adapter_metadata", "{}"))
    alpha = adapter.get("transformer.lora_alpha")
    return LoRAFile(state, spec_of(state, alpha), kino.get("family", ""), Expert(kino.get("expert", "high")), kino)


def guess_family(keys) -> str:
    """ComfyUI keys: Wan's originals say self_attn / cross_attn, LTX-Video's transformer_blocks."""
    keys = list(keys)
    if any(".self_attn." in k or ".cross_attn." in k for k in keys):
        return str(Family.WAN)
    if any("transformer_blocks." in k for k in keys):
        return str(Family.LTX)
    return ""


def to_original(key: str, family: str) -> str:
    """A diffusers module path -> the original checkpoint's (Wan renames; LTX-Video keeps its names)."""
    if family == Family.WAN:
        for ours, theirs in _WAN_TO_ORIGINAL:
            key = key.replace(ours, theirs)
    return key


def from_original(key: str, family: str) -> str:
    if family == Family.WAN:
        for ours, theirs in reversed(_WAN_TO_ORIGINAL):
            if ours.endswith("."):
                key = key.replace(theirs, ours)
            else:
                key = _replace_segment(key, theirs, ours)
    return key


def _replace_segment(key: str, old: str, new: str) -> str:
    """Replace a whole dotted segment run (`.q.` in `blocks.0.self_attn.q.lora_A`), never a part of a name."""
    parts, olds = key.split("."), old.split(".")
    for i in range(len(parts) - len(olds) + 1):
        if parts[i:i + len(olds)] == olds:
            return ".".join(parts[:i] + new.split(".") + parts[i + len(olds):])
    return key


def to_comfyui(lora: LoRAFile) -> dict:
    """ComfyUI's keys: `diffusion_model.<original module>.lora_A/B.weight` and `<module>.alpha`."""
    import torch

    family = lora.family or guess_family(lora.state)
    if family == Family.KINO:
        raise InputError("ComfyUI has no kino model to load a kino LoRA into; export LTX-Video or Wan LoRAs")
    out = {}
    for key, value in lora.state.items():
        module, _, tail = key.rpartition(".lora_")
        out[f"diffusion_model.{to_original(module, family)}.lora_{tail}"] = value
        out[f"diffusion_model.{to_original(module, family)}.alpha"] = torch.tensor(float(lora.spec.alpha))
    return out


def from_comfyui(tensors: dict) -> tuple[dict, float | None, str]:
    """ComfyUI (or original-key) LoRA tensors -> (peft state dict, alpha or None, family guessed)."""
    family = guess_family(tensors)
    state, alphas = {}, set()
    for key, value in tensors.items():
        k = key.removeprefix("diffusion_model.")
        if k.endswith(".alpha"):
            alphas.add(float(value.float().item()))
            continue
        k = k.replace(".lora_down.", ".lora_A.").replace(".lora_up.", ".lora_B.")
        module, _, tail = k.rpartition(".lora_")
        state[f"{from_original(module, family)}.lora_{tail}"] = value
    if len(alphas) > 1:
        raise ModelError(f"the LoRA's modules have different alphas ({', '.join(f'{a:g}' for a in sorted(alphas))}); "
                         f"kino reads LoRAs with one alpha")
    return state, (alphas.pop() if alphas else None), family


def export_comfyui(src: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write `src` (any format) as a ComfyUI LoRA file at `out`, atomically."""
    from safetensors.torch import save_file

    from kino.io import atomic_write

    lora = read_lora(src)
    tensors = to_comfyui(lora)
    p = Path(out)
    p.parent.mkdir(parents=True, exist_ok=True)
    meta = {"format": "pt", "kino": json.dumps({**lora.meta, "family": lora.family, "expert": str(lora.expert)},
                                               sort_keys=True)}
    with atomic_write(p, mode=None) as tmp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, tmp, metadata=meta)
    return p


# ----------------------------------------------------------------------------- using LoRAs


@dataclass(frozen=True)
class LoRAUse:
    """One `--lora FILE[:SCALE]`."""

    path: str
    scale: float = 1.0

    @classmethod
    def parse(cls, text: str) -> LoRAUse:
        path, sep, scale = str(text).rpartition(":")
        if sep and path and not Path(text).exists():
            try:
                return cls(path, float(scale))
            except ValueError:
                raise InputError(f"--lora {text!r}: the scale after ':' must be a number, e.g. "
                                 f"style.safetensors:0.8") from None
        return cls(str(text), 1.0)

    def to_dict(self) -> dict:
        return {"path": self.path, "scale": self.scale}


def apply_loras(transformers: dict[str, object], uses: list[LoRAUse], family: str) -> list[dict]:
    """Add each LoRA as its own adapter ("kino0", "kino1", ...) into the transformer of its expert
    (`transformers`: {"high": transformer, "low": transformer_2 or absent}) at its scale; returns what
    the manifest records (path, scale, expert, rank, alpha)."""
    records, active = [], {}
    for i, use in enumerate(uses):
        lora = read_lora(use.path)
        if lora.family and family and lora.family != str(family):
            raise InputError(f"{use.path} is a {lora.family} LoRA; this model is {family}")
        expert = lora.expert if "low" in transformers else Expert.HIGH
        if lora.expert is Expert.LOW and "low" not in transformers:
            raise InputError(f"{use.path} is for Wan 2.2 A14B's low-noise expert; this model has one transformer")
        name = f"kino{i}"
        target = transformers[str(expert)]
        add_lora(target, lora.spec, name)
        set_lora_state(target, lora.state, name)
        active.setdefault(str(expert), []).append((name, use.scale))
        records.append({"path": str(use.path), "scale": use.scale, "expert": str(expert), "rank": lora.spec.rank,
                        "alpha": lora.spec.alpha})
    for expert, pairs in active.items():
        set_scales(transformers[expert], [n for n, _ in pairs], [s for _, s in pairs])
    return records


def set_scales(transformer, names: list[str], scales: list[float]) -> None:
    """Make `names` the active adapters of `transformer`, each at its scale (x alpha / r, as peft does)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    if hasattr(transformer, "set_adapters"):  # diffusers
        transformer.set_adapters(names, weights=scales)
        return
    for module in transformer.modules():
        if isinstance(module, BaseTunerLayer):
            module.set_adapter(names)
            for n, s in zip(names, scales, strict=True):
                module.set_scale(n, s)


def apply_model_loras(model, uses: list[LoRAUse]) -> list[dict]:
    """Apply `--lora FILE[:SCALE]`s to a loaded kino.families VideoModel; sets `model.loras` (what the
    C2PA manifest records) and returns it."""
    pipe = model.pipe
    transformers = {"high": pipe.transformer}
    if getattr(pipe, "transformer_2", None) is not None:
        transformers["low"] = pipe.transformer_2
    records = apply_loras(transformers, list(uses), str(model.family))
    model.loras = records
    return records
