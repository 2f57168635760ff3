"""The DiT: shapes, zero init, packing equals one-by-one, per-frame timesteps, presets, files."""

from __future__ import annotations

import pytest
import torch

from kino.errors import InputError, ModelError
from kino.models.dit import (
    DIT_PRESETS,
    DiT,
    DiTConfig,
    dit_1b,
    dit_world_tiny,
    flops_per_token,
    grid_coords,
    patchify,
    unpatchify,
)


def tiny(**kw) -> DiTConfig:
    return DiTConfig(**{"in_channels": 4, "out_channels": 4, "dim": 48, "depth": 2, "num_heads": 4,
                        "ffn_dim": 96, "text_dim": 16, "freq_dim": 32, **kw})


def randomised(config: DiTConfig, seed: int = 0) -> DiT:
    """A DiT with random weights everywhere, so zero-initialised layers cannot hide a bug."""
    torch.manual_seed(seed)
    m = DiT(config).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.1)
    return m


def test_patchify_roundtrip_and_coords():
    x = torch.randn(2, 4, 3, 6, 8)
    p = patchify(x, (1, 2, 2))
    assert p.tokens.shape == (2, 3 * 3 * 4, 16) and p.grid == (3, 3, 4)
    assert p.coords.shape == (36, 3)
    assert p.coords[5].tolist() == [0, 1, 1]  # token order is (t, h, w), w fastest
    assert torch.equal(unpatchify(p.tokens, p.grid, (1, 2, 2)), x)
    assert torch.equal(grid_coords((2, 1, 1)), torch.tensor([[0, 0, 0], [1, 0, 0]]))
    with pytest.raises(InputError, match="not a multiple of the patch"):
        patchify(torch.randn(1, 4, 2, 5, 4), (1, 2, 2))


def test_forward_shape_and_zero_init_output():
    m = DiT(tiny()).eval()
    x = torch.randn(2, 4, 3, 4, 6)
    out = m(x, torch.rand(2), text=torch.randn(2, 5, 16))
    assert out.shape == x.shape
    assert torch.count_nonzero(out) == 0  # the final layer starts at zero (DiT's initialize_weights)


@pytest.mark.parametrize(("pooled", "out_conv"), [(False, 0), (True, 0), (True, 8)])
def test_packed_matches_one_by_one(pooled, out_conv):
    m = randomised(tiny(pooled_text=pooled, out_conv=out_conv))
    xs = [torch.randn(4, 3, 4, 6), torch.randn(4, 1, 6, 2), torch.randn(4, 2, 2, 2)]
    ts = [torch.tensor(0.3), torch.tensor([0.5]), torch.tensor([0.0, 0.8])]
    text = torch.randn(3, 6, 16)
    mask = torch.ones(3, 6, dtype=torch.bool)
    mask[1, 3:] = False
    mask[2, 1:] = False
    with torch.no_grad():
        packed = m(xs, ts, text, mask)
        for i, (x, t) in enumerate(zip(xs, ts, strict=True)):
            one = m(x[None], t[None], text[i : i + 1], mask[i : i + 1])[0]
            assert one.abs().mean() > 1e-2  # not trivially zero
            assert (one - packed[i]).abs().max() < 1e-5


@pytest.mark.parametrize("pooled", [False, True])
def test_padding_text_is_ignored(pooled):
    m = randomised(tiny(pooled_text=pooled))
    x, text = torch.randn(1, 4, 2, 4, 4), torch.randn(1, 3, 16)
    padded = torch.cat([text, torch.randn(1, 4, 16)], dim=1)
    mask = torch.tensor([[True] * 3 + [False] * 4])
    with torch.no_grad():
        a = m(x, torch.tensor([0.4]), text)
        b = m(x, torch.tensor([0.4]), padded, mask)
    assert (a - b).abs().max() < 1e-5


def test_per_frame_timesteps():
    m = randomised(tiny())
    x, text = torch.randn(1, 4, 3, 4, 4), torch.randn(1, 3, 16)
    with torch.no_grad():
        scalar = m(x, torch.tensor([0.7]), text)
        same = m(x, torch.full((1, 3), 0.7), text)
        mixed = m(x, torch.tensor([[0.0, 0.7, 0.7]]), text)
    assert (scalar - same).abs().max() < 1e-5  # per-frame t equal everywhere == one t
    assert (mixed - scalar).abs().max() > 1e-3  # a clean first frame changes the output
    with pytest.raises(InputError, match="per-frame t"):
        m(x, torch.rand(1, 2), text)


def test_rope_makes_positions_matter_and_is_cached():
    m = randomised(tiny())
    x, text = torch.randn(1, 4, 2, 4, 4), torch.randn(1, 3, 16)
    with torch.no_grad():
        out = m(x, torch.tensor([0.5]), text)
        rolled = m(x.roll(1, dims=3), torch.tensor([0.5]), text)
    assert (out.roll(1, dims=3) - rolled).abs().max() > 1e-3  # not translation-equivariant: RoPE at work
    assert len(m.rope._cache) == 1


def test_gradients_and_checkpointing_agree():
    m = randomised(tiny()).train()
    x, text = torch.randn(2, 4, 1, 4, 4), torch.randn(2, 3, 16)
    loss = m(x, torch.rand(2, generator=torch.Generator().manual_seed(0)), text).square().mean()
    loss.backward()
    g1 = m.blocks[0].attn.qk.weight.grad.clone()
    m.zero_grad()
    m.gradient_checkpointing = True
    loss2 = m(x, torch.rand(2, generator=torch.Generator().manual_seed(0)), text).square().mean()
    loss2.backward()
    assert torch.allclose(loss, loss2) and torch.allclose(g1, m.blocks[0].attn.qk.weight.grad, atol=1e-6)


def test_config_validation():
    with pytest.raises(InputError, match="divisible"):
        DiTConfig(dim=50, num_heads=4)
    with pytest.raises(InputError, match="patch_size"):
        DiTConfig(patch_size=(1, 2))


def test_presets_build_and_count():
    for name, factory in DIT_PRESETS.items():
        with torch.device("meta"):  # every preset builds (without memory)
            assert DiT(factory()).num_params() > 0, name
    tiny_params = DiT(dit_world_tiny()).num_params()
    assert tiny_params * 4 < 32 * 2**20  # fp32 weights far below the 64 MiB budget
    with torch.device("meta"):  # the 1B preset is built without memory
        big = DiT(dit_1b()).num_params()
    assert 1.0e9 < big < 1.6e9
    assert flops_per_token(dit_1b(), 32760, 512) > flops_per_token(dit_world_tiny(), 80, 20)


def test_save_load_roundtrip(tmp_path):
    m = randomised(tiny())
    m.save_pretrained(tmp_path / "dit")
    back = DiT.from_pretrained(tmp_path / "dit")
    assert back.config == m.config
    for k, v in m.state_dict().items():
        assert torch.equal(v, back.state_dict()[k])
    with pytest.raises(ModelError, match="not a DiT model folder"):
        DiT.from_pretrained(tmp_path / "missing")
    (tmp_path / "dit" / "model.safetensors").write_bytes(b"broken")
    with pytest.raises(ModelError, match="cannot load"):
        DiT.from_pretrained(tmp_path / "dit")


def test_rope_is_relative():
    # RoPE's defining property: <R(p) q, R(p') k> depends only on p' - p, and rotations keep norms
    from kino.models.rope import RotaryEmbedding3D, apply_rope

    rope = RotaryEmbedding3D(12)
    q, k = torch.randn(12), torch.randn(12)
    coords = torch.tensor([[0, 1, 2], [3, 2, 5], [5, 4, 1], [8, 5, 4]])  # rows 2,3 = rows 0,1 shifted by (5, 3, -1)
    f = rope.from_coords(coords)
    rq, rk = apply_rope(q.expand(4, 12), f), apply_rope(k.expand(4, 12), f)
    assert torch.allclose(rq.norm(dim=-1), q.norm().expand(4), atol=1e-5)
    assert torch.allclose(rq[0] @ rk[1], rq[2] @ rk[3], atol=1e-4)
    assert not torch.allclose(rq[0] @ rk[1], rq[0] @ rk[3], atol=1e-3)


