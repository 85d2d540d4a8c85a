"""Categories, departments and the routing table as data."""

from __future__ import annotations

from pathlib import Path

import pytest

from gis.errors import InvalidInput
from layers.incidents.categories import (
    Complexity,
    DepartmentKind,
    LimitType,
    get_category,
    load_categories,
    load_departments,
    routing,
)


def test_twenty_three_departments_all_used():
    departments = load_departments()
    assert len(departments) == 23
    assert departments["water"].name == "市供水公司"
    assert departments["water"].kind is DepartmentKind.UTILITY
    assert departments["urban"].kind is DepartmentKind.DEPARTMENT
    used = {c.department for c in load_categories().values()}
    assert used == set(departments)


def test_categories_shape():
    categories = load_categories()
    assert 50 <= len(categories) <= 80
    majors = {c.major_code: c.major_name for c in categories.values()}
    assert majors == {
        "01": "市容环境",
        "02": "宣传广告",
        "03": "施工管理",
        "04": "突发事件",
        "05": "街面秩序",
        "06": "其他",
        "07": "矛盾纠纷",
        "08": "安全隐患",
        "09": "公共服务",
        "10": "信访诉求",
        "11": "环境污染",
        "12": "视频告警",
    }
    for c in categories.values():
        assert c.code.startswith(c.major_code) and c.acceptance_condition and c.closure_condition
        assert c.limit_general >= c.limit_important >= c.limit_urgent > 0


def test_standard_codes_and_limits():
    c = get_category("0102")
    assert (c.name, c.department, c.needs_town, c.source) == (
        "暴露垃圾",
        "sanitation",
        True,
        "GB/T 30428.2",
    )
    assert c.limit_type is LimitType.WORKING_HOURS and c.complexity is Complexity.SIMPLE
    assert (c.limit("general"), c.limit("important"), c.limit("urgent")) == (8.0, 4.0, 2.0)
    # Utilities go straight to the department on the calendar clock.
    water = get_category("0402")
    assert (water.name, water.department, water.needs_town) == ("自来水管破裂", "water", False)
    assert water.limit_type is LimitType.URGENT_HOURS
    # Complex matters: 5 working days (Zhucheng).
    assert get_category("0101").limit("general") == 5.0
    # Every utility category of the seeds (water, power, gas, heating) is on the urgent clock.
    for code in ("0402", "0403", "0405", "0450", "0901", "0902", "0903", "0904"):
        assert get_category(code).limit_type is LimitType.URGENT_HOURS


def test_unknown_code_lists_close_matches():
    with pytest.raises(InvalidInput) as err:
        get_category("0107")
    assert err.value.detail["close_matches"] == ["0106 绿地脏乱", "0105 水域不洁", "0104 道路不洁"]
    assert "0106 绿地脏乱" in err.value.message
    with pytest.raises(InvalidInput) as err:
        get_category("垃圾满溢")  # a name instead of a code
    assert err.value.detail["close_matches"][0] == "1204 垃圾满溢"


def test_routing_defaults_and_overrides():
    table = routing()
    assert table.route("0102").department == "sanitation"
    changed = routing({"0102": {"department": "urban", "needs_town": False}})
    route = changed.route("0102")
    assert (route.department, route.needs_town) == ("urban", False)
    assert changed.route("0103") == table.route("0103")
    assert len(changed.rows()) == len(load_categories())
    assert [r.category for r in changed.rows()][:2] == ["0101", "0102"]


def test_routing_refuses_bad_overrides():
    with pytest.raises(InvalidInput, match="unknown department"):
        routing({"0102": {"department": "nasa"}})
    with pytest.raises(InvalidInput, match="unknown event category"):
        routing({"9999": {"department": "urban"}})
    with pytest.raises(InvalidInput, match="unknown fields"):
        routing({"0102": {"deadline": 3}})
    with pytest.raises(InvalidInput, match="needs_town"):
        routing({"0102": {"needs_town": "yes"}})
    with pytest.raises(InvalidInput, match="unknown event category"):
        routing().route("0000")


def test_bad_csv_fails_loudly(tmp_path: Path):
    good = Path(__file__).resolve().parents[2] / "layers/incidents/data/categories.csv"
    lines = good.read_text(encoding="utf-8").splitlines()
    bad = tmp_path / "categories.csv"
    bad.write_text("\n".join([lines[0], lines[1].replace(",urban,", ",nasa,")]), encoding="utf-8")
    with pytest.raises(InvalidInput, match="line 2: unknown department 'nasa'"):
        load_categories(bad)
    bad.write_text("\n".join([lines[0], lines[1].replace(",5,4,3,", ",3,4,5,")]), encoding="utf-8")
    with pytest.raises(InvalidInput, match="not grow with severity"):
        load_categories(bad)
