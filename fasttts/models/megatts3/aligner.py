"""MegaTTS3 aligner: a Whisper-base-sized encoder-decoder that reads the reference's log-mel and
writes alternating (merged phone id, end-frame token) pairs — the reference's phones and durations.

Must equal ``Whisper`` of ``tts/modules/aligner/whisper_small.py`` (``embed_audio`` and
``logits``; state-dict names are the official ones). The reference decodes greedily by recomputing
the whole prefix every step; this one keeps a key/value cache (the same numbers).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from fasttts.models.megatts3.config import AlignerConfig

START, END, TIME0 = 798, 799, 800
"""Aligner ids: start of alignment, end, and the first time-stamp token (frame index + 800)."""


def audio_sinusoids(length: int, channels: int) -> torch.Tensor:
    """Whisper's fixed encoder positions (``sinusoids``)."""
    inc = math.log(10000) / (channels // 2 - 1)
    inv = torch.exp(-inc * torch.arange(channels // 2))
    scaled = torch.arange(length)[:, None] * inv[None, :]
    return torch.cat([torch.sin(scaled), torch.cos(scaled)], dim=1)


class MultiHeadAttention(nn.Module):
    """Whisper attention (key without bias, SDPA default scaling)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(width, width)
        self.key = nn.Linear(width, width, bias=False)
        self.value = nn.Linear(width, width)
        self.out = nn.Linear(width, width)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(*x.shape[:2], self.heads, -1).transpose(1, 2)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool) -> torch.Tensor:
        out = F.scaled_dot_product_attention(self._split(q), self._split(k), self._split(v), is_causal=causal and q.shape[1] > 1)
        return cast(torch.Tensor, self.out(out.transpose(1, 2).flatten(2)))


def _ln(norm: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    out: torch.Tensor = norm(x.float())
    return out.type(x.dtype)


class Block(nn.Module):
    """``ResidualAttentionBlock`` (pre-LN; cross-attention in the decoder)."""

    def __init__(self, width: int, heads: int, cross: bool) -> None:
        super().__init__()
        self.attn = MultiHeadAttention(width, heads)
        self.attn_ln = nn.LayerNorm(width)
        if cross:
            self.cross_attn = MultiHeadAttention(width, heads)
            self.cross_attn_ln = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))
        self.mlp_ln = nn.LayerNorm(width)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        h = _ln(self.attn_ln, x)
        x = x + self.attn.attend(self.attn.query(h), self.attn.key(h), self.attn.value(h), causal=False)
        return self._mlp(x)

    def decode(self, x: torch.Tensor, cross_kv: tuple[torch.Tensor, torch.Tensor], cache: list[torch.Tensor] | None) -> torch.Tensor:
        """Decoder block over new tokens x; ``cache`` holds [keys, values] of earlier tokens and is
        extended in place (None: x is the whole prefix)."""
        h = _ln(self.attn_ln, x)
        k, v = self.attn.key(h), self.attn.value(h)
        if cache is not None:
            if cache:
                k, v = torch.cat([cache[0], k], 1), torch.cat([cache[1], v], 1)
            cache[:] = [k, v]
        causal = x.shape[1] == k.shape[1]  # a prefix attends causally; one new token sees all
        x = x + self.attn.attend(self.attn.query(h), k, v, causal=causal)
        h = _ln(self.cross_attn_ln, x)
        x = x + self.cross_attn.attend(self.cross_attn.query(h), *cross_kv, causal=False)
        return self._mlp(x)

    def _mlp(self, x: torch.Tensor) -> torch.Tensor:
        return x + cast(torch.Tensor, self.mlp(_ln(self.mlp_ln, x)))


def _blocks(blocks: nn.ModuleList) -> Sequence[Block]:
    """The blocks of an encoder or decoder, typed (a ModuleList only knows it holds Modules)."""
    return cast(Sequence[Block], blocks)


class AudioEncoder(nn.Module):
    """``AudioEncoder``: two convs (the second stride 2), fixed sinusoids, blocks, ``ln_post``."""

    positional_embedding: torch.Tensor  # buffer, registered in __init__

    def __init__(self, cfg: AlignerConfig) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(cfg.n_mels, cfg.width, 3, padding=1)
        self.conv2 = nn.Conv1d(cfg.width, cfg.width, 3, stride=2, padding=1)
        self.register_buffer("positional_embedding", audio_sinusoids(cfg.audio_ctx, cfg.width))
        self.blocks = nn.ModuleList(Block(cfg.width, cfg.heads, cross=False) for _ in range(cfg.encoder_layers))
        self.ln_post = nn.LayerNorm(cfg.width)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.conv2(F.gelu(self.conv1(mel)))).transpose(1, 2)
        x = x + self.positional_embedding[: x.shape[1]]
        for block in _blocks(self.blocks):
            x = block.encode(x)
        return _ln(self.ln_post, x)


class TextDecoder(nn.Module):
    """``TextDecoder`` with its own (untied, biased) ``out_proj``."""

    def __init__(self, cfg: AlignerConfig) -> None:
        super().__init__()
        self.token_embedding = nn.Embedding(cfg.vocab, cfg.width)
        self.positional_embedding = nn.Parameter(torch.zeros(cfg.text_ctx, cfg.width))
        self.blocks = nn.ModuleList(Block(cfg.width, cfg.heads, cross=True) for _ in range(cfg.decoder_layers))
        self.ln = nn.LayerNorm(cfg.width)
        self.out_proj = nn.Linear(cfg.width, cfg.vocab)

    def forward(
        self, tokens: torch.Tensor, offset: int, cross: list[tuple[torch.Tensor, torch.Tensor]], caches: list[list[torch.Tensor]] | None
    ) -> torch.Tensor:
        x = self.token_embedding(tokens) + self.positional_embedding[offset : offset + tokens.shape[1]]
        for i, block in enumerate(_blocks(self.blocks)):
            x = block.decode(x, cross[i], None if caches is None else caches[i])
        return cast(torch.Tensor, self.out_proj(_ln(self.ln, x)))


class Aligner(nn.Module):
    """``Whisper``: ``embed_audio`` + greedy alignment decoding."""

    def __init__(self, cfg: AlignerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = AudioEncoder(cfg)
        self.decoder = TextDecoder(cfg)

    def embed_audio(self, mel: torch.Tensor) -> torch.Tensor:
        """[B, n_mels, F] → [B, F/2, width]."""
        return cast(torch.Tensor, self.encoder(mel))

    def logits(self, tokens: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """Whole-prefix logits [B, L, vocab] (``Whisper.logits`` without a cache)."""
        return cast(torch.Tensor, self.decoder(tokens, 0, self._cross(audio), None))

    def _cross(self, audio: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Every decoder block's cross-attention keys and values of the encoded audio."""
        return [(b.cross_attn.key(audio), b.cross_attn.value(audio)) for b in _blocks(self.decoder.blocks)]

    @torch.inference_mode()
    def align_tokens(self, mel: torch.Tensor) -> list[int]:
        """Greedy decoding from START until END (or ``max_steps``), kept to the alignment grammar:
        a phone (3…173, 200…788), then an end time not before the previous one and not past the
        mel's frames, and so on; END only after a time, and forced once the last frame is reached.
        A trained aligner's argmax already follows it (so results equal the reference's); random
        weights still give a well-formed alignment. Returns the tokens after START, END excluded."""
        frames = mel.shape[-1]
        audio = self.embed_audio(mel)
        cross = self._cross(audio)
        caches: list[list[torch.Tensor]] = [[] for _ in self.decoder.blocks]
        vocab = self.cfg.vocab
        phone_mask = torch.full((vocab,), float("-inf"), device=mel.device)
        phone_mask[3:174] = 0
        phone_mask[200:789] = 0
        out: list[int] = []
        last_time = 0
        token = torch.tensor([[START]], device=mel.device)
        for step in range(self.cfg.max_steps):
            logits = self.decoder(token, step, cross, caches)[0, -1].float()
            if len(out) % 2 == 0:  # a phone, or the end after a complete pair
                if out and last_time >= frames:
                    break
                allowed = phone_mask.clone()
                if out:
                    allowed[END] = 0
            else:
                allowed = torch.full((vocab,), float("-inf"), device=mel.device)
                allowed[TIME0 + last_time : min(TIME0 + frames, vocab - 1) + 1] = 0
            nxt = int((logits + allowed).argmax())
            if nxt == END:
                break
            if len(out) % 2 == 1:
                last_time = nxt - TIME0
            out.append(nxt)
            token = torch.tensor([[nxt]], device=mel.device)
        return out[: len(out) // 2 * 2]
