"""The demo page's de-identify mode in headless Chromium: original and de-identified text side by side,
replacements highlighted by type with their operator. Skips when Chromium is not installed."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from serve_helpers import analyze, marks, open_demo

pytestmark = pytest.mark.browser

MODE = "input[name='mode'][value='{}']"
TEXT = "Zoë Ødegård 😀 bor i Oslo, og José Müller i Bergen."

# The pane's text as shown, without the type/operator labels inside the marks.
SHOWN_TEXT = "box => Array.from(box.childNodes).map(n => n.nodeType === 3 ? n.textContent : n.firstChild.textContent).join('')"  # noqa: E501


@pytest.fixture(scope="module")
def page(chromium, deid_server: str) -> Iterator:
    """The demo page of the server whose config masks PER, hashes LOC and replaces the rest."""
    yield open_demo(chromium, deid_server)


def replacements(page) -> list[tuple[str, str, str]]:
    found = page.eval_on_selector_all(
        "#deid-output mark.replaced",
        "ms => ms.map(m => [m.firstChild.textContent, m.dataset.type, m.dataset.operator])",
    )
    return [tuple(m) for m in found]


def deidentify(page, text: str) -> None:
    page.check(MODE.format("deidentify"))
    analyze(page, text)


def test_when_server_has_deid_then_mode_is_enabled_and_switches_the_view(page):
    assert page.is_enabled(MODE.format("deidentify")) and page.is_enabled(MODE.format("entities"))
    page.check(MODE.format("deidentify"))
    assert page.inner_text("#run") == "De-identify"
    assert page.is_visible("#deid-view") and page.is_hidden("#highlighted")
    page.check(MODE.format("entities"))
    assert page.inner_text("#run") == "Analyze"
    assert page.is_hidden("#deid-view") and page.is_visible("#highlighted")


def test_when_text_is_deidentified_then_original_and_output_are_side_by_side(page, tmp_path):
    deidentify(page, TEXT)
    answer = json.loads(page.inner_text("#json"))
    # Left: the text sent, with the spans found (code-point offsets: the emoji must not shift them).
    assert [m[:2] for m in marks(page, "#deid-original mark.entity")] == [
        ("Zoë Ødegård", "PER"),
        ("Oslo", "LOC"),
        ("José Müller", "PER"),
        ("Bergen", "LOC"),
    ]
    assert page.eval_on_selector("#deid-original", SHOWN_TEXT) == TEXT
    # Right: the answer's text, each replacement marked with its type and operator.
    shown = page.eval_on_selector("#deid-output", SHOWN_TEXT)
    assert shown == answer["text"]
    for name in ("Zoë", "Oslo", "José", "Bergen"):
        assert name not in shown
    hashed = [item["replacement"] for item in answer["items"] if item["type"] == "LOC"]
    assert replacements(page) == [
        ("*" * len("Zoë Ødegård"), "PER", "mask"),
        (hashed[0], "LOC", "hash"),
        ("*" * len("José Müller"), "PER", "mask"),
        (hashed[1], "LOC", "hash"),
    ]
    label = page.inner_text("#deid-output mark.replaced >> nth=1 >> .entity-label")
    assert label == "LOC · hash"
    assert page.inner_text("#deid-operators") == "Operators: PER → mask · LOC → hash"
    assert page.inner_text("#count") == "(4 replaced)"
    left = page.locator("#deid-original").bounding_box()
    right = page.locator("#deid-output").bounding_box()
    assert left["x"] + left["width"] <= right["x"] and abs(left["y"] - right["y"]) < 5
    page.screenshot(path=str(tmp_path / "demo-deid.png"), full_page=True)
    assert page.console_errors == []


def test_when_deidentified_text_has_markup_then_it_is_shown_not_run(page):
    deidentify(page, 'Oslo <img src=x onerror="window.pwned=1"> <b>bold</b>')
    assert page.locator("#deid-view img").count() == 0 and page.locator("#deid-view b").count() == 0
    assert '<img src=x onerror="window.pwned=1">' in page.inner_text("#deid-output")
    assert page.evaluate("window.pwned") is None


def test_when_deidentify_input_is_too_long_then_the_error_is_shown(page):
    deidentify(page, "x" * 1001)  # over the server's 1000-character limit
    status = page.inner_text("#status")
    assert "Error 422" in status and "the limit is 1000" in status


def test_when_server_has_no_deid_then_mode_is_disabled(chromium, no_deid_server):
    other = open_demo(chromium, no_deid_server)
    assert other.is_disabled(MODE.format("deidentify"))
    assert other.is_enabled(MODE.format("entities"))
    assert (
        other.get_attribute("#modes label:has(input[value='deidentify'])", "title")
        == "Not available on this server"
    )
    other.close()
