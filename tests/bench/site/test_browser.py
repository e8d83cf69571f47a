"""The leaderboard in a real headless browser (Debian's Chromium, driven by playwright): the tables render with a
row per metric, clicking a header sorts (numbers numerically, empty cells last), every link resolves to a file
of the site, every image loads, and a screenshot is taken.

LIPSIM_BENCH_SCREENSHOT=PATH saves the index's screenshot there (docs/images/leaderboard.png is made so);
LIPSIM_BENCH_SITE=DIR runs the same checks on an existing site (e.g. the committed results/leaderboard) instead
of the tiny one built from bundled records.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

INSTALL = "install a browser to run it: `apt-get install chromium` and `pip install playwright` (no browser download)"


def _chromium() -> str:
    found = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None)
    if found is None:
        pytest.skip(f"no Chromium found; {INSTALL}")
    return found


@pytest.fixture(scope="module")
def browser():
    executable = _chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip(f"playwright is not installed; {INSTALL}")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def site(request) -> Path:
    given = os.environ.get("LIPSIM_BENCH_SITE")
    return Path(given).resolve() if given else request.getfixturevalue("tiny_site")


@pytest.fixture
def page(browser):
    page = browser.new_page(viewport={"width": 1280, "height": 860})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    page.close()
    assert not errors, f"script errors: {errors}"


def _order(page, table: str, column: int) -> list[str]:
    return page.eval_on_selector_all(
        f"{table} tbody tr", f"rows => rows.map(r => r.cells[{column}].textContent.trim())"
    )


def _sort_keys(values: list[str]) -> list[float | None]:
    return [float(v.split()[0]) if v else None for v in values]


def test_tables_render_and_headers_sort(page, site: Path) -> None:
    page.goto((site / "index.html").as_uri())
    tables = page.locator("section:not(#reported) table.sortable")
    assert tables.count() >= 1
    first = "#" + tables.first.get_attribute("id")
    metrics = _order(page, first, 0)
    assert metrics and all(metrics), "the first table has no metric rows"
    links = page.eval_on_selector_all(f"{first} tbody td.metric a", "as => as.map(a => a.textContent.trim())")
    assert links == metrics  # a row per metric, each naming (and linking) its metric
    headers = page.eval_on_selector_all(f"{first} thead tr:last-child th", "hs => hs.map(h => h.textContent.trim())")
    column = headers.index("natural")
    button = page.locator(f"{first} thead tr:last-child th").nth(column).locator("button")
    before = _order(page, first, column)
    button.click()
    first_click = _order(page, first, column)
    button.click()
    second_click = _order(page, first, column)
    values = [v for v in _sort_keys(before) if v is not None]
    assert _sort_keys(first_click)[: len(values)] == sorted(values, reverse=True), (before, first_click)
    assert _sort_keys(second_click)[: len(values)] == sorted(values), (before, second_click)
    assert sorted(first_click) == sorted(before)  # rows moved, none lost
    assert page.locator(f"{first} thead tr:last-child th").nth(column).get_attribute("aria-sort") == "ascending"
    # numbers sort as numbers (9 < 10.5 < 100, which text would order 10.5, 100, 9), an empty cell always last
    page.evaluate(
        """() => {
        const t = document.createElement('table');
        t.className = 'sortable'; t.id = 'probe';
        t.innerHTML = '<thead><tr><th data-type="number"><button>x</button></th></tr></thead><tbody>' +
          ['10.5', '', '9', '100'].map(v => `<tr><td data-sort="${v}">${v}</td></tr>`).join('') + '</tbody>';
        document.body.appendChild(t);
        const s = document.createElement('script'); s.src = document.querySelector('script[src$="sort.js"]').src;
        s.onload = () => { window.probeReady = true; }; document.body.appendChild(s);
    }"""
    )
    page.wait_for_function("() => window.probeReady === true")
    page.locator("#probe th button").click()
    assert _order(page, "#probe", 0) == ["100", "10.5", "9", ""]
    page.locator("#probe th button").click()
    assert _order(page, "#probe", 0) == ["9", "10.5", "100", ""]


def _pages(site: Path) -> list[Path]:
    return [site / "index.html", *sorted((site / "metrics").glob("*.html")), *sorted(site.glob("transfer/*.html"))]


def test_every_link_resolves_and_every_image_loads(page, site: Path) -> None:
    external = []
    for html in _pages(site):
        page.goto(html.as_uri())
        for href in page.eval_on_selector_all("a[href]", "as => as.map(a => a.href)"):
            parts = urlsplit(href)
            if parts.scheme in ("http", "https"):
                external.append(href)  # a paper's address: not fetched (the site is offline)
                continue
            assert parts.scheme == "file", f"{html.name}: odd link {href}"
            target = Path(unquote(parts.path))
            assert target.is_file(), f"{html.name}: link to a missing file {href}"
            if parts.fragment and target == html:
                assert page.locator(f"[id='{unquote(parts.fragment)}']").count() == 1, (
                    f"{html.name}: no #{parts.fragment}"
                )
        images = page.eval_on_selector_all(
            "img", "is => is.map(i => [i.getAttribute('src'), i.complete && i.naturalWidth])"
        )
        assert all(width and width > 0 for _, width in images), f"{html.name}: images not loaded: {images}"
        assert page.evaluate("document.styleSheets.length") == 1  # static/site.css loaded
    assert len(_pages(site)) > 1


def test_screenshot(page, site: Path, tmp_path: Path) -> None:
    page.goto((site / "index.html").as_uri())
    target = Path(os.environ.get("LIPSIM_BENCH_SCREENSHOT") or tmp_path / "leaderboard.png")
    target.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target))
    assert target.stat().st_size > 10_000
