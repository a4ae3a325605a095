"""All settings in one pydantic-settings class, built once and passed down.

Every field can come from the command line (``fasttts serve --model_path ...``, same names as the
server guide), from the environment (``FASTTTS_MODEL_PATH``) or from a ``.env`` file. The
embedded default needs none of them: no model path serves the bundled Piper voice, no database URL
means SQLite under ``data_dir``, no broker means jobs run in-process, no S3 bucket means a local
directory store.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from fasttts.params import BackendName

DType = Literal["float16", "bfloat16", "float32", "int8", "auto"]
AttnImpl = Literal["sdpa", "flash_attention_2", "eager"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FASTTTS_", env_file=".env", extra="ignore", protected_namespaces=())

    # --- model and engine (server guide table)
    model_path: str | None = Field(None, description="Model directory (Spark-TTS, Orpheus, MegaTTS3). None: the embedded Piper voice.")
    backend: BackendName = Field("torch", description="LLM backend.")
    snac_path: str | None = Field(None, description="SNAC 24 kHz directory for Orpheus (default: <model_path>/snac).")
    lang: str | None = Field(None, description="Language of an Orpheus checkpoint (en, fr, de, ko, hi, zh, es, it); picks its voice list.")
    role_dir: str | None = Field(None, description="Directory of role voices (one folder per voice). Default data/roles (MegaTTS3: data/mega-roles).")
    llm_device: str = "auto"
    tokenizer_device: str = "auto"
    detokenizer_device: str = "auto"
    wav2vec_attn_implementation: AttnImpl = "eager"
    llm_attn_implementation: AttnImpl = "eager"
    max_length: int = Field(32768, ge=16, description="Max LLM context length.")
    llm_gpu_memory_utilization: float = Field(0.6, gt=0, le=1)
    torch_dtype: DType = Field(
        "auto", description="LLM weights; int8: weight-only, per-channel scales (torch backend on CPU); auto: the fastest exact one measured at load."
    )
    cache_implementation: str | None = None
    seed: int = 0
    batch_size: int = Field(1, ge=1, description="Max batch size for the codec stages.")
    llm_batch_size: int = Field(256, ge=1, description="Max sequences the LLM decodes together.")
    wait_timeout: float = Field(0.01, ge=0, description="Seconds the codec micro-batcher waits to fill a batch.")

    # --- HTTP server
    host: str = "0.0.0.0"
    port: int = 8000
    api_key: str | None = None
    open_list_routes: bool = Field(
        False,
        description="With --api_key: leave GET /v1/models, /v1/audio/models, /v1/audio/voices and /audio_roles open (Open WebUI lists without the key); synthesis still needs it.",
    )
    model_name: str = Field("fasttts", description="Model id reported by /v1/models.")
    fix_voice: bool = Field(False, description="Freeze created voices (female/male) so they sound the same on every request.")
    max_concurrency: int = Field(64, ge=1, description="Synthesis requests in flight before 429.")
    cors_origins: list[str] = Field(default_factory=list)
    max_input_chars: int = Field(4096, ge=1)
    max_upload_bytes: int = Field(
        20 * 1024 * 1024,
        ge=1,
        description="Largest uploaded file or reference; a multipart body may carry it as base64 (4/3 larger) plus 1 MiB of other fields.",
    )
    max_json_bytes: int = Field(
        32 * 1024 * 1024,
        ge=1,
        description="Largest request body that is not a multipart upload (JSON): refused on its Content-Length before it is read, and while it streams. Room for a base64 reference at the default upload cap.",
    )
    max_job_chars: int = Field(1_000_000, ge=1, description="Most characters of text one job may have (a book's, after its markup is stripped): 413 beyond it.")
    max_reference_seconds: float = Field(60.0, gt=0)
    allow_private_urls: bool = Field(False, description="Allow reference-audio and webhook URLs that resolve to private/loopback addresses.")
    fetch_deadline_s: float = Field(30.0, gt=0, description="Overall deadline of one reference-URL fetch (resolution, connection, redirects, whole body).")
    webhook_deadline_s: float = Field(10.0, gt=0, description="Overall deadline of one webhook POST attempt (three attempts at most).")
    openai_voice_map: dict[str, str] = Field(default_factory=dict, description="Override OpenAI voice names → our voices.")

    # --- persistence and jobs
    data_dir: Path = Field(Path("data/runtime"), description="Where the embedded default keeps its SQLite file and audio.")
    database_url: str | None = Field(None, description="SQLAlchemy URL; None: sqlite under data_dir.")
    broker_url: str | None = Field(None, description="Celery broker (redis://...); None: jobs run in-process.")
    s3_bucket: str | None = None
    s3_prefix: str = "fasttts/"
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    job_result_ttl_s: int = Field(7 * 24 * 3600, ge=1)
    job_route_min_chars: int = Field(2000, ge=1, description="Non-streaming sync requests longer than this run as jobs.")
    job_wait_timeout_s: float = Field(600.0, gt=0)
    segment_lease_s: float = Field(60.0, gt=0)
    webhook_secret: str | None = None
    auto_migrate: bool = Field(True, description="Run `alembic upgrade head` at start-up; False: refuse to start on an old schema.")
    job_queue: str = Field("fasttts-jobs", description="Celery queue the job tasks go to.")
    job_batch_size: int = Field(8, ge=1, description="Segments a worker claims and synthesises together.")
    job_max_attempts: int = Field(5, ge=1, description="Claims of one segment before its job fails.")
    job_inprocess_concurrency: int = Field(2, ge=1, description="Jobs the in-process runner (no broker) works on at once.")
    worker_concurrency: int = Field(1, ge=1, description="Pool processes of `fasttts worker`, one engine each (one per GPU).")
    job_task_time_limit_s: float = Field(6 * 3600, gt=0, description="Celery hard time limit of one run_job task.")

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'fasttts.db').resolve()}"


def with_overrides(settings: Settings | None, **overrides: Any) -> Settings:
    """``settings`` (default: built from the environment) with some fields replaced, validated like
    any other input; an unknown field name raises ``TypeError`` naming it."""
    unknown = set(overrides) - set(Settings.model_fields)
    if unknown:
        raise TypeError(f"unknown settings: {', '.join(sorted(unknown))}")
    if settings is None:
        return Settings(**overrides)
    return Settings.model_validate({**settings.model_dump(), **overrides})
