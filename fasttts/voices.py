"""Durable voices (roles): a database row, the reference audio in object storage, and the
engine's encoded state, so a restart reloads every voice without re-encoding anything.

The database is the truth, shared by every API replica: :meth:`VoiceService.refresh` makes the
engine's stored voices those of the database (one small query of names and change times; rows
that are new or changed are loaded, deleted ones dropped). The API calls it before every request
that uses the engine (``api/deps.py``), so a voice created, changed or deleted on one replica is
what the next request on any other replica sees. A voice name is unique by the table's primary
key: of two replicas creating the same name, one gets :class:`ConflictError` (HTTP 409).

Sources of voices, in the order :func:`fasttts.services.open_services` applies them:

1. :meth:`VoiceService.refresh` loads the stored voices (rows) into the engine *before* it
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
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from fasttts.config import Settings
from fasttts.db import Voice, close_sessions, engine_from_settings, session_factory
from fasttts.engine.base import TTSEngine
from fasttts.errors import ConflictError, InvalidRequestError, NotFoundError, UnsupportedFeatureError
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
        self._seen: dict[str, dt.datetime] = {}
        """name → ``updated_at`` of each stored voice as loaded into the engine."""

    @classmethod
    def from_settings(cls, settings: Settings, engine: TTSEngine) -> VoiceService:
        """Connect database and object store (the schema is prepared by :mod:`fasttts.services`)."""
        sessions = session_factory(engine_from_settings(settings))
        role_dir = Path(settings.role_dir or engine.default_role_dir)
        return cls(engine, sessions, store_from_settings(settings), role_dir=role_dir, fix_voice=settings.fix_voice, seed=settings.seed)

    def close(self) -> None:
        """Close the database and object-store connections (at shutdown; the engine is its owner's
        to shut down)."""
        close_sessions(self._sessions)
        self._store.close()

    # ------------------------------------------------------------------ the engine follows the database
    async def refresh(self, *, tolerate_outage: bool = False) -> None:
        """Load stored voices that are new or changed since the last call, drop deleted ones.
        With ``tolerate_outage`` a database error is logged and the voices already loaded stay
        (synthesis with them goes on while the database is down)."""
        try:
            listing = await asyncio.to_thread(self._listing)
            changed = [name for name, at in listing.items() if self._seen.get(name) != at]
            rows = await asyncio.to_thread(self._rows, changed) if changed else []
        except SQLAlchemyError as exc:
            if not tolerate_outage:
                raise
            logger.warning("voices not refreshed (database unavailable: %s)", type(exc).__name__)
            return
        for row in rows:
            self._load(row)
        for name in set(self._seen) - set(listing):
            self._forget(name)

    def _load(self, row: Voice) -> None:
        try:
            self.engine.load_voice(row.name, row.state)
        except (InvalidRequestError, UnsupportedFeatureError) as exc:
            logger.warning("stored voice %r does not fit the %s model (%s); skipped", row.name, self.engine.model_type, exc.message)
        self._seen[row.name] = row.updated_at

    def _forget(self, name: str) -> None:
        self._seen.pop(name, None)
        try:
            self.engine.remove_voice(name)
        except NotFoundError:
            pass  # stored but never loadable by this model

    # ------------------------------------------------------------------ start-up
    async def sync(self) -> None:
        """After ``engine.start()``: persist --fix_voice voices, then apply --role_dir."""
        stored = {row.name for row in await asyncio.to_thread(self._rows)}
        if self._fix_voice and self.engine.capabilities.create:
            for gender in GENDERS:
                if gender not in stored:
                    state = await self.engine.pin_voice(VoiceParams(gender=gender), seed=self._seed)
                    assert state is not None, "a created voice always has a state"
                    await self._store_voice(gender, "frozen", state, None, None, replace=True)
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
                await self._store_voice(folder.name, "role", state, audio, reference_text, replace=True)
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
        """Clone a voice from reference audio (and, for MegaTTS3, its latent) and store it (a taken
        name is a 409)."""
        if latent is not None and not self.engine.capabilities.voice_latent:
            raise UnsupportedFeatureError(f"latent_file: the {self.engine.model_type} model takes no reference latent", param="latent_file")
        await self._check_new_name(name)
        state = await self.engine.add_voice(name, reference_audio, reference_text, **_latent_kwargs(latent))
        try:
            return await self._store_voice(name, "clone", state, reference_audio, reference_text)
        except BaseException:
            self._forget(name)  # the engine keeps no voice the database refused ...
            await self.refresh(tolerate_outage=True)  # ... but the one another request or replica stored under the name
            raise

    async def freeze(self, name: str, voice: VoiceParams, seed: int | None = None) -> VoiceInfo:
        """Fix a created voice (gender/pitch/speed) under ``name`` and store it."""
        if not self.engine.capabilities.create:
            raise UnsupportedFeatureError(f"gender: the {self.engine.model_type} model cannot create voices", param="gender")
        await self._check_new_name(name)
        state = await self.engine.pin_voice(voice, seed=self._seed if seed is None else seed)
        assert state is not None, "a created voice always has a state"
        return await self._store_voice(name, "frozen", state, None, None)

    async def delete(self, name: str) -> None:
        row = await asyncio.to_thread(self._row, name)
        await asyncio.to_thread(self._delete, row.name, row.audio_key)
        self._forget(name)

    # ------------------------------------------------------------------ storage helpers
    async def _check_new_name(self, name: str) -> None:
        """Refuse built-in names early (before encoding); stored names are refused by the
        database itself when the row is written, whichever replica wrote it first."""
        _valid_name(name)
        await self.refresh(tolerate_outage=True)
        if name in self.engine.list_voices() and name not in self._seen:
            raise ConflictError(f"name: '{name}' is a built-in voice", param="name")

    async def _store_voice(
        self, name: str, kind: str, state: dict[str, Any], audio: bytes | None, reference_text: str | None, *, replace: bool = False
    ) -> VoiceInfo:
        """Write the voice (row, then its audio under a fresh key) and load it into the engine.
        Without ``replace`` an existing name is a :class:`ConflictError`."""
        row = await asyncio.to_thread(self._write, name, kind, state, audio, reference_text, replace)
        self._load(row)
        return _info(row)

    def _listing(self) -> dict[str, dt.datetime]:
        with self._sessions() as session:
            return dict(session.execute(select(Voice.name, Voice.updated_at)).all())

    def _rows(self, names: builtins.list[str] | None = None) -> builtins.list[Voice]:  # builtins: this class has a list() method
        with self._sessions() as session:
            query = select(Voice).order_by(Voice.name)
            if names is not None:
                query = query.where(Voice.name.in_(names))
            return list(session.scalars(query))

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

    def _write(self, name: str, kind: str, state: dict[str, Any], audio: bytes | None, reference_text: str | None, replace: bool) -> Voice:
        key = voice_key(name, uuid.uuid4().hex) if audio is not None else None
        old_key: str | None = None
        try:
            with self._sessions() as session, session.begin():
                row = session.get(Voice, name) if replace else None
                if row is None:
                    row = Voice(name=name)
                    session.add(row)
                old_key = row.audio_key
                row.kind, row.state, row.audio_key, row.reference_text = kind, state, key, reference_text
        except IntegrityError:
            if replace:  # another replica inserted it first: overwrite that row instead
                return self._write(name, kind, state, audio, reference_text, replace)
            raise ConflictError(f"name: a voice named '{name}' already exists", param="name") from None
        if audio is not None and key is not None:
            try:
                self._store.put(key, audio)
            except BaseException:
                self._delete(name, None)
                raise
        if old_key is not None:
            self._store.delete(old_key)
        return self._row(name)

    def _delete(self, name: str, audio_key: str | None) -> None:
        with self._sessions() as session, session.begin():
            row = session.get(Voice, name)
            if row is not None:
                session.delete(row)
        if audio_key is not None:
            self._store.delete(audio_key)


__all__ = ["VoiceInfo", "VoiceService"]
