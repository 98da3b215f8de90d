"""The app in a real headless Chromium (Playwright) on the fake pipeline: a newcomer's first minutes.

Needs Debian's ``chromium`` (``apt-get install -y chromium fonts-noto-color-emoji``) and the ``playwright``
Python package; the browser Playwright would download is never used (no ``playwright install``).
Screenshots go to the test's tmp folder; ``make screenshots`` sets ``LLMREC_SCREENSHOTS=docs/screenshots`` to
refresh the documentation's copies (a plain test run never modifies tracked files).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ui_server import RunningApp, running_app

pytestmark = pytest.mark.network

CHROMIUM = Path("/usr/bin/chromium")
INSTALL = ("install it with `apt-get install -y chromium fonts-noto-color-emoji` and `pip install playwright` "
           "(`make install` does both); never `playwright install`")  # fmt: skip
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
SCREENSHOTS = os.environ.get("LLMREC_SCREENSHOTS")  # a folder to copy the screenshots into (make screenshots)
TURN_TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    with running_app(tmp_path_factory.mktemp("ui-browser") / "profiles.sqlite", stream_delay=0.004) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(f"the browser tests need Playwright for Python: {INSTALL}")
    if not CHROMIUM.is_file():
        pytest.fail(f"the browser tests need Chromium at {CHROMIUM}: {INSTALL}")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


def bot_messages(page: Any) -> Any:
    return page.locator("#chat [data-testid='bot']")


def finish_turn(page: Any, before: int, chips: bool = True) -> str:
    """Wait for a new bot message to be complete (and its quick replies drawn); return its text."""
    page.wait_for_function("n => document.querySelectorAll(\"#chat [data-testid='bot']\").length > n", arg=before,
                           timeout=TURN_TIMEOUT_MS)  # fmt: skip
    page.wait_for_function(
        """() => { const all = document.querySelectorAll("#chat [data-testid='bot']");
                   const t = all[all.length - 1].innerText.trim();
                   return t.length > 1 && !t.endsWith('▍') && !t.startsWith('One moment'); }""",
        timeout=TURN_TIMEOUT_MS,
    )
    if chips:
        page.locator("button.chip").first.wait_for(timeout=TURN_TIMEOUT_MS)
    return bot_messages(page).last.inner_text()


def click_and_wait(page: Any, locator: Any, chips: bool = True) -> str:
    before = bot_messages(page).count()
    locator.click()
    return finish_turn(page, before, chips)


def chip(page: Any, label: str) -> Any:
    return page.locator("button.chip", has_text=label).first


def card_titles(page: Any) -> list[str]:
    return page.locator(".rec-card .rec-title").all_inner_texts()


def shoot(page: Any, name: str, tmp_path: Path) -> None:
    page.screenshot(path=str(tmp_path / name))
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tmp_path / name, Path(SCREENSHOTS) / name)


def test_newcomer_onboarding_recommendations_why_and_like(server: RunningApp, browser: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1280, "height": 860}, device_scale_factor=1)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None)
    page.goto(server.url)

    # Onboarding: the greeting offers genres; a genre chip leads to questions about well-known titles.
    expect(bot_messages(page).first).to_contain_text("I recommend movies", timeout=TURN_TIMEOUT_MS)
    expect(chip(page, "Animation")).to_be_visible(timeout=TURN_TIMEOUT_MS)
    question = click_and_wait(page, chip(page, "Animation"))
    assert "Have you seen" in question
    expect(page.locator(".empty")).to_be_visible()
    shoot(page, "onboarding.png", tmp_path)
    for _ in range(5):
        if page.locator(".rec-card").count():
            break
        click_and_wait(page, chip(page, "Loved it"))
    expect(page.locator(".rec-card").first).to_be_visible(timeout=TURN_TIMEOUT_MS)
    before = card_titles(page)
    assert before and all(before)
    expect(page.locator(".rec-card").first.locator(".rec-why")).not_to_be_empty()
    shoot(page, "recommendations.png", tmp_path)

    # "Why?" on the first card: the recorded reason appears in the chat.
    first = page.locator(".rec-card").first
    reason = click_and_wait(page, first.locator("button.act-why"))
    assert reason.startswith("I recommended " + before[0])
    assert "What I recorded" in reason
    shoot(page, "why.png", tmp_path)

    # "Like" on the first card: the next list changes and leaves the liked title out.
    click_and_wait(page, page.locator(".rec-card").first.locator("button.act-like"))
    deadline = time.monotonic() + TURN_TIMEOUT_MS / 1000
    while card_titles(page) == before and time.monotonic() < deadline:
        time.sleep(0.1)
    after = card_titles(page)
    assert after and after != before and before[0] not in after

    # The profile panel shows what the system now believes.
    page.get_by_role("tab", name="Your profile").click()
    expect(page.locator("#liked")).to_contain_text(before[0].split(" (")[0])

    # A reload keeps the user (the session cookie) and brings back the conversation and the picks.
    page.reload()
    expect(page.locator("#chat [data-testid='user']", has_text="Loved it").first).to_be_visible(
        timeout=TURN_TIMEOUT_MS)  # fmt: skip
    expect(page.locator(".rec-card").first).to_be_visible(timeout=TURN_TIMEOUT_MS)
    assert card_titles(page) == after

    # "Forget me" asks first, then deletes everything.
    page.get_by_role("tab", name="Your profile").click()
    page.locator("#forget").click()
    expect(page.locator("#confirm-forget")).to_be_visible()
    page.locator("#confirm-forget-yes").click()
    expect(bot_messages(page).last).to_contain_text("I deleted your profile", timeout=TURN_TIMEOUT_MS)
    expect(page.locator("#liked input[type=checkbox]")).to_have_count(0)
    page.get_by_role("tab", name="Your picks").click()
    expect(page.locator(".empty")).to_be_visible(timeout=TURN_TIMEOUT_MS)
    context.close()
    assert not errors, errors
