"""The folium map report: right figures, self-contained, and it draws with the network cut off."""

from __future__ import annotations

import re
from datetime import datetime

import pytest

from gis import registry
from gis.errors import InvalidInput, NotFound
from gis.metric import area_m2
from layers.report import build_report, write_report
from tests.api.test_export_api import TOWN, UTC8, add_tickets, in_force_since_january

START, END = datetime(2026, 11, 1, tzinfo=UTC8), datetime(2026, 12, 1, tzinfo=UTC8)


def test_report_figures_and_no_cdn(demo_session, tmp_path):
    add_tickets(demo_session)
    in_force_since_january(demo_session)
    out = tmp_path / "report.html"
    report = write_report(demo_session, out, area=TOWN, start=START, end=END)
    grids = registry.load_grids(demo_session, town=TOWN)
    assert report.kpis["网格数"] == len(grids)
    assert report.kpis["户数"] == int(grids["households"].sum())
    assert report.kpis["面积（平方公里）"] == round(float(area_m2(grids.geometry.values).sum() / 1e6), 2)
    assert report.kpis["受理工单"] == 2 and report.kpis["办结率"] == "0.0%"  # December's is outside
    page = out.read_text(encoding="utf-8")
    assert "cdn" not in page.lower()
    assert not re.search(r"<script[^>]+src=[\"']?(https?:)?//", page)
    assert not re.search(r"<link[^>]+href=[\"']?(https?:)?//", page)
    assert "网格工单数" in page and "受理工单" in page and "370783001001001" in page


def test_report_bad_area(demo_session):
    with pytest.raises(NotFound):
        build_report(demo_session, area="370783199000")
    with pytest.raises(InvalidInput, match="reversed"):
        build_report(demo_session, area=TOWN, start=END, end=START)


@pytest.mark.browser
def test_report_draws_offline_in_chromium(demo_session, tmp_path):
    from playwright.sync_api import sync_playwright

    from scripts.bench_map import CHROMIUM_ARGS

    out = tmp_path / "report.html"
    write_report(demo_session, out, area=TOWN)
    requested: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.route("**/*", lambda route: (requested.append(route.request.url), route.abort())
                   if not route.request.url.startswith("file:") else route.continue_())
        page.goto(out.as_uri())
        page.wait_for_selector("path.leaflet-interactive")
        drawn = page.locator("path.leaflet-interactive").count()
        browser.close()
    assert requested == []
    assert drawn > len(registry.load_grids(demo_session, town=TOWN))  # grids plus the outline
