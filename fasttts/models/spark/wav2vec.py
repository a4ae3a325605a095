"""wav2vec2-XLSR-53 features for BiCodec's semantic tokens.

The reference (SparkAudio/Spark-TTS ``sparktts/models/audio_tokenizer.py``) normalises each wav
with ``Wav2Vec2FeatureExtractor`` (zero mean, unit variance), runs ``Wav2Vec2Model`` with
hidden states and averages hidden states 11, 14 and 16. One frame per 320 samples after the
conv front end: ``(n - 400) // 320 + 1`` frames for ``n >= 400`` samples.

Only hidden states 0..16 are needed, so a deeper model is cut to 16 layers after loading and its
encoder's final LayerNorm (which HF applies only to the last hidden state) is replaced by
identity: hidden state 16 is then the raw output of layer 15, exactly as in the full model, and
XLSR-53 runs 16 of its 24 layers.

The weights are read from ``model.safetensors`` (what ``save_pretrained`` writes today, and what
converted mirrors ship) or ``pytorch_model.bin`` (the official release), and either way strictly:
every tensor of the model must be in the file with its shape.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn
from transformers import Wav2Vec2FeatureExtractor, Wav2Vec2Model

from fasttts.errors import ModelLoadError

FEATURE_LAYERS = (11, 14, 16)
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
"""Checkpoint files accepted, in the order transformers prefers them."""


def _weights_file(model_dir: Path) -> str:
    for name in ("config.json", "preprocessor_config.json"):
        if not (model_dir / name).is_file():
            raise ModelLoadError(f"wav2vec2 directory {model_dir} lacks {name}")
    found = [name for name in WEIGHT_FILES if (model_dir / name).is_file()]
    if not found:
        raise ModelLoadError(f"wav2vec2 directory {model_dir} has no weights: expected {' or '.join(WEIGHT_FILES)}")
    return found[0]


class Wav2VecFeatures:
    """Batched wav -> features [B, T, hidden] (mean of hidden states 11, 14, 16)."""

    def __init__(
        self,
        model_dir: Path | str,
        *,
        device: torch.device | str = "cpu",
        attn_implementation: str = "eager",
    ) -> None:
        model_dir = Path(model_dir)
        weights = _weights_file(model_dir)
        if attn_implementation not in ("eager", "sdpa"):
            raise ModelLoadError(f"attn_implementation must be 'eager' or 'sdpa', not {attn_implementation!r}")
        try:
            self.processor = Wav2Vec2FeatureExtractor.from_pretrained(str(model_dir))
            # transformers types the return as the model alone; output_loading_info adds the info dict
            model, info = cast(
                tuple[Wav2Vec2Model, dict[str, Any]],
                Wav2Vec2Model.from_pretrained(
                    str(model_dir),
                    attn_implementation=attn_implementation,
                    output_loading_info=True,
                    local_files_only=True,
                    use_safetensors=weights.endswith(".safetensors"),
                ),
            )
        except (OSError, ValueError, RuntimeError) as exc:
            raise ModelLoadError(f"cannot load wav2vec2 from {model_dir}: {exc}") from exc
        problems = {k: v for k, v in info.items() if k in ("missing_keys", "mismatched_keys") and v}
        if problems:
            raise ModelLoadError(f"wav2vec2 checkpoint {model_dir / weights} does not match its config: {problems}")
        last = max(FEATURE_LAYERS)
        if model.config.num_hidden_layers < last:
            raise ModelLoadError(f"wav2vec2 needs >= {last} layers for hidden state {last}, has {model.config.num_hidden_layers}")
        if model.config.num_hidden_layers > last:
            del model.encoder.layers[last:]
            model.encoder.layer_norm = nn.Identity()  # type: ignore[assignment]  # the LayerNorm is dropped on purpose (module docstring)
            model.config.num_hidden_layers = last
        # transformers wraps .to() with functools.wraps(nn.Module.to), which its stubs read as unbound
        self.model: Wav2Vec2Model = model.to(device).eval()  # type: ignore[arg-type]
        self.device = torch.device(device)
        self.hidden_size: int = model.config.hidden_size

    def num_frames(self, n_samples: int) -> int:
        """Frames the conv front end yields for ``n_samples`` (0 when too short)."""
        n = cast(torch.LongTensor, torch.tensor(n_samples))  # an int64 tensor; transformers annotates the legacy class
        return int(self.model._get_feat_extract_output_lengths(n).clamp(min=0))

    @torch.inference_mode()
    def __call__(self, wavs: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """wavs: float32 mono 16 kHz -> (features [B, T_max, hidden], frames per item [B])."""
        inputs = self.processor(
            [np.asarray(w, dtype=np.float32) for w in wavs],
            sampling_rate=self.processor.sampling_rate,
            return_tensors="pt",
            padding=True,
            return_attention_mask=True,
        )
        out = self.model(
            inputs.input_values.to(self.device),
            attention_mask=inputs.attention_mask.to(self.device),
            output_hidden_states=True,
        )
        feats = sum(out.hidden_states[i] for i in FEATURE_LAYERS) / len(FEATURE_LAYERS)
        lengths = self.model._get_feat_extract_output_lengths(inputs.attention_mask.sum(-1))
        return feats, lengths.to(self.device)
