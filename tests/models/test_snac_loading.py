"""SNAC loading holds the weights once (issue 18): the module is built on the meta device and the
checkpoint's tensors are assigned into it, so the loaded module's tensors are the very ones read
from ``pytorch_model.bin`` (no random initialisation beside them, no copy), bit for bit, with
nothing left on meta, and it decodes exactly as a module loaded the old way (built with random
weights, then overwritten by a copying ``load_state_dict``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from snac import SNAC

from fasttts.checkpoint import held_bytes
from fasttts.models.orpheus.prompt import CODEBOOK_SIZE, FRAME_CODES
from fasttts.models.orpheus.random_model import SNAC_24KHZ, SNAC_TINY, write_random_snac
from fasttts.models.orpheus.snac_codec import SnacCodec, load_snac, snac_from_state

SIZES = {"tiny": SNAC_TINY, "full": SNAC_24KHZ}


@pytest.fixture(scope="module", params=sorted(SIZES))
def snac_dir(request, tmp_path_factory) -> Path:
    return write_random_snac(tmp_path_factory.mktemp("snac") / request.param, SIZES[request.param], seed=5)


def read(snac_dir: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    config = json.loads((snac_dir / "config.json").read_text())
    return config, torch.load(snac_dir / "pytorch_model.bin", map_location="cpu", weights_only=True)


def module_key(checkpoint_key: str) -> str:
    """The checkpoint's classic weight-norm names → the parametrized module's state_dict keys."""
    return checkpoint_key.replace(".weight_g", ".parametrizations.weight.original0").replace(".weight_v", ".parametrizations.weight.original1")


def copying_load(config: dict, state: dict[str, torch.Tensor]) -> SNAC:
    """The loader before issue 18: random weights first, then the checkpoint copied over them."""
    torch.manual_seed(0)
    model = SNAC(**config)
    model.load_state_dict(state, strict=True)
    return model.eval()


def as_bytes(t: torch.Tensor) -> torch.Tensor:
    return t.detach().contiguous().view(torch.uint8)


def test_loaded_state_is_the_checkpoint_bit_for_bit_and_nothing_is_meta(snac_dir):
    model = load_snac(snac_dir)
    _, checkpoint = read(snac_dir)
    state = model.state_dict()
    assert set(state) == {module_key(k) for k in checkpoint}
    assert any(".weight_g" in k for k in checkpoint)  # the classic names are what is exercised
    for key, tensor in checkpoint.items():
        loaded = state[module_key(key)]
        assert loaded.dtype == tensor.dtype and loaded.shape == tensor.shape, key
        assert torch.equal(as_bytes(loaded), as_bytes(tensor)), key
    held = [*state.values(), *model.parameters(), *model.buffers()]
    assert held and not any(t.is_meta for t in held)
    # what is derived on access: each weight-normed conv's weight, from the assigned g and v
    reference = copying_load(*read(snac_dir))
    convs = {name: m for name, m in model.named_modules() if hasattr(m, "parametrizations")}
    assert len(convs) > 50
    for name, ref in reference.named_modules():
        if name in convs:
            assert not convs[name].weight.is_meta
            assert torch.equal(as_bytes(convs[name].weight), as_bytes(ref.weight)), name


def test_loading_holds_the_checkpoint_tensors_themselves(snac_dir):
    """No second copy: every tensor the module holds is a checkpoint tensor as read (same storage),
    and the module holds no storage beyond the checkpoint's bytes."""
    config, checkpoint = read(snac_dir)
    model = snac_from_state(config, checkpoint)
    state = model.state_dict()
    for key, tensor in checkpoint.items():
        assert state[module_key(key)].data_ptr() == tensor.data_ptr(), key
    assert held_bytes(model.modules()) == sum(t.untyped_storage().nbytes() for t in checkpoint.values())
    assert held_bytes(copying_load(config, checkpoint).modules()) == held_bytes(model.modules())  # no more than the old way held


@pytest.fixture(scope="module")
def tiny_snac_dir(tmp_path_factory) -> Path:
    return write_random_snac(tmp_path_factory.mktemp("snac") / "tiny", SNAC_TINY, seed=5)


def test_decoding_equals_the_copying_load(tiny_snac_dir):
    # the tiny SNAC runs the same network code as the full one (whose loading the tests above cover)
    snac_dir = tiny_snac_dir
    frames = np.random.default_rng(2).integers(0, CODEBOOK_SIZE, (5, FRAME_CODES))
    for seed in (0, 7):
        codec = SnacCodec(load_snac(snac_dir), noise_seed=seed)
        old = SnacCodec(copying_load(*read(snac_dir)), noise_seed=seed)
        audio = codec.decode(frames)
        assert np.isfinite(audio).all() and audio.std() > 1e-3
        np.testing.assert_array_equal(audio, old.decode(frames))


def test_a_config_with_unsaved_buffers_is_loaded_by_copy(tmp_path):
    """SNAC's attention keeps a non-persistent rotary ``scale`` the checkpoint lacks: assigned onto
    meta it would stay meta, so such a module is built for real and the checkpoint copied in."""
    config = {**SNAC_TINY, "attn_window_size": 4}
    snac_dir = write_random_snac(tmp_path / "attn", config, seed=1)
    model = load_snac(snac_dir)
    reference = copying_load(*read(snac_dir))
    buffers = dict(model.named_buffers())
    assert any(name.endswith("rel_pos.scale") for name in buffers)
    for name, ref in reference.named_buffers():
        assert not buffers[name].is_meta and torch.equal(buffers[name], ref), name
    for name, ref in reference.state_dict().items():
        assert torch.equal(as_bytes(model.state_dict()[name]), as_bytes(ref)), name
