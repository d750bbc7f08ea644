"""The /demo page in a real headless Chromium (Debian's, driven by Playwright): type, click, highlights.

Install the browser with ``make browser`` (apt-get install chromium). Skips when it is not installed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from serve_helpers import analyze, marks, open_demo

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def page(chromium, fake_server: str) -> Iterator:
    yield open_demo(chromium, fake_server)


def test_typing_and_clicking_highlights_entities_with_legend_and_json(page, tmp_path):
    text = "Zoë Ødegård 😀 met José Müller in Oslo."
    analyze(page, text)
    # The emoji is 1 code point but 2 UTF-16 units: later highlights must not shift.
    assert marks(page) == [
        ("Zoë Ødegård", "PER", "0.90"),
        ("José Müller", "PER", "0.90"),
        ("Oslo", "LOC", "0.90"),
    ]
    assert page.inner_text("#highlighted").startswith("Zoë Ødegård")
    assert page.get_attribute("#highlighted mark.entity >> nth=2", "title").startswith("LOC · score 0.90")
    legend = page.eval_on_selector_all("#legend .legend-item", "xs => xs.map(x => x.dataset.type)")
    assert {"PER", "LOC"} <= set(legend)
    shown = json.loads(page.inner_text("#json"))
    assert [e["text"] for e in shown["entities"]] == ["Zoë Ødegård", "José Müller", "Oslo"]
    assert page.inner_text("#count") == "(3)"
    page.screenshot(path=str(tmp_path / "demo.png"), full_page=True)
    assert page.console_errors == []


def test_markup_in_text_is_shown_not_run(page):
    analyze(page, 'Oslo <img src=x onerror="window.pwned=1"> <b>bold</b>')
    assert page.locator("#highlighted img").count() == 0
    assert page.locator("#highlighted b").count() == 0
    assert '<img src=x onerror="window.pwned=1">' in page.inner_text("#highlighted")
    assert page.evaluate("window.pwned") is None


def test_example_button_fills_text_and_analyzes(page):
    page.click("button.example[data-example='1']")
    # The page is shared by this module's tests: marks of the previous text may still be shown, so wait
    # for this example's answer, not for any mark.
    page.wait_for_function(
        "() => [...document.querySelectorAll('#highlighted mark.entity')]"
        ".some(m => m.firstChild.textContent === 'Kari Nordmann')"
    )
    assert "Kari Nordmann" in page.input_value("#text")
    found = [m[0] for m in marks(page)]
    assert "Kari Nordmann" in found and "Bergen" in found


def test_errors_are_shown_in_the_status_line(page):
    page.fill("#text", "   ")
    page.click("#run")
    assert "Type some text first" in page.inner_text("#status")
    analyze(page, "x" * 1001)  # over the server's 1000-character limit
    status = page.inner_text("#status")
    assert "Error 422" in status and "the limit is 1000" in status and "request" in status
