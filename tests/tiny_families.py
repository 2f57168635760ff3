"""Tiny random-weight LTX-Video and Wan folders, built offline and saved as a user's folder would be.

The transformer / VAE / scheduler configs are those of diffusers' own fast tests
(tests/pipelines/ltx/test_ltx_condition.py, tests/pipelines/wan/test_wan*.py); the text encoders are
tiny T5 / UMT5 (d_model 32, dropout 0) over a tokenizer built in memory (transformers 5's
`T5Tokenizer(vocab=[(piece, score), ...])`), so nothing is fetched from a hub. Every folder is written
with `save_pretrained` and loaded back by kino with `local_files_only=True`.

`tiny_folder(kind, root)` builds one folder (kinds in KINDS) under `root` once per process; test files
get them from the session fixture `tiny_models` (import it into the test module).
"""

from __future__ import annotations

from pathlib import Path

import pytest

# the words of the tests' prompts, so the tokenizer maps them to distinct ids
WORDS = ("a red circle moves left right blue square small ball over green field camera pans slowly "
         "city street at night dog runs on the beach waves sunset cat sleeps bright colors video of "
         "negative blurry low quality worst static").split()

KINDS = ("ltx", "wan", "wan-vace", "wan-i2v", "wan-flf2v", "wan-a14b", "wan-i2v-a14b", "wan-ti2v")


def tiny_tokenizer():
    """A T5 unigram tokenizer over WORDS and single letters (pad 0, eos 1, unk 2), built in memory."""
    from transformers import T5Tokenizer

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    pieces += [(f"\u2581{w}", -1.0) for w in WORDS]
    pieces += [(c, -5.0) for c in "abcdefghijklmnopqrstuvwxyz0123456789.,"]
    return T5Tokenizer(vocab=pieces, extra_ids=0)


def tiny_text_encoder(vocab_size: int, umt5: bool):
    import torch
    from transformers import T5Config, T5EncoderModel, UMT5Config, UMT5EncoderModel

    torch.manual_seed(0)
    kw = dict(vocab_size=vocab_size, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
              relative_attention_num_buckets=8, dropout_rate=0.0, pad_token_id=0, eos_token_id=1,
              decoder_start_token_id=0)
    model = UMT5EncoderModel(UMT5Config(**kw)) if umt5 else T5EncoderModel(T5Config(**kw))
    return model.eval()


def _ltx():
    import torch
    from diffusers import (
        AutoencoderKLLTXVideo,
        FlowMatchEulerDiscreteScheduler,
        LTXConditionPipeline,
        LTXVideoTransformer3DModel,
    )

    torch.manual_seed(0)
    transformer = LTXVideoTransformer3DModel(
        in_channels=8, out_channels=8, patch_size=1, patch_size_t=1, num_attention_heads=4,
        attention_head_dim=8, cross_attention_dim=32, num_layers=2, caption_channels=32)
    torch.manual_seed(0)
    vae = AutoencoderKLLTXVideo(
        in_channels=3, out_channels=3, latent_channels=8, block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8), layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1), spatio_temporal_scaling=(True, True, False, False),
        decoder_spatio_temporal_scaling=(True, True, False, False),
        decoder_inject_noise=(False, False, False, False, False), upsample_residual=(False, False, False, False),
        upsample_factor=(1, 1, 1, 1), timestep_conditioning=False, patch_size=1, patch_size_t=1,
        encoder_causal=True, decoder_causal=False)
    tokenizer = tiny_tokenizer()
    return LTXConditionPipeline(
        transformer=transformer, vae=vae, scheduler=FlowMatchEulerDiscreteScheduler(),
        text_encoder=tiny_text_encoder(len(tokenizer), umt5=False), tokenizer=tokenizer)


def _wan_vae(ti2v: bool = False):
    import torch
    from diffusers import AutoencoderKLWan

    torch.manual_seed(0)
    if ti2v:  # Wan 2.2's 4x16x16 VAE (48 latent channels, a 2x2 patchify in and out)
        return AutoencoderKLWan(base_dim=3, z_dim=48, in_channels=12, out_channels=12, is_residual=True,
                                patch_size=2, latents_mean=[0.0] * 48, latents_std=[1.0] * 48,
                                dim_mult=[1, 1, 1, 1], num_res_blocks=1, scale_factor_spatial=16,
                                scale_factor_temporal=4, temperal_downsample=[False, True, True])
    return AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                            temperal_downsample=[False, True, True])


