"""The playground page in a real browser (Debian's Chromium driven by Playwright)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO

ARTIFACTS = REPO / "test-artifacts"


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("CI must have Chromium (.ci/run installs Debian's chromium)")
        pytest.skip("no Chromium on this machine (apt-get install chromium)")
    return path


def test_playground_likes_refresh_the_ranking_and_fill_the_history(service) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium(), headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{service.settings.url}/ui")
        page.fill("#user", "ui-tester")
        page.click("#recommend")
        items = page.locator("ol#items li")
        expect(items).to_have_count(8)
        for _ in range(4):
            event_before = page.evaluate("shown[0].event_id")
            items.first.get_by_role("button", name="Like").click()
            expect(page.locator("#learning")).not_to_have_class("on", timeout=15_000)
            # the list was ranked again: new decisions, and each item marked against the
            # previous list (moved up, down or new)
            assert page.evaluate("shown[0].event_id") != event_before
            expect(items).to_have_count(8)
            assert page.locator("ol#items .move").count() > 0
        history = page.locator("#history li")
        expect(history).to_have_count(4)
        texts = history.all_inner_texts()
        assert all(" like " in text and text.endswith("reward 1") for text in texts), texts
        assert page.locator("#error").inner_text() == ""
        page.wait_for_timeout(2500)  # let the dashboard draw a few points
        assert int(page.locator("#v-learned").inner_text()) > 0
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "ui.png"), full_page=True)
        browser.close()
    assert Path(ARTIFACTS / "ui.png").stat().st_size > 20_000
