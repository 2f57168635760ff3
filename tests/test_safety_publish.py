"""publish -> verify: frame review, watermark, C2PA signing, tampering, stripping, the CLI exit codes."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from kino.errors import InputError, PolicyError
from kino.safety.policy import FrameReviewConfig, SafetyConfig
from kino.safety.publish import GenerationInfo, publish
from kino.safety.verify import Outcome, verify_file


@pytest.fixture(autouse=True)
def config_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("KINO_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.delenv("KINO_C2PA_CERT", raising=False)
    monkeypatch.delenv("KINO_C2PA_KEY", raising=False)
    monkeypatch.delenv("KINO_SAFETY_POLICY", raising=False)
    return tmp_path / "cfg"


def frames(t: int = 6, red: int = 60) -> np.ndarray:
    yy, xx = np.mgrid[0:64, 0:64]
    f = np.zeros((t, 64, 64, 3), np.uint8)
    f[..., 0] = red
    f[..., 1] = (xx * 3).astype(np.uint8)
    f[..., 2] = (yy * 2).astype(np.uint8)
    for i in range(t):
        f[i, 20:36, 8 + 3 * i : 24 + 3 * i] = (230, 200, 30)
    return f


INFO = GenerationInfo(
    model="kino-tiny", settings={"size": "64x64", "steps": 4, "seed": 3}, prompt="a yellow square"
)


def test_publish_mp4_signs_watermarks_and_verifies(tmp_path, config_dir):
    out = tmp_path / "out.mp4"
    rep = publish(frames(), out, fps=8, info=INFO, config=SafetyConfig())
    assert rep.c2pa_signed and rep.signer == "local" and rep.manifest_label.startswith("urn:")
    assert rep.frame_review == "not configured" and rep.watermark_id is not None
    assert (config_dir / "c2pa" / "chain.pem").is_file()  # the local chain was made once
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == ["out.mp4"]  # no temp files left
    v = verify_file(out, SafetyConfig())
    assert v.outcome is Outcome.OK and v.made_by_kino and v.manifest.valid and not v.manifest.trusted
    s = v.summary()
    assert s["frame_review"] == "not configured"  # never claims a review that did not happen
    assert s["settings"] == {"size": "64x64", "steps": 4, "seed": 3} and s["model"] == "kino-tiny"
    assert s["prompt"] is None  # not opted in
    assert s["watermark_present"] and s["watermark_matches_manifest"]
    actions = v.manifest.assertion("c2pa.actions.v2")["actions"]
    assert actions[0]["action"] == "c2pa.created"
    assert actions[0]["digitalSourceType"].endswith("/trainedAlgorithmicMedia")
    assert v.manifest.active["claim_generator_info"][0]["name"] == "kino"


def test_publish_png_with_prompt_opt_in_and_trusted_local_root(tmp_path, config_dir):
    out = tmp_path / "still.png"
    publish(frames(1), out, fps=1, info=INFO, config=SafetyConfig(include_prompt=True))
    cfg = SafetyConfig(trust=(str(config_dir / "c2pa" / "root.pem"),))
    v = verify_file(out, cfg)
    assert v.outcome is Outcome.OK and v.manifest.trusted
    assert v.summary()["prompt"] == "a yellow square"


def test_tampered_mp4_fails_and_stripped_is_no_credentials(tmp_path):
    out = tmp_path / "out.mp4"
    publish(frames(), out, fps=8, info=INFO, config=SafetyConfig())
    data = bytearray(out.read_bytes())
    i = data.find(b"mdat")
    data[i + 64] ^= 0x01  # one byte of the video data
    bad = tmp_path / "tampered.mp4"
    bad.write_bytes(bytes(data))
    assert verify_file(bad, watermark=False).outcome is Outcome.INVALID
    # Re-encoding the frames drops the credentials; the watermark stays.
    from kino.io import read_video, write_video

    stripped = write_video(tmp_path / "stripped.mp4", read_video(out).frames, fps=8)
    v = verify_file(stripped)
    assert v.outcome is Outcome.NO_CREDENTIALS and v.watermark.present


def test_other_generators_file_is_not_kino(tmp_path):
    from kino.io import write_video
    from kino.safety.provenance import build_manifest, load_credentials, sign_file

    src = write_video(tmp_path / "src.mp4", frames(2), fps=8)
    manifest = build_manifest("x.mp4", {"name": "othergen", "version": "1.0"}, {"model": "other"})
    sign_file(src, tmp_path / "x.mp4", manifest, load_credentials())
    v = verify_file(tmp_path / "x.mp4", watermark=False)
    assert v.manifest.valid and v.outcome is Outcome.NOT_KINO and v.outcome.exit_code == 22


def test_stripped_png_chunk_is_no_credentials(tmp_path):
    out = tmp_path / "a.png"
    publish(frames(1), out, fps=1, info=INFO, config=SafetyConfig())
    data, pos, kept = out.read_bytes(), 8, [out.read_bytes()[:8]]
    while pos < len(data):  # drop the caBX chunk that holds the C2PA manifest
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        if kind != b"caBX":
            kept.append(data[pos : pos + 12 + n])
        pos += 12 + n
    plain = tmp_path / "plain.png"
    plain.write_bytes(b"".join(kept))
    assert verify_file(plain, watermark=False).outcome is Outcome.NO_CREDENTIALS


def test_no_c2pa_writes_plain_file(tmp_path):
    out = tmp_path / "plain.mp4"
    rep = publish(frames(), out, fps=8, info=INFO, config=SafetyConfig(c2pa=False, watermark=False))
    assert not rep.c2pa_signed and rep.watermark_id is None and out.is_file()
    assert verify_file(out, watermark=False).outcome is Outcome.NO_CREDENTIALS


def test_user_certificate_from_env(tmp_path, monkeypatch):
    from kino.safety.provenance import make_local_chain

    creds = make_local_chain(tmp_path / "mine")
    monkeypatch.setenv("KINO_C2PA_CERT", str(tmp_path / "mine" / "chain.pem"))
    monkeypatch.setenv("KINO_C2PA_KEY", str(tmp_path / "mine" / "signer.key"))
    rep = publish(frames(2), tmp_path / "o.mp4", fps=8, info=INFO, config=SafetyConfig(watermark=False))
    assert rep.signer == "env" and creds.root is not None
    monkeypatch.setenv("KINO_C2PA_KEY", str(tmp_path / "nope.key"))
    with pytest.raises(InputError, match="does not exist"):
        publish(frames(2), tmp_path / "p.mp4", fps=8, info=INFO, config=SafetyConfig(watermark=False))
    assert not (tmp_path / "p.mp4").exists()


def test_bad_outputs_are_refused_before_writing(tmp_path):
    with pytest.raises(InputError, match="holds one frame"):
        publish(frames(3), tmp_path / "x.png", fps=8, info=INFO, config=SafetyConfig())
    with pytest.raises(InputError, match=".mp4 or .png"):
        publish(frames(3), tmp_path / "x.gif", fps=8, info=INFO, config=SafetyConfig())
    assert list(tmp_path.glob("x*")) == []


def _red_model(path):
    """A tiny conv net whose 'unsafe' logit is 20 * mean(red) - 12: red frames are flagged."""
    import torch  # onnx and onnxruntime (dev dependencies) are used by torch.onnx.export and the review below

    class Red(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 2, 1)
            with torch.no_grad():
                self.conv.weight.zero_()
                self.conv.bias.zero_()
                self.conv.weight[1, 0] = 20.0
                self.conv.bias[1] = -12.0

        def forward(self, x):
            return self.conv(x).mean(dim=(2, 3))  # (N, 2) logits

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Red().eval(), torch.zeros(1, 3, 32, 32), str(path), input_names=["x"], output_names=["y"],
            dynamic_axes={"x": {0: "n"}, "y": {0: "n"}}, dynamo=False,
        )  # fmt: skip
    return FrameReviewConfig(
        model=str(path), labels=("safe", "red"), unsafe=("red",), size=(32, 32),
        mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), threshold=0.5, sample_frames=4,
    )  # fmt: skip


def test_frame_review_refuses_flagged_video_and_writes_nothing(tmp_path):
    review = _red_model(tmp_path / "red.onnx")
    cfg = SafetyConfig(frames=review)
    red = frames(6, red=250)
    red[:3, ..., 0] = 10  # only later frames are red: the sample must include them
    with pytest.raises(PolicyError, match="frame review") as e:
        publish(red, tmp_path / "bad.mp4", fps=8, info=INFO, config=cfg)
    assert e.value.exit_code == 5
    assert not list(tmp_path.glob("*.mp4")) and not list(tmp_path.glob(".bad*"))
    rep = publish(frames(6, red=20), tmp_path / "ok.mp4", fps=8, info=INFO, config=cfg)
    assert rep.frame_review == "passed" and rep.frames_reviewed == 4
    fr = verify_file(tmp_path / "ok.mp4", watermark=False).summary()["frame_review"]
    assert fr["frames_reviewed"] == 4 and fr["flagged_frames"] == [] and fr["classifier"].startswith("onnx:")


def test_frame_review_config_is_validated_and_loaded_from_policy(tmp_path):
    with pytest.raises(InputError, match="unsafe labels"):
        FrameReviewConfig(model="m.onnx", labels=("safe", "nsfw"), unsafe=("porn",))
    from kino.safety.policy import load_policy_file

    p = tmp_path / "p.toml"
    p.write_text(
        '[frames]\nmodel = "m.onnx"\nlabels = ["safe", "nsfw"]\nunsafe = ["nsfw"]\nsize = [64, 64]\n'
    )
    c = load_policy_file(p)
    assert c.frames.size == (64, 64) and c.frames.unsafe == ("nsfw",)
    assert c.frames.model == str(tmp_path / "m.onnx")  # relative to the policy file


def test_cli_verify_exit_codes(tmp_path, capsys):
    from kino.cli import main

    out = tmp_path / "out.mp4"
    publish(frames(), out, fps=8, info=INFO, config=SafetyConfig())
    with pytest.raises(SystemExit) as e:
        main(["verify", str(out), "--json", "--no-watermark"])
    assert e.value.code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["checks"]["outcome"] == "ok" and doc["manifest_store"]["active_manifest"]
    plain = tmp_path / "plain.png"
    from kino.io import write_image

    write_image(plain, frames(1)[0])
    with pytest.raises(SystemExit) as e:
        main(["verify", str(plain)])
    assert e.value.code == Outcome.NO_CREDENTIALS.exit_code == 20
    assert "no content credentials" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["verify", str(tmp_path / "missing.mp4")])
    assert e.value.code == 3
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(SystemExit) as e:
        main(["verify", str(tmp_path / "notes.txt")])
    assert e.value.code == 3 and "not an MP4 or PNG file" in capsys.readouterr().err


def test_racing_first_runs_make_one_matching_chain(tmp_path):
    # issue 15, finding 8: two processes creating the local chain at once left a mismatched key
    import subprocess
    import sys

    code = (
        "from kino.safety.provenance import load_credentials\n"
        "import hashlib; c = load_credentials()\n"
        "print(hashlib.sha256(c.chain + c.key).hexdigest())\n"
    )
    env = {"KINO_CONFIG_DIR": str(tmp_path / "fresh"), "PATH": "/usr/bin:/bin"}
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(6)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e[-500:] for _, e in outs]
    assert len({o.strip() for o, _ in outs}) == 1  # every process got the same pair
    assert sorted(p.name for p in (tmp_path / "fresh").iterdir()) == ["c2pa"]  # no temp folders left
    cfg = SafetyConfig(config_dir=str(tmp_path / "fresh"))
    publish(frames(2), tmp_path / "o.mp4", fps=8, info=INFO, config=cfg)  # the pair signs
    assert verify_file(tmp_path / "o.mp4", cfg).outcome is Outcome.OK


def test_a_mismatched_local_pair_is_one_clear_line(tmp_path):
    from kino.safety.provenance import load_credentials, make_local_chain

    make_local_chain(tmp_path / "a" / "c2pa")
    make_local_chain(tmp_path / "b" / "c2pa")
    (tmp_path / "a" / "c2pa" / "signer.key").write_bytes((tmp_path / "b" / "c2pa" / "signer.key").read_bytes())
    with pytest.raises(InputError, match="delete the folder"):
        load_credentials(folder=str(tmp_path / "a"))


def _top_box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


@pytest.mark.parametrize(
    "tail",
    [_top_box(b"free", b"any data at all"), _top_box(b"skip", b"x" * 300), _top_box(b"free", bytes(64)), b"garbage!!"],
    ids=["free", "skip", "zero-free", "raw"],
)
def test_data_appended_after_signing_is_tampering(tmp_path, tail, run):
    # issue 15, finding 15: the BMFF hash excludes top-level free/skip boxes; kino's box walk does not
    out = tmp_path / "out.mp4"
    publish(frames(), out, fps=8, info=INFO, config=SafetyConfig())
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(out.read_bytes() + tail)
    v = verify_file(bad, watermark=False)
    assert v.outcome is Outcome.INVALID and any(f.startswith("kino.unboundData") for f in v.manifest.failures)
    assert run(["verify", "--no-watermark", bad])[0] == 21
    assert verify_file(out, watermark=False).outcome is Outcome.OK  # kino's own free box (empty) is fine


def test_a_box_of_data_inserted_before_the_video_is_tampering(tmp_path):
    out = tmp_path / "out.mp4"
    publish(frames(), out, fps=8, info=INFO, config=SafetyConfig())
    data = out.read_bytes()
    i = data.find(b"\x00\x00\x00\x08free")  # kino's 8-byte free box before mdat: fill it with a message
    assert i > 0
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(data[:i] + _top_box(b"free", b"hidden") + data[i + 8 :])
    assert verify_file(bad, watermark=False).outcome is Outcome.INVALID


@pytest.mark.parametrize("content", [b"just some text\n", b"", b"\x00\x01garbage" * 50], ids=["text", "empty", "junk"])
def test_non_media_files_are_unreadable_exit_3(tmp_path, content, run):
    # issue 16, finding 7: never "credentials yes ... changed after signing" for a file that is no media
    for name in ("notes.txt", "video.mp4"):
        p = tmp_path / name
        p.write_bytes(content)
        code, out, err = run(["verify", p])
        assert code == 3 and "credentials" not in out
        assert len(err.strip().splitlines()) == 1 and err.startswith("kino: error:")


def test_settings_are_json_lists_and_the_manifest_is_small(tmp_path):
    # issue 16, finding 30: "latent_shape" read back as base64 ("ARAFCAg="); a 79 KB thumbnail
    info = GenerationInfo(settings={"latent_shape": (1, 16, 5, 8, 8), "condition_frames": [], "span": [-1, 300],
                                    "seed": np.int64(3)})
    out = tmp_path / "a.png"
    publish(frames(1), out, fps=1, info=info, config=SafetyConfig())
    s = verify_file(out).summary()
    assert s["settings"] == {"latent_shape": [1, 16, 5, 8, 8], "condition_frames": [], "span": [-1, 300], "seed": 3}
    plain = tmp_path / "plain.png"  # the same frames unsigned (the watermark id follows the request)
    publish(frames(1), plain, fps=1, info=info, config=SafetyConfig(c2pa=False))
    manifest = out.stat().st_size - plain.stat().st_size
    assert 1000 < manifest < 6000  # claim, assertions, signature and the two certificates; no thumbnail


def test_the_same_request_gives_the_same_frames(tmp_path):
    # issue 16, finding 30: two runs with one seed differed by their random watermark ids. PNG is
    # lossless, so the frames compared are exactly the watermarked frames.
    from kino.io import read_video

    a = publish(frames(1), tmp_path / "a.png", fps=1, info=INFO, config=SafetyConfig())
    b = publish(frames(1), tmp_path / "b.png", fps=1, info=INFO, config=SafetyConfig())
    assert a.watermark_id == b.watermark_id
    assert np.array_equal(read_video(a.path).frames, read_video(b.path).frames)
    plain = [publish(frames(1), tmp_path / f"p{i}.png", fps=1, info=INFO, config=SafetyConfig(c2pa=False)).path
             for i in range(2)]
    assert plain[0].read_bytes() == plain[1].read_bytes()
    other = publish(frames(1), tmp_path / "c.png", fps=1, config=SafetyConfig(),
                    info=GenerationInfo(model="kino-tiny", settings={"seed": 4}, prompt="a yellow square"))
    assert other.watermark_id != a.watermark_id


def test_the_watermark_key_stays_with_its_install(tmp_path, config_dir, monkeypatch):
    out = tmp_path / "out.mp4"
    publish(frames(), out, fps=8, info=INFO, config=SafetyConfig())
    assert (config_dir / "watermark.key").stat().st_mode & 0o777 == 0o600
    assert verify_file(out).summary()["watermark_present"]
    monkeypatch.setenv("KINO_CONFIG_DIR", str(tmp_path / "elsewhere"))  # another install, no key
    s = verify_file(out).summary()
    assert s["outcome"] == "ok" and s["watermark_present"] is None and s["watermark_key"] is False
    assert not (tmp_path / "elsewhere").exists()  # verifying makes no key


def test_vae_reconstructions_are_watermarked_and_signed(tmp_path, run):
    # issue 16, finding 30: `kino vae reconstruct` wrote plain files
    from kino.io import write_video

    src = write_video(tmp_path / "in.mp4", frames(9), fps=8)
    code, out, err = run(["vae", "reconstruct", src, "-o", tmp_path / "out.mp4"])
    assert code == 0, err
    v = verify_file(tmp_path / "out.mp4")
    assert v.outcome is Outcome.OK and v.summary()["mode"] == "vae-reconstruction"
    assert v.watermark.present and v.summary()["watermark_matches_manifest"]
    assert run(["vae", "reconstruct", src, "-o", tmp_path / "out.gif"])[0] == 2  # a GIF cannot be signed
    assert run(["vae", "reconstruct", src, "-o", tmp_path / "out.gif", "--no-c2pa"])[0] == 0
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files left