def _wan_transformer(cls=None, **more):
    import torch
    from diffusers import WanTransformer3DModel

    torch.manual_seed(0)
    kw = dict(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=16,
              out_channels=16, text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True,
              qk_norm="rms_norm_across_heads", rope_max_seq_len=32)
    return (cls or WanTransformer3DModel)(**{**kw, **more})


def _wan(kind: str):
    import torch
    from diffusers import (
        FlowMatchEulerDiscreteScheduler,
        WanImageToVideoPipeline,
        WanPipeline,
        WanVACEPipeline,
        WanVACETransformer3DModel,
    )

    tokenizer = tiny_tokenizer()
    common = dict(vae=_wan_vae(ti2v=kind == "wan-ti2v"), scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),
                  text_encoder=tiny_text_encoder(len(tokenizer), umt5=True), tokenizer=tokenizer)
    if kind == "wan":
        return WanPipeline(transformer=_wan_transformer(), **common)
    if kind == "wan-a14b":  # Wan 2.2 A14B: a high-noise and a low-noise expert, switched at boundary_ratio
        return WanPipeline(transformer=_wan_transformer(), transformer_2=_wan_transformer(num_layers=3),
                           boundary_ratio=0.5, **common)
    if kind == "wan-ti2v":  # Wan 2.2 TI2V-5B: per-token timesteps, the first latent frame kept clean
        return WanPipeline(transformer=_wan_transformer(in_channels=48, out_channels=48), expand_timesteps=True,
                           **common)
    if kind == "wan-vace":
        return WanVACEPipeline(transformer=_wan_transformer(WanVACETransformer3DModel, num_layers=3,
                                                            vace_layers=[0, 2], vace_in_channels=96), **common)
    if kind == "wan-i2v-a14b":  # Wan 2.2 I2V A14B: two experts, no CLIP image encoder (mask + latent channels)
        return WanImageToVideoPipeline(transformer=_wan_transformer(in_channels=36),
                                       transformer_2=_wan_transformer(in_channels=36, num_layers=3),
                                       boundary_ratio=0.9, **common)  # the real folder's
    # Wan 2.1 I2V / FLF2V-14B: a CLIP image encoder, the transformer's image_dim (and FLF2V's position
    # embedding over the two images' tokens)
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=4, projection_dim=4, num_hidden_layers=2, num_attention_heads=2, image_size=4,
        intermediate_size=16, patch_size=1)).eval()
    processor = CLIPImageProcessor(crop_size=4, size=4)
    extra = {"pos_embed_seq_len": 2 * (4 * 4 + 1)} if kind == "wan-flf2v" else {}
    transformer = _wan_transformer(in_channels=36, image_dim=4, **extra)
    return WanImageToVideoPipeline(transformer=transformer, image_encoder=encoder, image_processor=processor,
                                   **common)


_BUILT: dict[tuple[str, str], Path] = {}


def tiny_folder(kind: str, root: str | Path) -> Path:
    """The tiny `kind` folder under `root` (built and saved on first use in this process)."""
    key = (kind, str(root))
    if key not in _BUILT:
        pipe = _ltx() if kind == "ltx" else _wan(kind)
        path = Path(root) / kind
        pipe.save_pretrained(path)
        _BUILT[key] = path
    return _BUILT[key]


class TinyModels:
    """Session-wide tiny folders: `tiny_models["wan"]` builds once, then returns the same path."""

    def __init__(self, root: Path):
        self.root = root

    def __getitem__(self, kind: str) -> Path:
        return tiny_folder(kind, self.root)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """The tiny folders; torch on one thread meanwhile (tiny convolutions ran 6x slower on 2 threads of a busy
    2-core machine: 4.3 s against 0.7 s for one VACE extension)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield TinyModels(tmp_path_factory.mktemp("tiny-families"))
    torch.set_num_threads(before)
