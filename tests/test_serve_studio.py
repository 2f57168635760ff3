"""The web studio in a real browser: Debian's Chromium, headless, driven by Playwright (its own node driver;
no browser is downloaded). Absent Chromium skips the test on a workstation and fails it in CI (CI=true)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from kino.serve.app import create_app
from kino.serve.config import ServeConfig
from kino.serve.testing import ThreadServer, free_port, shared_model_dir, shared_pipe

KEY = "sk-kino-studio-key"
CHROMIUM = os.environ.get("KINO_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("KINO_CONFIG_DIR", str(tmp_path_factory.mktemp("cfg")))
    model = shared_model_dir(tmp_path_factory)
    config = ServeConfig(model_dir=model, data_dir=tmp_path_factory.mktemp("studio"), api_keys=(KEY,))
    with ThreadServer(create_app(config, [shared_pipe(model)], "tiny"), free_port()) as s:
        yield s
    mp.undo()


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for this module's tests (each test gets a fresh context: no shared storage)."""
    if not Path(CHROMIUM).is_file():
        if os.environ.get("CI"):
            pytest.fail(f"Chromium is not installed at {CHROMIUM}; .ci/run installs Debian's chromium with apt")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context()  # a fresh profile, as a new browser's
    try:
        yield ctx.new_page()
    finally:
        ctx.close()


def test_prompt_progress_playback_and_badge(server, page, tmp_path):
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server.url + "/")
    page.wait_for_selector("#key-box:not([hidden])")  # the server wants a key: the studio asks for it
    page.fill("#api-key", KEY)
    page.press("#api-key", "Enter")
    page.wait_for_selector("#status:has-text('ready')")
    assert page.locator("#size option").count() >= 1

    page.fill("#prompt", "a red ball bouncing")
    page.select_option("#seconds", "1")
    page.select_option("#aspect", "landscape")
    page.select_option("#size", "112x64")
    page.click("#generate")
    card = page.locator(".card").first
    card.wait_for()
    page.wait_for_selector(".card[data-progress='100'][data-status='completed']", timeout=60_000)
    page.wait_for_function("() => { const v = document.querySelector('.card video');"
                           " return v && !v.hidden && v.readyState >= 2 && v.currentTime > 0; }", timeout=30_000)
    assert page.evaluate("document.querySelector('.card video').videoWidth") == 112
    page.wait_for_selector(".card .badge.ok", timeout=30_000)
    assert "C2PA" in card.locator(".badge").inner_text()
    page.screenshot(path=str(tmp_path / "studio.png"), full_page=True)
    assert (tmp_path / "studio.png").stat().st_size > 1000

    # storyboard editor: add a shot, reorder, remove, submit
    page.click("#tab-board")
    page.click("#add-shot")
    prompts = page.locator("#shots .shot-prompt")
    assert prompts.count() == 3
    for i, text in enumerate(["a blue square falls", "a red circle rolls", "a green star spins"]):
        prompts.nth(i).fill(text)
    page.locator("#shots .shot").nth(1).locator(".up").click()  # the circle goes first
    page.locator("#shots .shot").nth(2).locator(".remove").click()  # the star goes
    assert [prompts.nth(i).input_value() for i in range(prompts.count())] == ["a red circle rolls",
                                                                              "a blue square falls"]
    page.click("#generate-board")
    page.wait_for_selector(".card[data-status='completed'] .mode:has-text('storyboard')", timeout=60_000)
    assert not errors, errors


def test_every_mode_from_the_studio_and_the_docs_page(server, page, tmp_path):
    """Image to video with a seed, loop, edit, extend without a prompt, connect, interpolate, then /docs; no page
    error, no 404 (the favicon), and an error shown in the header goes away."""
    from PIL import Image

    errors: list[str] = []
    missing: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
    page.goto(server.url + "/")
    page.wait_for_selector("#key-box:not([hidden])")
    page.fill("#api-key", KEY)
    page.press("#api-key", "Enter")
    page.wait_for_selector("#status:has-text('ready')")

    for name, color in (("a.png", (200, 30, 30)), ("b.png", (30, 30, 200))):
        Image.new("RGB", (64, 64), color).save(tmp_path / name)
    page.fill("#prompt", "a red square moves right")
    page.select_option("#seconds", "1")
    page.select_option("#aspect", "square")
    page.fill("#seed", "42")
    page.set_input_files("#image", str(tmp_path / "a.png"))
    page.click("#generate")
    first = page.locator(".card .mode:has-text('image-to-video')").locator("xpath=ancestor::article")
    first.locator(".seed:has-text('seed 42')").wait_for()
    page.wait_for_selector(".card[data-status='completed'] .mode:has-text('image-to-video')", timeout=60_000)
    page.set_input_files("#image", [])

    page.fill("#prompt", "")  # loop and extend need no prompt
    first.locator(".loop").click()
    page.wait_for_selector(".card[data-status='completed'] .mode:has-text('loop')", timeout=60_000)
    first.locator(".extend").click()
    page.wait_for_selector(".card[data-status='completed'] .mode:has-text('extend')", timeout=60_000)
    first.locator(".edit").click()  # edit needs one: the header says so, then clears
    page.wait_for_selector("#status:has-text('write a prompt first')")
    page.fill("#prompt", "a blue square")
    first.locator(".edit").click()
    page.wait_for_selector(".card[data-status='completed'] .mode:has-text('edit')", timeout=60_000)
    assert "write a prompt" not in page.inner_text("#status")
    loop = page.locator(".card .mode:has-text('loop')").locator("xpath=ancestor::article")
    first.locator(".connect").click()
    loop.locator(".connect").click()
    page.wait_for_selector(".card[data-status='completed'] .mode:has-text('connect')", timeout=60_000)

    page.click("#tab-interp")
    page.set_input_files("#keyframes", [str(tmp_path / "a.png"), str(tmp_path / "b.png")])
    page.fill("#key-times", "0, 1")
    page.click("#generate-interp")
    page.wait_for_selector(".card[data-status='completed'] .mode:has-text('interpolate')", timeout=60_000)
    assert not page.locator(".card[data-status='failed']").count()

    page.goto(server.url + "/docs")
    page.wait_for_selector("#operations .operation h2:has-text('POST /v1/videos/loops')")
    assert page.locator("#operations .operation").count() >= 13
    assert not errors, errors
    assert not missing, missing
