"""The README is the door to the documentation site: short, and every link in it leads to a file that
exists (the site's own links are checked by ``mkdocs build --strict`` in ``make test``)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_the_readme_stays_under_150_lines():
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) < 150


def test_every_relative_link_in_the_readme_names_an_existing_file():
    targets = [t for t in LINK.findall((ROOT / "README.md").read_text(encoding="utf-8")) if "://" not in t]
    assert targets, "the README links to the documentation pages"
    missing = [t for t in targets if not (ROOT / t).is_file()]
    assert missing == []


def test_the_readme_links_every_page_of_the_site_but_the_reference_details():
    """A newcomer reaches each page from the README: every top-level page in mkdocs.yml's navigation."""
    config = yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=yaml.BaseLoader)
    pages = [next(iter(item.values())) for item in config["nav"]]
    linked = set(LINK.findall((ROOT / "README.md").read_text(encoding="utf-8")))
    snippet = re.compile(r'^--8<-- "([^"]+)"\s*$')
    expected = set()
    for page in pages:
        if isinstance(page, list):  # a section: its first page is its index
            page = page[0]
        if page == "index.md":
            continue
        text = (ROOT / "docs" / page).read_text(encoding="utf-8").strip()
        included = snippet.match(text)
        expected.add(included.group(1) if included else f"docs/{page}")  # a page that is another file
    assert expected - linked == set()