def test_pooled_text_starts_as_nothing_then_conditions_the_modulation(tmp_path):
    """pooled_text: a model with it equals one without it at initialisation (its last layer is zero), so a
    warm start is unchanged; once that layer is trained the text changes the output through adaLN alone."""
    from kino.train.warm_start import warm_start

    plain = randomised(tiny())
    pooled = DiT(tiny(pooled_text=True)).eval()
    plain.save_pretrained(tmp_path / "plain")
    started = warm_start(pooled, tmp_path / "plain")
    assert sorted(started.skipped) == [f"text_pool.{i}.{w} (absent)" for i in (0, 2) for w in ("bias", "weight")]
    x, text = torch.randn(2, 4, 2, 4, 4), torch.randn(2, 3, 16)
    with torch.no_grad():
        assert torch.equal(plain(x, torch.tensor([0.4, 0.7]), text), pooled(x, torch.tensor([0.4, 0.7]), text))
        pooled.text_pool[2].weight.normal_(0, 0.5)
        for block in pooled.blocks:  # cut cross-attention: only the pooled vector carries the text
            block.cross.out.weight.zero_()
            block.cross.out.bias.zero_()
        a = pooled(x, torch.tensor([0.4, 0.7]), text)
        b = pooled(x, torch.tensor([0.4, 0.7]), text.flip(0))
    assert (a - b).abs().mean() > 1e-3


def test_conv_head_starts_as_the_linear_output_then_crosses_token_boundaries(tmp_path):
    """out_conv: a model with the head equals the one it was warm-started from (its last convolution is zero);
    trained, a change inside one token reaches the neighbouring tokens' cells, which the linear output alone
    (each token's patch from its own features after the last block) cannot do."""
    from kino.train.warm_start import warm_start

    plain = randomised(tiny(patch_size=(1, 2, 2)))
    headed = DiT(tiny(patch_size=(1, 2, 2), out_conv=8)).eval()
    plain.save_pretrained(tmp_path / "plain")
    started = warm_start(headed, tmp_path / "plain")
    assert {s.split()[0].split(".")[0] for s in started.skipped} == {"head"}
    x, text, t = torch.randn(1, 4, 2, 4, 4), torch.randn(1, 3, 16), torch.tensor([0.6])
    with torch.no_grad():
        assert torch.equal(plain(x, t, text), headed(x, t, text))
        headed.head.conv2.weight.normal_(0, 0.1)
        for model in (plain, headed):  # cut attention: a token's features then depend on its own patch only
            for block in model.blocks:
                for lin in (block.attn.out, block.cross.out):
                    lin.weight.zero_()
                    lin.bias.zero_()
        bumped = x.clone()
        bumped[:, :, 0, :2, :2] += 1.0  # only the first token's patch (latent cells 0-1 x 0-1 of frame 0)
        for model, reaches in ((plain, False), (headed, True)):
            change = (model(bumped, t, text) - model(x, t, text)).abs()
            assert change[:, :, 0, :2, :2].amax() > 1e-3
            assert bool(change[:, :, 0, 2, 0:2].amax() > 1e-4) is reaches  # the token below, across the boundary
    with pytest.raises(InputError, match="out_conv"):
        tiny(out_conv=-1)


def test_a_warm_start_into_a_model_without_the_head_says_it_drops_it(tmp_path):
    """The source's tensors the new model has no place for are reported, not lost silently."""
    from kino.train.warm_start import warm_start

    headed = randomised(tiny(patch_size=(1, 2, 2), out_conv=8))
    headed.save_pretrained(tmp_path / "headed")
    started = warm_start(DiT(tiny(patch_size=(1, 2, 2))), tmp_path / "headed")
    assert started.skipped == ()
    assert {name.split(".")[0] for name in started.dropped} == {"head"}
    assert "not used from the source: head." in started.summary()
    assert warm_start(DiT(tiny(patch_size=(1, 2, 2), out_conv=8)), tmp_path / "headed").dropped == ()
