"""The big-screen map in headless Chromium: layers and panels with the demo city's counts, live updates."""

from __future__ import annotations

import json

import httpx
import psycopg
import pytest
from sqlalchemy import make_url

pytestmark = pytest.mark.browser


def libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def test_big_screen_renders_the_demo_city(server, page, artifacts):
    page.goto(server.base + "/")
    page.wait_for_selector("body[data-ready=true]", timeout=30_000)
    assert page.text_content("#grid-count") == "1,347"
    assert page.text_content("#town-count") == "15"
    assert page.get_attribute("body", "data-grids") == "1347"
    assert page.get_attribute("body", "data-towns") == "15"
    assert int(page.get_attribute("body", "data-villages")) > 400
    switcher = page.locator("#layer-list label")
    assert switcher.count() >= 4  # grids, villages, towns, tickets (+ sensors/workers/cameras when they exist)
    assert page.text_content("#n-grids") == "1,347"
    page.wait_for_function("window.onemap.labels.drawn >= 15")  # town names drawn on the label canvas
    page.wait_for_selector("#kpi-panel:not([hidden]) table.kpi", timeout=10_000)
    page.wait_for_selector("#ranking-panel:not([hidden])")
    page.wait_for_selector("#live-state.on", timeout=10_000)
    page.screenshot(path=str(artifacts / "map-bigscreen.png"))


def test_clicking_a_grid_shows_it_and_the_ranking_flies_to_a_town(server, page):
    page.goto(server.base + "/")
    page.wait_for_selector("body[data-ready=true]", timeout=30_000)
    page.wait_for_selector("body[data-complete=true]", timeout=30_000)
    page.mouse.click(960, 560)  # the middle of the city
    page.wait_for_function("document.querySelector('#info h2').textContent !== '详情'", timeout=60_000)
    assert "编码" in page.text_content("#info")
    page.wait_for_function("document.querySelectorAll('#area-select option').length === 16")  # 全市 + 15 towns
    page.select_option("#area-select", index=3)
    page.wait_for_function("window.onemap.map.getZoom() > 11", timeout=60_000)
    assert page.evaluate("window.onemap.state.town").startswith("370783")


def test_a_new_ticket_arrives_live(server, page, web_url, artifacts):
    page.goto(server.base + "/")
    page.wait_for_selector("body[data-ready=true]", timeout=30_000)
    page.wait_for_selector("#live-state.on", timeout=10_000)
    before = int(page.text_content("#open-count").replace(",", ""))
    res = httpx.post(server.base + "/tickets", json={
        "channel": "hotline", "category": "0102", "severity": "important", "description": "道路旁暴露垃圾，气味较大",
        "lon": 118.79, "lat": 36.86}, timeout=60)
    assert res.status_code == 201, res.text
    ticket = res.json()
    event = {"id": ticket["id"], "state": ticket["state"], "card": ticket["card"], "category_name": ticket["category_name"],
             "grid_code": ticket["grid_code"], "lon": ticket["lon"], "lat": ticket["lat"]}
    with psycopg.connect(libpq(web_url), autocommit=True) as conn:  # what the tickets service announces
        conn.execute("SELECT pg_notify('onemap_tickets', %s)", (json.dumps(event, ensure_ascii=False),))
    page.wait_for_selector(f"#alarms li:has-text('#{ticket['id']}')", timeout=10_000)
    assert int(page.get_attribute("body", "data-live-events")) >= 1
    page.wait_for_function(f"Number(document.querySelector('#open-count').textContent.replace(/,/g, '')) === {before + 1}",
                           timeout=10_000)
    page.click(f"#alarms li:has-text('#{ticket['id']}')")  # the feed flies the map to the ticket
    page.wait_for_function("window.onemap.map.getZoom() >= 14.5", timeout=10_000)
    page.wait_for_timeout(800)
    page.screenshot(path=str(artifacts / "map-live-ticket.png"))


def test_live_stream_speaks_server_sent_events(server, web_url):
    with httpx.stream("GET", server.base + "/live", params={"channels": "alarms"}, timeout=10) as res:
        assert res.headers["content-type"].startswith("text/event-stream")
        lines = res.iter_lines()
        assert next(lines).startswith("retry:")
        assert next(lines) == "event: hello"
        assert json.loads(next(lines).removeprefix("data: "))["listening"] is True
        with psycopg.connect(libpq(web_url), autocommit=True) as conn:
            conn.execute("SELECT pg_notify('onemap_tickets', '{\"id\": 1}')")  # not subscribed: filtered out
            conn.execute("SELECT pg_notify('onemap_alarms', '{\"title\": \"烟感告警\", \"lon\": 118.8, \"lat\": 36.9}')")
        got = [line for line in (next(lines) for _ in range(4)) if line]
        assert got[0] == "event: alarms"
        assert json.loads(got[1].removeprefix("data: ")) == {"title": "烟感告警", "lon": 118.8, "lat": 36.9}
    assert httpx.get(server.base + "/live", params={"channels": "weather"}).status_code == 400
