"""The review page in a real browser (headless Chromium, the operating system's package, driven by
Playwright): open it, review the healthy queue with the keyboard alone, check the CSV."""
import os
import shutil
from pathlib import Path

import pytest

from builder.core.decisions import Decisions
from tests.review_fixtures import Running, make_work

CHROMIUM = Path("/usr/bin/chromium")
HOW = ("headless Chromium not found: install it with `apt-get update && apt-get install -y chromium` "
       "and `pip install playwright` (no Playwright browser download is needed)")

pytestmark = pytest.mark.browser


def _browser_or_skip():
    """Playwright's sync API and the Chromium binary; absent: a one-line skip (CI, under
    CGDDI_REQUIRE_BROWSER=1, fails instead, so the test never goes missing there)."""
    try:
        from playwright import sync_api
    except ImportError:
        sync_api = None
    exe = CHROMIUM if CHROMIUM.is_file() else shutil.which("chromium")
    if sync_api is None or not exe:
        if os.environ.get("CGDDI_REQUIRE_BROWSER") == "1":
            pytest.fail(f"CGDDI_REQUIRE_BROWSER is set but {HOW}")
        pytest.skip(HOW)
    return sync_api, exe


@pytest.fixture
def page(tmp_path):
    sync_api, exe = _browser_or_skip()
    ids = make_work(tmp_path / "work")
    run = Running(tmp_path / "work", tmp_path / "decisions.csv", reviewer="ann")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(exe), headless=True, args=["--no-sandbox"])
        pg = browser.new_page(viewport={"width": 1280, "height": 800})
        pg.goto(run.url)
        pg.wait_for_selector("body[data-ready='1']", timeout=30000)
        yield pg, ids, tmp_path / "decisions.csv"
        browser.close()
    run.close()


def test_a_reviewer_clears_the_healthy_queue_with_the_keyboard(page):
    pg, ids, csv = page
    from playwright.sync_api import expect

    assert "healthy synthetics 0/4" in pg.inner_text("#tabs")
    assert len(pg.query_selector_all("#views img")) == 3  # photo | overlay | healthy
    first = pg.inner_text("#meta")
    pg.keyboard.press("k")
    expect(pg.locator("#tabs")).to_contain_text("1/4")
    pg.keyboard.press("1")  # lesion_remains
    expect(pg.locator("#tabs")).to_contain_text("2/4")
    pg.keyboard.press("ArrowLeft")  # back to the one just discarded, and note it
    pg.keyboard.press("n")
    pg.keyboard.type("dark patch left")
    pg.keyboard.press("Enter")
    expect(pg.locator("#others")).to_contain_text("dark patch left")
    pg.keyboard.press("j")
    pg.keyboard.press("4")  # artefact
    expect(pg.locator("#tabs")).to_contain_text("3/4")
    pg.keyboard.press("k")
    expect(pg.locator("#tabs")).to_contain_text("4/4")
    assert "queue done" in pg.inner_text("#status")
    assert first.split(" · ")[0] == f"id {sorted(ids['healthy'])[0]}"
    rows = Decisions.read(csv)
    healthy = sorted(ids["healthy"])
    assert rows.discarded() == {healthy[1]: "lesion_remains", healthy[2]: "artefact"}
    assert rows.latest[(healthy[1], "ann")].note == "dark patch left"
    pg.keyboard.press("]")  # the masks queue: photo | overlay, with confidence
    expect(pg.locator("#meta")).to_contain_text("confidence 0.90")
    pg.keyboard.press("m")
    expect(pg.locator("#tabs")).to_contain_text("automatic masks 1/4")
    assert Decisions.read(csv).discarded()[ids["masks"][0]] == "bad_mask"
