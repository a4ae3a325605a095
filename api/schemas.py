"""Request and response bodies of the native API (server guide §4), apart from any engine type.

Field names, types and enums are the guide's; enums and ranges are :mod:`fasttts.params`'s, so a
bad value is a 422 naming the field before anything runs.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from fasttts.params import LIMITS, Level, ResponseFormat, SamplingParams, SplitParams

__all__ = ["Level", "ResponseFormat"]  # re-exported for the routes

Temperature = Annotated[float | None, LIMITS["temperature"].interval]
TopK = Annotated[int | None, LIMITS["top_k"].interval]
TopP = Annotated[float | None, LIMITS["top_p"].interval]
RepetitionPenalty = Annotated[float | None, LIMITS["repetition_penalty"].interval]
MaxTokens = Annotated[int | None, LIMITS["max_tokens"].interval]
Seed = Annotated[int | None, LIMITS["seed"].interval]
LengthThreshold = Annotated[int, LIMITS["length_threshold"].interval]
WindowSize = Annotated[int, LIMITS["window_size"].interval]
TextWeight = Annotated[float | None, LIMITS["text_weight"].interval]
SpeakerWeight = Annotated[float | None, LIMITS["speaker_weight"].interval]
DiffusionSteps = Annotated[int | None, LIMITS["diffusion_steps"].interval]


class SamplingFields(BaseModel):
    """Generation controls shared by every synthesis endpoint (``None``: the model's default).
    NaN and infinities are refused by name: JSON bodies parsed by Python may hold them."""

    model_config = ConfigDict(allow_inf_nan=False)

    temperature: Temperature = Field(None, description="Randomness of generation; 0 is greedy.", examples=[0.9])
    top_k: TopK = Field(None, description="Top-K sampling (0: no limit).", examples=[50])
    top_p: TopP = Field(None, description="Nucleus sampling threshold.", examples=[0.95])
    repetition_penalty: RepetitionPenalty = Field(None, description="Penalty on repeated tokens (1.0: none).", examples=[1.0])
    max_tokens: MaxTokens = Field(None, description="Max tokens generated per segment.", examples=[4096])
    length_threshold: LengthThreshold = Field(50, description="Text longer than this many tokens is split.")
    window_size: WindowSize = Field(50, description="Target segment length in tokens when splitting.")
    seed: Seed = Field(None, description="Per-request seed (same seed and input: same audio on a deterministic backend).")
    text_weight: TextWeight = Field(None, description="MegaTTS3: guidance towards the text (intelligibility; default 1.6).")
    speaker_weight: SpeakerWeight = Field(None, description="MegaTTS3: guidance towards the reference speaker (similarity; default 2.5).")
    diffusion_steps: DiffusionSteps = Field(None, description="MegaTTS3: flow-matching steps (default 32).")

    def sampling(self) -> SamplingParams:
        return SamplingParams(
            self.temperature,
            self.top_k,
            self.top_p,
            self.repetition_penalty,
            self.max_tokens,
            self.seed,
            self.text_weight,
            self.speaker_weight,
            self.diffusion_steps,
        )

    def split(self) -> SplitParams:
        return SplitParams(self.length_threshold, self.window_size)


class OutputFields(BaseModel):
    stream: bool = Field(False, description="Stream audio as it is produced (chunked) instead of one complete file.")
    response_format: ResponseFormat = Field("mp3", description="Output audio format.")


class SpeakRequest(SamplingFields, OutputFields):
    """``POST /speak``: synthesis with a stored or built-in voice (role)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "female",
                    "text": "Text to synthesize",
                    "pitch": "moderate",
                    "speed": "moderate",
                    "temperature": 0.9,
                    "top_k": 50,
                    "top_p": 0.95,
                    "repetition_penalty": 1.0,
                    "max_tokens": 4096,
                    "length_threshold": 50,
                    "window_size": 50,
                    "stream": False,
                    "response_format": "mp3",
                }
            ]
        }
    )

    name: str = Field(..., min_length=1, max_length=128, description="Voice (role) name; see GET /audio_roles.")
    text: str = Field(..., min_length=1, description="Text to synthesize.")
    pitch: Level | None = Field(None, description="Pitch level (models with pitch control).")
    speed: Level | None = Field(None, description="Speed level (models with speed control).")


class MultiSpeakRequest(SamplingFields, OutputFields):
    """``POST /multi_speak``: a dialogue script, each turn prefixed ``<role:name>``."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "text": "<role:female> Hello! <role:male> I'm good, thank you!",
                    "temperature": 0.8,
                    "top_k": 50,
                    "top_p": 0.95,
                    "repetition_penalty": 1.0,
                    "max_tokens": 4096,
                    "length_threshold": 50,
                    "window_size": 50,
                    "stream": True,
                    "response_format": "wav",
                }
            ]
        }
    )

    text: str = Field(..., min_length=1, description="Script: '<role:NAME> text <role:OTHER> text ...'.")


class RolesResponse(BaseModel):
    success: bool = True
    roles: list[str] = Field(..., examples=[["alice", "bob", "tara"]])
