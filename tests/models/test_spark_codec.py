"""Spark-TTS codec: BiCodec structure against the official checkpoint's tensor list, strict
loading, weight-norm folding, the mel front end, and the tiny random codec end to end."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from fasttts.errors import ModelLoadError
from fasttts.models.spark import bicodec as bc
from fasttts.models.spark.codec import SparkCodec
from fasttts.models.spark.mel import MelSpectrogram
from fasttts.models.spark.random_codec import bicodec_config, wav2vec_config, write_random_codec
from fasttts.models.spark.wav2vec import Wav2VecFeatures

FORMAT_DIR = Path(__file__).parent / "data" / "spark"
"""The official BiCodec config and tensor list (copied from the team's model-format notes)."""

SR = 16000


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny models gain nothing from intra-op threads; on a shared CPU they spin and crawl."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("spark") / "Spark-TTS-tiny"
    write_random_codec(d, "tiny", seed=0)
    return d


@pytest.fixture(scope="module")
def codec(tiny_dir: Path) -> SparkCodec:
    return SparkCodec.load(tiny_dir)


def _speechlike(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    x = 0.3 * np.sin(2 * np.pi * 180 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return (x + 0.03 * rng.standard_normal(n)).astype(np.float32)


# ----------------------------------------------------------------------------- structure


def test_full_size_matches_official_tensor_list() -> None:
    official_cfg = yaml.safe_load((FORMAT_DIR / "bicodec_config.yaml").read_text())["audio_tokenizer"]
    assert bicodec_config("full") == official_cfg  # the writer's `full` is the official config
    params = {k: tuple(v) for k, v in json.loads((FORMAT_DIR / "bicodec_params.json").read_text()).items()}

    with torch.device("meta"):
        model = bc.BiCodec(bc.BiCodecConfig.from_dict(official_cfg))
    ours = bc.checkpoint_shapes(model)
    official = {k: v for k, v in params.items() if not k.startswith("mel_transformer.")}
    assert sorted(set(official) - set(ours)) == []
    assert sorted(set(ours) - set(official)) == []
    assert {k: v for k, v in ours.items() if official[k] != v} == {}
    assert sum(math.prod(s) for s in params.values()) == pytest.approx(156.4e6, rel=1e-3)
    # the optional mel buffers the checkpoint carries have the shapes our mel front end derives
    mel = model.mel_transformer
    assert tuple(mel.window.shape) == params["mel_transformer.spectrogram.window"]
    assert tuple(mel.fb.shape) == params["mel_transformer.mel_scale.fb"]


def test_full_wav2vec_config_is_xlsr53_shape() -> None:
    cfg = wav2vec_config("full")
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.intermediate_size) == (
        1024,
        24,
        16,
        4096,
    )
    assert cfg.conv_dim == [512] * 7 and cfg.do_stable_layer_norm and cfg.feat_extract_norm == "layer"
    assert math.prod(cfg.conv_stride) == 320


# -------------------------------------------------------------------------- strict loading


def _broken_copy(tiny_dir: Path, dest: Path, edit) -> Path:
    dest.mkdir(parents=True)
    shutil.copy(tiny_dir / "BiCodec" / "config.yaml", dest / "config.yaml")
    state = load_file(str(tiny_dir / "BiCodec" / "model.safetensors"))
    edit(state)
    save_file(state, str(dest / "model.safetensors"))
    return dest


def test_loader_accepts_with_and_without_mel_buffers(tiny_dir: Path, tmp_path: Path) -> None:
    state = load_file(str(tiny_dir / "BiCodec" / "model.safetensors"))
    assert "mel_transformer.mel_scale.fb" in state  # written like the official file
    bc.load_bicodec(tiny_dir / "BiCodec")

    def drop_mel(s: dict) -> None:
        for k in [k for k in s if k.startswith("mel_transformer.")]:
            del s[k]

    bc.load_bicodec(_broken_copy(tiny_dir, tmp_path / "nomel", drop_mel))


def test_loader_names_missing_tensor(tiny_dir: Path, tmp_path: Path) -> None:
    name = "decoder.model.1.block.1.weight_g"
    d = _broken_copy(tiny_dir, tmp_path / "b", lambda s: s.pop(name))
    with pytest.raises(ModelLoadError, match="missing tensors") as err:
        bc.load_bicodec(d)
    assert name in str(err.value)


def test_loader_names_unexpected_tensor(tiny_dir: Path, tmp_path: Path) -> None:
    name = "encoder.extra_head.weight"
    d = _broken_copy(tiny_dir, tmp_path / "b", lambda s: s.__setitem__(name, torch.zeros(3)))
    with pytest.raises(ModelLoadError, match="unexpected tensors") as err:
        bc.load_bicodec(d)
    assert name in str(err.value)


def test_loader_names_wrong_shape(tiny_dir: Path, tmp_path: Path) -> None:
    name = "quantizer.codebook.weight"
    d = _broken_copy(tiny_dir, tmp_path / "b", lambda s: s.__setitem__(name, torch.zeros(8192, 9)))
    with pytest.raises(ModelLoadError, match="wrong shapes") as err:
        bc.load_bicodec(d)
    assert f"{name} (checkpoint [8192, 9], model [8192, 8])" in str(err.value)


def test_loader_reports_every_problem_at_once(tiny_dir: Path, tmp_path: Path) -> None:
    def edit(s: dict) -> None:
        s.pop("prenet.linear.bias")
        s["bogus"] = torch.zeros(1)
        s["speaker_encoder.project.bias"] = torch.zeros(7)

    with pytest.raises(ModelLoadError) as err:
        bc.load_bicodec(_broken_copy(tiny_dir, tmp_path / "b", edit))
    for name in ("prenet.linear.bias", "bogus", "speaker_encoder.project.bias"):
        assert name in str(err.value)


# ------------------------------------------------------------------------ weight-norm folding


@pytest.mark.parametrize(
    "conv",
    [
        torch.nn.Conv1d(6, 5, kernel_size=7, padding=3),
        torch.nn.ConvTranspose1d(6, 3, kernel_size=8, stride=4, padding=2),
    ],
    ids=["conv", "conv_transpose"],
)
def test_weight_norm_folding_matches_torch(conv: torch.nn.Module) -> None:
    torch.manual_seed(0)
    wn = torch.nn.utils.parametrizations.weight_norm(conv)
    with torch.no_grad():
        wn.parametrizations.weight.original0.uniform_(0.5, 2.0)  # g, not just ||v||
    g = wn.parametrizations.weight.original0.detach()
    v = wn.parametrizations.weight.original1.detach()
    folded = bc.fold_weight_norm(g, v)
    torch.testing.assert_close(folded, wn.weight.detach(), rtol=1e-6, atol=1e-7)
    # and by the definition: every slice along dim 0 has norm g
    torch.testing.assert_close(folded.flatten(1).norm(dim=1), g.flatten(), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------- mel


def _numpy_slaney_mel(x: np.ndarray) -> np.ndarray:
    """From first principles: reflect-padded frames, periodic Hann(640) centred in 1024 points,
    |rfft|, Slaney triangles (area-normalised) from 10 Hz to 8 kHz."""
    n_fft, win, hop, n_mels = 1024, 640, 320, 128
    window = np.zeros(n_fft)
    start = (n_fft - win) // 2
    window[start : start + win] = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)
    padded = np.pad(x.astype(np.float64), n_fft // 2, mode="reflect")
    n_frames = 1 + len(x) // hop
    frames = np.stack([padded[i * hop : i * hop + n_fft] for i in range(n_frames)])
    spec = np.abs(np.fft.rfft(frames * window, axis=1))  # [T, 513]

    def hz2mel(f: float) -> float:
        return 3 * f / 200 if f < 1000 else 15 + 27 * math.log(f / 1000) / math.log(6.4)

    def mel2hz(m: float) -> float:
        return 200 * m / 3 if m < 15 else 1000 * math.exp((m - 15) * math.log(6.4) / 27)

    edges = [mel2hz(m) for m in np.linspace(hz2mel(10.0), hz2mel(8000.0), n_mels + 2)]
    freqs = np.linspace(0, 8000, n_fft // 2 + 1)
    fb = np.zeros((len(freqs), n_mels))
    for m in range(n_mels):
        lo, mid, hi = edges[m], edges[m + 1], edges[m + 2]
        for k, f in enumerate(freqs):
            if lo < f < hi:
                fb[k, m] = (f - lo) / (mid - lo) if f <= mid else (hi - f) / (hi - mid)
        fb[:, m] *= 2.0 / (hi - lo)
    return (spec @ fb).T  # [n_mels, T]


def test_mel_matches_first_principles_and_peaks_at_sine() -> None:
    n = 8000
    x = 0.5 * np.sin(2 * np.pi * 1000.0 * np.arange(n) / SR)
    ours = MelSpectrogram()(torch.from_numpy(x).float()[None])[0].double().numpy()
    ref = _numpy_slaney_mel(x)
    assert ours.shape == ref.shape == (128, 1 + n // 320)
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-5 * ref.max())
    # the loudest bin is the filter centred nearest 1 kHz (Slaney mel 15)
    centres = np.linspace(3 * 10 / 200, 15 + 27 * math.log(8) / math.log(6.4), 130)[1:-1]
    assert int(ours[:, 5:-5].mean(axis=1).argmax()) == int(np.abs(centres - 15.0).argmin())


# --------------------------------------------------------------------- wav2vec2 features


def test_wav2vec_features_equal_mean_of_hidden_states_11_14_16(tiny_dir: Path) -> None:
    from transformers import Wav2Vec2FeatureExtractor, Wav2Vec2Model

    w2v_dir = tiny_dir / "wav2vec2-large-xlsr-53"
    wav = _speechlike(12000, seed=1)
    feats, lengths = Wav2VecFeatures(w2v_dir)([wav])
    # reference computation: untruncated HF model, no attention mask, as the official tokenizer
    ref_model = Wav2Vec2Model.from_pretrained(str(w2v_dir)).eval()
    assert ref_model.config.num_hidden_layers > 16  # so the truncation path is exercised
    extractor = Wav2Vec2FeatureExtractor.from_pretrained(str(w2v_dir))
    inputs = extractor(wav, sampling_rate=SR, return_tensors="pt")
    with torch.no_grad():
        hs = ref_model(inputs.input_values, output_hidden_states=True).hidden_states
    expected = (hs[11] + hs[14] + hs[16]) / 3
    assert int(lengths[0]) == (12000 - 400) // 320 + 1 == expected.shape[1]
    torch.testing.assert_close(feats, expected, rtol=1e-4, atol=1e-5)
    sdpa, _ = Wav2VecFeatures(w2v_dir, attn_implementation="sdpa")([wav])
    torch.testing.assert_close(sdpa, feats, rtol=1e-4, atol=1e-5)


def test_wav2vec_reads_safetensors_as_strictly_as_the_bin(tiny_dir: Path, tmp_path: Path) -> None:
    from fasttts.models.spark.random_codec import write_wav2vec

    st_dir = tmp_path / "st"
    write_wav2vec(st_dir, "tiny", seed=1, weights="safetensors")  # the seed write_random_codec gives wav2vec2
    assert (st_dir / "model.safetensors").is_file() and not (st_dir / "pytorch_model.bin").exists()
    wav = _speechlike(9000, seed=5)
    from_bin, _ = Wav2VecFeatures(tiny_dir / "wav2vec2-large-xlsr-53")([wav])
    from_st, _ = Wav2VecFeatures(st_dir)([wav])
    torch.testing.assert_close(from_st, from_bin, rtol=0, atol=0)

    state = load_file(str(st_dir / "model.safetensors"))
    dropped = next(k for k in state if ".encoder.layers.3." in k)
    save_file({k: v for k, v in state.items() if k != dropped}, str(st_dir / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ModelLoadError, match="does not match its config") as err:
        Wav2VecFeatures(st_dir)
    assert "model.safetensors" in str(err.value) and "layers.3" in str(err.value)
    (st_dir / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="model.safetensors or pytorch_model.bin"):
        Wav2VecFeatures(st_dir)


# ------------------------------------------------------------------------ tiny codec e2e


def test_tokenize_shapes_ranges_and_counts(codec: SparkCodec) -> None:
    assert (codec.sample_rate, codec.hop, codec.num_global_tokens) == (16000, 320, 32)
    assert (codec.semantic_codebook_size, codec.global_codebook_size) == (8192, 4096)
    n = int(1.3 * SR)
    global_ids, semantic_ids = codec.tokenize(_speechlike(n, seed=2))
    assert global_ids.dtype == semantic_ids.dtype == np.int64
    assert global_ids.shape == (32,)
    assert 0 <= global_ids.min() and global_ids.max() < 4096
    # the reference counts wav2vec2 frames: (n - 400) // 320 + 1 = 64 for 1.3 s (not n / 320 = 65)
    assert semantic_ids.shape == ((n - 400) // 320 + 1,) == (64,)
    assert 0 <= semantic_ids.min() and semantic_ids.max() < 8192


def test_tokenize_is_deterministic_and_batch_equals_single(codec: SparkCodec) -> None:
    a, b = _speechlike(int(1.3 * SR), seed=3), _speechlike(9000, seed=4)
    single_a, single_b = codec.tokenize(a), codec.tokenize(b)
    again = codec.tokenize(a)
    assert np.array_equal(single_a[0], again[0]) and np.array_equal(single_a[1], again[1])
    batch = codec.tokenize_batch([a, b])
    for (g1, s1), (g2, s2) in zip(batch, [single_a, single_b]):
        assert np.array_equal(g1, g2) and s1.shape == s2.shape
        # argmax over 8192 codes may flip on a float32 near-tie (other BLAS); allow one
        assert np.count_nonzero(s1 != s2) <= 1
    assert batch[1][1].shape == ((9000 - 400) // 320 + 1,)


def test_encoder_mask_makes_padding_invisible(codec: SparkCodec) -> None:
    model = codec._tok
    torch.manual_seed(0)
    feats = torch.randn(1, 30, model.config.encoder.input_channels)
    padded = torch.cat([feats, torch.randn(1, 12, feats.shape[2])], dim=1)
    mask = (torch.arange(42) < 30)[None]
    with torch.inference_mode():
        alone = model.encoder(feats.transpose(1, 2))
        inside = model.encoder(padded.transpose(1, 2), mask.unsqueeze(1).float())[..., :30]
        unmasked = model.encoder(padded.transpose(1, 2))[..., :30]
    torch.testing.assert_close(inside, alone, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(unmasked, alone, rtol=1e-5, atol=1e-5)  # the mask is what does it


def test_detokenize_length_finite_and_audible(codec: SparkCodec) -> None:
    rng = np.random.default_rng(5)
    global_ids, semantic = rng.integers(0, 4096, 32), rng.integers(0, 8192, 37)
    wav = codec.detokenize(global_ids, semantic)
    assert wav.dtype == np.float32 and wav.shape == (37 * 320,)
    assert np.all(np.isfinite(wav)) and np.abs(wav).max() <= 1.0
    assert np.sqrt(np.mean(wav**2)) > 0.01  # not silent
    assert np.array_equal(wav, codec.detokenize(global_ids, semantic))  # deterministic


def test_detokenize_batch_trims_and_matches_single(codec: SparkCodec) -> None:
    rng = np.random.default_rng(6)
    items = [(rng.integers(0, 4096, 32), rng.integers(0, 8192, n)) for n in (40, 7, 23)]
    outs = codec.detokenize_batch(items)
    assert [o.shape[0] for o in outs] == [40 * 320, 7 * 320, 23 * 320]
    for out, (g, s) in zip(outs, items):
        # padding is masked before every temporal conv, so only float32 rounding differs
        np.testing.assert_allclose(out, codec.detokenize(g, s), atol=1e-4, rtol=0)


def test_roundtrip_tokens_decode_to_matching_length(codec: SparkCodec) -> None:
    global_ids, semantic_ids = codec.tokenize(_speechlike(SR, seed=7))
    wav = codec.detokenize(global_ids, semantic_ids)
    assert wav.shape == (len(semantic_ids) * 320,)


def test_detokenize_rejects_bad_ids(codec: SparkCodec) -> None:
    with pytest.raises(ValueError, match="global ids"):
        codec.detokenize(np.zeros(31, dtype=np.int64), np.zeros(5, dtype=np.int64))
    with pytest.raises(ValueError, match="semantic ids"):
        codec.detokenize(np.zeros(32, dtype=np.int64), np.array([8192]))


def test_random_writer_is_seeded(tiny_dir: Path, tmp_path: Path) -> None:
    write_random_codec(tmp_path / "same", "tiny", seed=0)
    write_random_codec(tmp_path / "other", "tiny", seed=1)
    ref = load_file(str(tiny_dir / "BiCodec" / "model.safetensors"))
    same = load_file(str(tmp_path / "same" / "BiCodec" / "model.safetensors"))
    other = load_file(str(tmp_path / "other" / "BiCodec" / "model.safetensors"))
    assert all(torch.equal(ref[k], same[k]) for k in ref)
    assert not torch.equal(ref["quantizer.codebook.weight"], other["quantizer.codebook.weight"])
    written = yaml.safe_load((tiny_dir / "BiCodec" / "config.yaml").read_text())["audio_tokenizer"]
    assert written == bicodec_config("tiny")
    full = bicodec_config("full")
    assert {k: sorted(v) for k, v in written.items()} == {k: sorted(v) for k, v in full.items()}
