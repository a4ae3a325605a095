"""Durable voices (roles): a database row, the reference audio in object storage, and the
engine's encoded state, so a restart reloads every voice without re-encoding anything.

Sources of voices, in the order the server applies them at start-up (``api/app.py``):

1. :meth:`VoiceService.load_stored` loads the stored voices (rows) into the engine *before* it
   starts — so ``--fix_voice`` finds its frozen ``female``/``male`` already there and does not
   generate them again;
2. then ``engine.start()``; then :meth:`VoiceService.sync` freezes and persists the ``--fix_voice``
   voices not yet stored, and
3. scans ``--role_dir`` (one folder per voice: an audio file and an optional
   ``reference_text.txt``): a folder whose audio equals the stored reference is just the stored
   voice, otherwise it is encoded (once) and stored.

Voices created over the API (cloned from audio, or frozen from gender/pitch/speed) are stored the
same way (:meth:`VoiceService.create`, :meth:`VoiceService.freeze`).
Database and storage calls are blocking, so they run in threads.
"""

from __future__ import annotations

import asyncio
import builtins
import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fasttts.config import Settings
from fasttts.db import Voice, engine_from_settings, session_factory
from fasttts.db.migrate import prepare_schema
from fasttts.engine.base import TTSEngine
from fasttts.errors import InvalidRequestError, NotFoundError, UnsupportedFeatureError
from fasttts.params import GENDERS, VoiceParams
from fasttts.storage import ObjectStore, store_from_settings, voice_key
from fasttts.text.script import validate_role_name

logger = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".mp3", ".flac", ".ogg", ".opus", ".m4a", ".aac", ".webm")
REFERENCE_TEXT_FILE = "reference_text.txt"
LATENT_SUFFIX = ".npy"
"""MegaTTS3 role folders: the latent beside the audio, same stem (``voice.wav`` + ``voice.npy``)."""


def _latent_kwargs(latent: bytes | None) -> dict[str, bytes]:
    """``add_voice`` keywords: only models that take a latent get one (others keep their signature)."""
    return {} if latent is None else {"latent": latent}


@dataclass(frozen=True)
class VoiceInfo:
    """A stored voice as the API shows it (no engine state)."""

    name: str
    kind: str
    """``clone`` (from reference audio), ``frozen`` (a fixed created voice) or ``role`` (from --role_dir)."""
    reference_text: str | None
    has_audio: bool
    created_at: dt.datetime


def _valid_name(name: str) -> None:
    """A voice name must be usable as-is in storage keys and ``<role:...>`` tags."""
    try:
        if validate_role_name(name) != name:
            raise InvalidRequestError("name: must not start or end with whitespace", param="name")
    except InvalidRequestError as exc:
        raise InvalidRequestError(exc.message if exc.message.startswith("name") else f"name: {exc.message}", param="name") from None


def _info(row: Voice) -> VoiceInfo:
    return VoiceInfo(row.name, row.kind, row.reference_text, row.audio_key is not None, row.created_at)


