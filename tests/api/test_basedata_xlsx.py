"""Base data imported from an Excel workbook (.xlsx), as a community office keeps its register: Chinese
headers, numbers typed as numbers, a bad row named by its sheet row and column with nothing written;
then the corrected workbook imports. The CLI reads the same workbook."""

from __future__ import annotations

from io import BytesIO

from openpyxl import Workbook
from sqlalchemy import text

from tests.api.test_auth import api, bearer  # noqa: F401 - fixtures
from tests.api.test_basedata import ID, ID17, world  # noqa: F401 - fixture

HEADERS = ["姓名", "网格编码", "人员类别", "性别", "出生年份", "身份证号", "电话"]


def workbook(rows: list[list]) -> bytes:
    book = Workbook()
    sheet = book.active
    sheet.title = "人口登记"
    sheet.append(HEADERS)
    for row in rows:
        sheet.append(row)
    out = BytesIO()
    book.save(out)
    return out.getvalue()


def test_an_xlsx_with_chinese_headers_imports_and_a_bad_row_is_named(api, world, demo_session):  # noqa: F811
    grid = world["a"]["code"]
    headers = bearer(api, "village_a")
    before = demo_session.scalar(text("SELECT count(*) FROM residents"))
    good = ["周一", grid, "registered", "男", 1970, ID, 13800001111]  # year and phone typed as numbers
    bad = ["周二", grid, "resident", "女", 1875, ID17 + "0", 12345]
    sent = workbook([good, [None] * 7, bad])  # an empty line between: row numbers stay the sheet's (bad = row 4)
    res = api.post("/basedata/residents/import", headers=headers,
                   files={"file": ("居民.xlsx", sent, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")})
    assert res.status_code == 422, res.text
    errors = {(e["row"], e["column"]): e["reason"] for e in res.json()["errors"]}
    assert set(errors) == {(4, "birth_year"), (4, "id_number"), (4, "phone")}
    assert "check digit" in errors[(4, "id_number")]
    assert res.json()["detail"].startswith("nothing imported: 3 problem(s) in 1 row(s)")
    assert demo_session.scalar(text("SELECT count(*) FROM residents")) == before  # nothing written

    fixed = ["周二", grid, "resident", "女", 1975, None, None]
    ok = api.post("/basedata/residents/import", headers=headers, files={"file": ("居民.xlsx", workbook([good, fixed]),
                                                                              "application/octet-stream")})
    assert ok.status_code == 200, ok.text
    assert ok.json() == {"kind": "residents", "imported": 2}
    rows = demo_session.execute(text("SELECT name, birth_year, phone FROM residents WHERE captured_by = 'village_a' "
                                     "AND name LIKE '周%' ORDER BY name")).all()
    assert [(r.name, r.birth_year) for r in rows] == [("周一", 1970), ("周二", 1975)]
    assert rows[0].phone == "13800001111"


def test_a_broken_or_old_workbook_is_refused_with_a_reason(api, world):  # noqa: F811
    headers = bearer(api, "village_a")
    broken = api.post("/basedata/residents/import", headers=headers,
                      files={"file": ("r.xlsx", b"PK\x03\x04rest", "application/octet-stream")})
    assert broken.status_code == 400 and "cannot be read" in broken.json()["detail"]
    old = api.post("/basedata/residents/import", headers=headers,
                   files={"file": ("r.xls", b"\xd0\xcf\x11\xe0" + b"\0" * 60, "application/vnd.ms-excel")})
    assert old.status_code == 400 and ".xls" in old.json()["detail"]
