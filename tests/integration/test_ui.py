"""The playground page in a real browser (Debian's Chromium driven by Playwright)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


def expected_mark(previous: list[str], item: str, position: int) -> tuple[str, str]:
    if item not in previous:
        return "move new", "new"
    moved = previous.index(item) - position
    if moved > 0:
        return "move up", f"\u25b2{moved}"
    if moved < 0:
        return "move down", f"\u25bc{-moved}"
    return "move same", "="


@contextlib.contextmanager
def playground(service) -> Iterator[Any]:
    """The service's /ui page in a headless Chromium."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium(), headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{service.settings.url}/ui")
            yield page
        finally:
            browser.close()


def test_playground_likes_refresh_the_ranking_and_fill_the_history(service) -> None:
    from playwright.sync_api import expect

    with playground(service) as page:
        page.fill("#user", "ui-tester")
        page.click("#recommend")
        # the list the page ranked on load may land first: wait for the one asked for
        expect(page.locator("ol#items")).to_have_attribute("aria-busy", "false")
        items = page.locator("ol#items li")
        expect(items).to_have_count(8)
        assert page.locator("ol#items .move").count() == 0  # a fresh list has nothing to compare
        for _ in range(4):
            event_before = page.evaluate("shown[0].event_id")
            ids_before = page.evaluate("shown.map((slot) => slot.item.id)")
            items.first.get_by_role("button", name="Like").click()
            expect(page.locator("#learning")).not_to_have_class("on", timeout=15_000)
            # the list was ranked again: new decisions, and each item marked against the
            # previous list. The model may well keep the same order after one like, so the
            # marks are checked against both lists rather than expected to show movement.
            assert page.evaluate("shown[0].event_id") != event_before
            expect(items).to_have_count(8)
            ids_after = page.evaluate("shown.map((slot) => slot.item.id)")
            marks = [(m.get_attribute("class"), m.inner_text())
                     for m in page.locator("ol#items li .move").all()]
            assert marks == [expected_mark(ids_before, item, i) for i, item in enumerate(ids_after)]
        history = page.locator("#history li")
        expect(history).to_have_count(4)
        texts = history.all_inner_texts()
        assert all(" like " in text and text.endswith("reward 1") for text in texts), texts
        assert page.locator("#error").inner_text() == ""
        page.wait_for_timeout(2500)  # let the dashboard draw a few points
        assert int(page.locator("#v-learned").inner_text()) > 0
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "ui.png"), full_page=True)
    assert Path(ARTIFACTS / "ui.png").stat().st_size > 20_000


def test_playground_learns_only_from_the_lists_it_shows(service) -> None:
    """Decisions are ranked deferred and activated when their list is shown: a list overtaken
    by a newer one is never shown, so its decisions must not be learned as "not clicked"."""
    from playwright.sync_api import expect

    with playground(service) as page:
        ranked: list[Any] = []
        activated: list[str] = []
        page.on("response", lambda r: ranked.append(r) if r.url.endswith("/v1/rank") else None)
        page.on("request", lambda r: activated.append(json.loads(r.post_data)["event_id"])
                if r.url.endswith("/v1/activate") else None)
        expect(page.locator("ol#items li")).to_have_count(8)  # the list ranked on load
        expect(page.locator("ol#items")).to_have_attribute("aria-busy", "false")
        start = len(ranked)
        page.evaluate("recommend(); recommend()")  # the first is overtaken by the second
        deadline = time.monotonic() + 15
        while len(ranked) < start + 16 and time.monotonic() < deadline:
            page.wait_for_timeout(50)
        page.wait_for_timeout(300)  # room for a (wrong) activation of the overtaken list
        new = [response.json()["event_id"] for response in ranked[start:]]
        shown = page.evaluate("shown.map((slot) => slot.event_id)")
        assert len(new) == 16 and set(shown) < set(new)
        assert set(shown) <= set(activated)
        assert not (set(new) - set(shown)) & set(activated), "an unshown list was activated"
        assert page.locator("#error").inner_text() == ""
