"""The demo page of a service with API keys, in headless Chromium: the page opens (protect_demo is off
by default), asks for a key, refuses a wrong one and works with the right one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from serve_helpers import LIMITS, FakePredictor, analyze, marks, running_server, wait_ready

from loraner.serve import ServeSettings, create_app

pytestmark = pytest.mark.browser

KEY = "demo-key-0123456789abcdef"


@pytest.fixture(scope="module")
def keyed_url() -> Iterator[str]:
    settings = ServeSettings(**LIMITS, api_keys=KEY)
    with running_server(create_app(settings, lambda s: FakePredictor())) as url:
        wait_ready(url)
        yield url


def test_the_demo_page_asks_for_a_key_and_works_with_it(chromium, keyed_url):
    from playwright.sync_api import expect

    page = chromium.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{keyed_url}/demo")
    expect(page.locator("#model-info")).to_have_text("This service needs an API key.")
    expect(page.locator("#key-form")).to_be_visible()
    expect(page.locator("#key-status")).to_contain_text("Authorization: Bearer")

    page.fill("#api-key", "wrong-key-0123456789abcdef")
    page.click("#use-key")
    expect(page.locator("#key-status")).to_have_text("the API key is not valid")

    page.fill("#api-key", KEY)
    page.click("#use-key")
    expect(page.locator("#model-info")).to_contain_text("fake-ner")
    expect(page.locator("#key-status")).to_have_text("Key accepted.")
    analyze(page, "Kari Nordmann bor i Oslo.")
    assert marks(page) == [("Kari Nordmann", "PER", "0.90"), ("Oslo", "LOC", "0.90")]

    # The key stays with the tab (sessionStorage), not in the address: a reload needs no new entry.
    assert KEY not in page.url
    page.reload()
    expect(page.locator("#model-info")).to_contain_text("fake-ner")
    analyze(page, "Bergen")
    assert marks(page) == [("Bergen", "LOC", "0.90")]
    assert errors == []
    page.close()


def test_another_browser_session_does_not_inherit_the_key(chromium, keyed_url):
    from playwright.sync_api import expect

    context = chromium.new_context()
    page = context.new_page()
    page.goto(f"{keyed_url}/demo")
    expect(page.locator("#model-info")).to_have_text("This service needs an API key.")
    page.fill("#text", "Oslo")
    page.click("#run")
    expect(page.locator("#status")).to_contain_text("Error 401")
    context.close()
