"""Strict loading of a MegaTTS3 release: every part in the official container, every bad tensor named."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from fasttts.errors import ModelLoadError
from fasttts.models.megatts3.loader import checkpoint_file, load_parts, read_state


def _copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "mega"
    shutil.copytree(src, dst)
    return dst


def _rewrite(path: Path, sub_key: str, edit) -> None:
    state = read_state(path, sub_key)
    edit(state)
    torch.save({"state_dict": {sub_key: state}}, path)


def test_tiny_release_loads_every_part(tiny_mega_dir: Path) -> None:
    parts = load_parts(tiny_mega_dir)
    assert parts.dit.cfg.hidden == 64 and parts.dit.cfg.phone_vocab == 302
    assert parts.duration.cfg.code_size == 128
    assert parts.wavvae.cfg.hop == 960
    assert not parts.has_encoder
    assert checkpoint_file(tiny_mega_dir / "diffusion_transformer").name == "model_only_last.ckpt"


@pytest.mark.parametrize(
    ("part", "sub_key", "edit", "named"),
    [
        ("diffusion_transformer", "dit", lambda s: s.pop("encoder.layers.1.attention.wq.weight"), "missing tensors: encoder.layers.1.attention.wq.weight"),
        (
            "duration_lm",
            "dur_model",
            lambda s: s.__setitem__("code_emb.weight", torch.zeros(129, 64)),
            "code_emb.weight (checkpoint [129, 64], model [130, 64])",
        ),
        ("aligner_lm", "model", lambda s: s.__setitem__("decoder.out.weight", s.pop("decoder.out_proj.weight")), "unexpected tensors: decoder.out.weight"),
    ],
)
def test_bad_tensor_is_named(tiny_mega_dir: Path, tmp_path: Path, part: str, sub_key: str, edit, named: str) -> None:
    root = _copy(tiny_mega_dir, tmp_path)
    _rewrite(checkpoint_file(root / part), sub_key, edit)
    with pytest.raises(ModelLoadError, match="does not match") as err:
        load_parts(root)
    assert named in str(err.value)


def test_decoder_only_wavvae_ignores_withheld_encoder_but_not_other_extras(tiny_mega_dir: Path, tmp_path: Path) -> None:
    root = _copy(tiny_mega_dir, tmp_path)
    ckpt = root / "wavvae" / "decoder.ckpt"
    _rewrite(ckpt, "model_gen", lambda s: s.update({"proj_to_z.weight": torch.zeros(64, 512), "encoder.x.weight": torch.zeros(1)}))
    load_parts(root)  # the encoder's tensors are accepted and ignored
    _rewrite(ckpt, "model_gen", lambda s: s.pop("decoder.model_up.12.weight_v"))
    with pytest.raises(ModelLoadError, match="decoder.model_up.12.weight_v"):
        load_parts(root)


def test_official_prefixes_and_step_checkpoints_are_accepted(tiny_mega_dir: Path, tmp_path: Path) -> None:
    root = _copy(tiny_mega_dir, tmp_path)
    last = root / "duration_lm" / "model_only_last.ckpt"
    state = read_state(last, "dur_model")
    torch.save({"state_dict": {"dur_model": {f"module.{k}": v for k, v in state.items()}}, "global_step": 7}, root / "duration_lm" / "model_ckpt_steps_7.ckpt")
    last.unlink()
    assert checkpoint_file(root / "duration_lm").name == "model_ckpt_steps_7.ckpt"
    load_parts(root)


def test_missing_folder_and_missing_sub_key_are_named(tiny_mega_dir: Path, tmp_path: Path) -> None:
    root = _copy(tiny_mega_dir, tmp_path)
    torch.save({"state_dict": {"model": {}}}, root / "diffusion_transformer" / "model_only_last.ckpt")
    with pytest.raises(ModelLoadError, match="no 'dit' entry"):
        load_parts(root)
    shutil.rmtree(root / "aligner_lm")
    with pytest.raises(ModelLoadError, match="aligner_lm/ is missing"):
        load_parts(root)