class VoiceService:
    def __init__(
        self,
        engine: TTSEngine,
        sessions: sessionmaker[Session],
        store: ObjectStore,
        *,
        role_dir: Path | None = None,
        fix_voice: bool = False,
        seed: int | None = None,
    ) -> None:
        self.engine = engine
        self._sessions = sessions
        self._store = store
        self._role_dir = role_dir
        self._fix_voice = fix_voice
        self._seed = seed
        self._lock = asyncio.Lock()  # one create/delete at a time: name checks and writes stay consistent

    @classmethod
    def from_settings(cls, settings: Settings, engine: TTSEngine) -> VoiceService:
        """Check (or, with ``auto_migrate``, migrate) the schema; connect database and object store."""
        prepare_schema(settings.resolved_database_url, migrate=settings.auto_migrate)
        sessions = session_factory(engine_from_settings(settings))
        role_dir = Path(settings.role_dir or engine.default_role_dir)
        return cls(engine, sessions, store_from_settings(settings), role_dir=role_dir, fix_voice=settings.fix_voice, seed=settings.seed)

    # ------------------------------------------------------------------ start-up
    async def load_stored(self) -> int:
        """Load every stored voice into the (not yet started) engine; returns how many loaded."""
        rows = await asyncio.to_thread(self._rows)
        loaded = 0
        for row in rows:
            try:
                self.engine.load_voice(row.name, row.state)
                loaded += 1
            except (InvalidRequestError, UnsupportedFeatureError) as exc:
                logger.warning("stored voice %r does not fit the %s model (%s); skipped", row.name, self.engine.model_type, exc.message)
        return loaded

    async def sync(self) -> None:
        """After ``engine.start()``: persist --fix_voice voices, then apply --role_dir."""
        stored = {row.name for row in await asyncio.to_thread(self._rows)}
        if self._fix_voice and self.engine.capabilities.create:
            for gender in GENDERS:
                if gender not in stored:
                    state = await self.engine.freeze_voice(gender, VoiceParams(gender=gender), seed=self._seed)
                    await asyncio.to_thread(self._save, gender, "frozen", state, None, None)
        if self._role_dir is not None and self._role_dir.is_dir():
            await self._scan_role_dir(self._role_dir)

    async def _scan_role_dir(self, root: Path) -> None:
        if not self.engine.capabilities.clone:
            logger.warning("--role_dir %s ignored: the %s model cannot clone voices", root, self.engine.model_type)
            return
        for folder in await asyncio.to_thread(lambda: sorted(p for p in root.iterdir() if p.is_dir())):
            found = await asyncio.to_thread(self._read_role_folder, folder)
            if found is None:
                logger.warning("role folder %s has no audio file; skipped", folder)
                continue
            audio, reference_text, latent = found
            try:
                _valid_name(folder.name)
                if await asyncio.to_thread(self._same_reference, folder.name, audio, reference_text):
                    continue  # loaded from its stored state already: no re-encoding
                state = await self.engine.add_voice(folder.name, audio, reference_text, **_latent_kwargs(latent))
                await asyncio.to_thread(self._save, folder.name, "role", state, audio, reference_text)
                logger.info("encoded role %r from %s", folder.name, folder)
            except InvalidRequestError as exc:
                logger.warning("role folder %s skipped: %s", folder, exc.message)

    def _read_role_folder(self, folder: Path) -> tuple[bytes, str | None, bytes | None] | None:
        """A role folder's (audio, transcript, latent), read in a thread; ``None`` without audio."""
        audio_files = sorted(f for f in folder.iterdir() if f.suffix.lower() in AUDIO_SUFFIXES)
        if not audio_files:
            return None
        text_file = folder / REFERENCE_TEXT_FILE
        reference_text = (text_file.read_text(encoding="utf-8").strip() or None) if text_file.exists() else None
        latent_file = audio_files[0].with_suffix(LATENT_SUFFIX)
        latent = latent_file.read_bytes() if self.engine.capabilities.voice_latent and latent_file.is_file() else None
        return audio_files[0].read_bytes(), reference_text, latent

    # ------------------------------------------------------------------ API operations
    async def list(self) -> list[VoiceInfo]:
        return [_info(r) for r in await asyncio.to_thread(self._rows)]

    async def get(self, name: str) -> VoiceInfo:
        return _info(await asyncio.to_thread(self._row, name))

    async def reference_audio(self, name: str) -> bytes:
        row = await asyncio.to_thread(self._row, name)
        if row.audio_key is None:
            raise NotFoundError(f"voice '{name}' has no reference audio (it is a {row.kind} voice)", param="voice")
        return await asyncio.to_thread(self._store.get, row.audio_key)

    async def create(self, name: str, reference_audio: bytes, reference_text: str | None = None, *, latent: bytes | None = None) -> VoiceInfo:
        """Clone a voice from reference audio (and, for MegaTTS3, its latent) and store it
        (409-free: an existing name is a 422)."""
        if latent is not None and not self.engine.capabilities.voice_latent:
            raise UnsupportedFeatureError(f"latent_file: the {self.engine.model_type} model takes no reference latent", param="latent_file")
        async with self._lock:
            await self._check_new_name(name)
            state = await self.engine.add_voice(name, reference_audio, reference_text, **_latent_kwargs(latent))
            try:
                return await asyncio.to_thread(self._save, name, "clone", state, reference_audio, reference_text)
            except BaseException:
                self.engine.remove_voice(name)
                raise

    async def freeze(self, name: str, voice: VoiceParams, seed: int | None = None) -> VoiceInfo:
        """Fix a created voice (gender/pitch/speed) under ``name`` and store it."""
        if not self.engine.capabilities.create:
            raise UnsupportedFeatureError(f"gender: the {self.engine.model_type} model cannot create voices", param="gender")
        async with self._lock:
            await self._check_new_name(name)
            state = await self.engine.freeze_voice(name, voice, seed=self._seed if seed is None else seed)
            return await asyncio.to_thread(self._save, name, "frozen", state, None, None)

    async def delete(self, name: str) -> None:
        async with self._lock:
            row = await asyncio.to_thread(self._row, name)
            try:
                self.engine.remove_voice(name)
            except NotFoundError:
                pass  # stored but not loadable by this model: deleting the record is still right
            await asyncio.to_thread(self._delete, row.name, row.audio_key)

    # ------------------------------------------------------------------ storage helpers (blocking)
    async def _check_new_name(self, name: str) -> None:
        _valid_name(name)
        if name in self.engine.list_voices() or await asyncio.to_thread(self._exists, name):
            raise InvalidRequestError(f"name: a voice named '{name}' already exists", param="name")

    def _rows(self) -> builtins.list[Voice]:  # builtins: this class has a list() method
        with self._sessions() as session:
            return list(session.scalars(select(Voice).order_by(Voice.name)))

    def _exists(self, name: str) -> bool:
        with self._sessions() as session:
            return session.get(Voice, name) is not None

    def _row(self, name: str) -> Voice:
        with self._sessions() as session:
            row = session.get(Voice, name)
        if row is None:
            raise NotFoundError(f"no stored voice named '{name}'", param="voice")
        return row

    def _same_reference(self, name: str, audio: bytes, reference_text: str | None) -> bool:
        with self._sessions() as session:
            row = session.get(Voice, name)
        if row is None or row.audio_key is None or row.reference_text != reference_text:
            return False
        try:
            return self._store.get(row.audio_key) == audio
        except NotFoundError:
            return False

    def _save(self, name: str, kind: str, state: dict[str, Any], audio: bytes | None, reference_text: str | None) -> VoiceInfo:
        key = voice_key(name) if audio is not None else None
        if audio is not None and key is not None:
            self._store.put(key, audio)
        with self._sessions() as session, session.begin():
            row = session.get(Voice, name) or Voice(name=name)
            row.kind, row.state, row.audio_key, row.reference_text = kind, state, key, reference_text
            session.add(row)
        return _info(self._row(name))

    def _delete(self, name: str, audio_key: str | None) -> None:
        with self._sessions() as session, session.begin():
            row = session.get(Voice, name)
            if row is not None:
                session.delete(row)
        if audio_key is not None:
            self._store.delete(audio_key)


__all__ = ["VoiceInfo", "VoiceService"]
