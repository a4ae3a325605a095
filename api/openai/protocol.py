"""Pydantic copies of OpenAI's speech, model-list and voice-list schemas, plus our extra fields.

Unknown fields are ignored (as OpenAI's own SDKs may send newer ones); known ones are validated
with OpenAI's ranges so a bad value is a 422 whose ``param`` names it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from api.schemas import (
    LengthThreshold,
    Level,
    MaxTokens,
    RepetitionPenalty,
    ResponseFormat,
    Seed,
    Temperature,
    TopK,
    TopP,
    WindowSize,
)

OPENAI_MODELS = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")
"""OpenAI model ids accepted as aliases of the loaded model."""

OPENAI_VOICES = ("alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse", "marin", "cedar")


OPENAI_PCM_RATE = 24000
"""OpenAI's documented PCM rate; clients (Home Assistant's OpenAI TTS, ...) wrap PCM as 24 kHz."""


class VoiceRef(BaseModel):
    id: str = Field(..., min_length=1, max_length=128)


class OpenAISpeechRequest(BaseModel):
    """``POST /v1/audio/speech``: OpenAI's fields, then ours (all optional)."""

    model_config = ConfigDict(
        extra="ignore",
        allow_inf_nan=False,
        json_schema_extra={
            "examples": [
                {"model": "tts-1", "input": "Hello from FastTTS!", "voice": "alloy", "response_format": "mp3", "speed": 1.0},
                {"model": "gpt-4o-mini-tts", "input": "Streaming, please.", "voice": {"id": "alloy"}, "response_format": "pcm", "stream_format": "sse"},
            ]
        },
    )

    model: str = Field(..., min_length=1, description="tts-1, tts-1-hd, gpt-4o-mini-tts, or this server's model id (GET /v1/models).")
    input: str = Field(..., min_length=1, description="Text to synthesize (at most --max_input_chars, 4096 by default).")
    voice: str | VoiceRef = Field(..., description='A voice name (ours or an OpenAI name mapped onto ours), or {"id": name}.')
    instructions: str | None = Field(None, max_length=4096, description="Style instructions; used where the model supports them.")
    response_format: ResponseFormat = Field(
        "mp3", description="mp3, opus, aac, flac, wav or pcm (as OpenAI: 24 kHz 16-bit signed little-endian mono, whatever the model's rate)."
    )
    speed: float = Field(
        1.0, ge=0.25, le=4.0, description="0.25–4.0 on every model: a native speed level where one matches, else pitch-preserving time-stretching."
    )
    stream_format: Literal["audio", "sse"] = Field("audio", description="audio: raw audio bytes; sse: speech.audio.delta events.")
    # --- FastTTS extras
    sample_rate: int | None = Field(
        None,
        ge=8000,
        le=48000,
        description="Resample to this rate (default: 24000 for pcm, the model's for other formats); every container but pcm states its rate.",
    )
    stream: bool = Field(True, description="With stream_format=audio: chunked as produced (true) or one complete file with Content-Length (false).")
    pitch: Level | None = Field(None, description="Pitch level (models with pitch control).")
    temperature: Temperature = None
    top_k: TopK = None
    top_p: TopP = None
    repetition_penalty: RepetitionPenalty = None
    max_tokens: MaxTokens = None
    length_threshold: LengthThreshold = 50
    window_size: WindowSize = 50
    seed: Seed = None

    @property
    def voice_name(self) -> str:
        return self.voice.id if isinstance(self.voice, VoiceRef) else self.voice


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "fasttts"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class AudioModel(BaseModel):
    id: str


class AudioModelList(BaseModel):
    """``GET /v1/audio/models``: the shape Open WebUI reads (``{"models": [{"id": ...}]}``)."""

    models: list[AudioModel]


class VoiceInfo(BaseModel):
    id: str
    name: str


class VoiceList(BaseModel):
    voices: list[VoiceInfo]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail
