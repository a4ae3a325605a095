"""Request and response bodies of the native API (server guide §4), apart from any engine type.

Field names, types and enums are the guide's; ranges mirror :mod:`fasttts.params` so a bad value
is a 422 naming the field before anything runs.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from fasttts.params import SamplingParams, SplitParams

Level = Literal["very_low", "low", "moderate", "high", "very_high"]
ResponseFormat = Literal["mp3", "opus", "aac", "flac", "wav", "pcm"]


class SamplingFields(BaseModel):
    """Generation controls shared by every synthesis endpoint (``None``: the model's default)."""

    temperature: float | None = Field(None, ge=0.0, le=10.0, description="Randomness of generation; 0 is greedy.", examples=[0.9])
    top_k: int | None = Field(None, ge=0, description="Top-K sampling (0: no limit).", examples=[50])
    top_p: float | None = Field(None, gt=0.0, le=1.0, description="Nucleus sampling threshold.", examples=[0.95])
    repetition_penalty: float | None = Field(None, ge=0.1, le=10.0, description="Penalty on repeated tokens (1.0: none).", examples=[1.0])
    max_tokens: int | None = Field(None, ge=1, le=1_000_000, description="Max tokens generated per segment.", examples=[4096])
    length_threshold: int = Field(50, ge=1, le=100_000, description="Text longer than this many tokens is split.")
    window_size: int = Field(50, ge=1, le=100_000, description="Target segment length in tokens when splitting.")
    seed: int | None = Field(None, ge=0, description="Per-request seed (same seed and input: same audio on a deterministic backend).")
    text_weight: float | None = Field(None, ge=0.0, le=20.0, description="MegaTTS3: guidance towards the text (intelligibility; default 1.6).")
    speaker_weight: float | None = Field(None, ge=0.0, le=20.0, description="MegaTTS3: guidance towards the reference speaker (similarity; default 2.5).")
    diffusion_steps: int | None = Field(None, ge=1, le=256, description="MegaTTS3: flow-matching steps (default 32).")

    def sampling(self) -> SamplingParams:
        return SamplingParams(self.temperature, self.top_k, self.top_p, self.repetition_penalty, self.max_tokens, self.seed,
                              self.text_weight, self.speaker_weight, self.diffusion_steps)

    def split(self) -> SplitParams:
        return SplitParams(self.length_threshold, self.window_size)


class OutputFields(BaseModel):
    stream: bool = Field(False, description="Stream audio as it is produced (chunked) instead of one complete file.")
    response_format: ResponseFormat = Field("mp3", description="Output audio format.")


class SpeakRequest(SamplingFields, OutputFields):
    """``POST /speak``: synthesis with a stored or built-in voice (role)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "name": "female", "text": "Text to synthesize", "pitch": "moderate", "speed": "moderate", "temperature": 0.9,
        "top_k": 50, "top_p": 0.95, "repetition_penalty": 1.0, "max_tokens": 4096, "length_threshold": 50,
        "window_size": 50, "stream": False, "response_format": "mp3"}]})

    name: str = Field(..., min_length=1, max_length=128, description="Voice (role) name; see GET /audio_roles.")
    text: str = Field(..., min_length=1, description="Text to synthesize.")
    pitch: Level | None = Field(None, description="Pitch level (models with pitch control).")
    speed: Level | None = Field(None, description="Speed level (models with speed control).")


class MultiSpeakRequest(SamplingFields, OutputFields):
    """``POST /multi_speak``: a dialogue script, each turn prefixed ``<role:name>``."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "text": "<role:female> Hello! <role:male> I'm good, thank you!", "temperature": 0.8, "top_k": 50, "top_p": 0.95,
        "repetition_penalty": 1.0, "max_tokens": 4096, "length_threshold": 50, "window_size": 50, "stream": True,
        "response_format": "wav"}]})

    text: str = Field(..., min_length=1, description="Script: '<role:NAME> text <role:OTHER> text ...'.")


class RolesResponse(BaseModel):
    success: bool = True
    roles: list[str] = Field(..., examples=[["alice", "bob", "tara"]])
