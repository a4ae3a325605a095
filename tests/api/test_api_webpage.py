"""The web page in real headless Chromium (Debian's chromium, driven by Playwright): with an API
key set on the server, enter it on the page, synthesise (streamed and as a file), and check the
<audio> element received playable audio."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import live_server

from fasttts.config import Settings

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--autoplay-policy=no-user-gesture-required"]

pytestmark = [pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed"), pytest.mark.slow]

AUDIO_STATE = """() => { const a = document.getElementById('player');
  return {src: a.src, duration: a.duration, readyState: a.readyState, error: a.error && a.error.code}; }"""


def _audio_ready(page) -> dict:
    page.wait_for_function("() => { const a = document.getElementById('player'); return a.src && a.readyState >= 1 && isFinite(a.duration) && a.duration > 0; }", timeout=60_000)
    return page.evaluate(AUDIO_STATE)


def test_page_speaks_with_api_key(settings: Settings, piper_engine):
    sync_api = pytest.importorskip("playwright.sync_api")
    with live_server(settings.model_copy(update={"api_key": "page-key"}), piper_engine) as server, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(server.url)
            page.wait_for_function("() => document.getElementById('status').textContent.includes('API key')", timeout=20_000)
            page.fill("#api-key", "page-key")
            page.dispatch_event("#api-key", "change")
            page.wait_for_function("() => document.querySelectorAll('#speak-voice option').length > 0", timeout=20_000)
            assert page.eval_on_selector("#speak-voice", "s => s.value") == "joe"

            page.fill("#speak-text", "Hello from the browser.")
            page.click("#generate-btn")  # streaming (the default): PCM played through Web Audio, then a WAV in the player
            streamed = _audio_ready(page)
            assert streamed["error"] is None and 0.5 < streamed["duration"] < 10
            assert "audio" in page.text_content("#status")

            page.uncheck("#opt-stream")
            page.select_option("#opt-format", "mp3")
            page.evaluate("() => { document.getElementById('player').removeAttribute('src'); document.getElementById('player').load(); }")
            page.click("#generate-btn")
            whole = _audio_ready(page)
            assert whole["error"] is None and whole["src"] != streamed["src"] and 0.5 < whole["duration"] < 10

            page.select_option("#opt-pitch", "high")  # Piper has no pitch: the page shows the server's message
            page.click("#generate-btn")
            page.wait_for_function("() => document.getElementById('status').className === 'error'", timeout=20_000)
            assert "pitch" in page.text_content("#status")
            assert not errors, errors
        finally:
            browser.close()
