"""A county analyst's grid-only shapefile in one command (issue 15), on a scratch database.

The county is 曲阜市 built at test time from its real outline (tests/county.py): ~300 grids in
EPSG:4527, GBK DBF without .cpg, Chinese field names, the code under 网格代码, no areas file.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from scripts.cli import app
from tests import county
from tests import registry_city as city

runner = CliRunner()
README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.fixture(scope="module")
def qufu():
    """The county's grids (GK zone metres) and its EPSG code, built once for the module."""
    return county.build()


def _table(url: str, sql: str) -> list[tuple]:
    eng = create_engine(url)
    with eng.connect() as conn:
        rows = [tuple(r) for r in conn.execute(text(sql)).all()]
    eng.dispose()
    return rows


def _file_rows(shp) -> list[tuple]:
    """What the file itself says, read back independently of OneMap (GBK, as the DBF is)."""
    frame = pyogrio.read_dataframe(shp, encoding="GBK", read_geometry=False)
    return sorted(zip(frame["网格代码"], frame["网格名称"], frame["户数"].astype(int), strict=True))


def test_grid_only_county_in_one_command(cli_env, tmp_path, qufu):
    frame, epsg = qufu
    shp = county.write_shapefile(tmp_path, frame)
    assert not shp.with_suffix(".cpg").exists() and "Gauss" in shp.with_suffix(".prj").read_text()
    assert "网格代码".encode("gbk") in shp.with_suffix(".dbf").read_bytes()[:2000]
    dry_run, step, validate = readme_steps(shp, tmp_path / "problems.geojson")
    assert "--dry-run" in dry_run and validate == ["grids", "validate"]
    dry = runner.invoke(app, dry_run)
    assert dry.exit_code == 0 and "would import 300 grids" in " ".join(dry.output.split())
    assert _table(cli_env, "SELECT count(*) FROM areas") == [(0,)]  # a dry run writes nothing
    result = runner.invoke(app, step)  # the one command
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "problems.geojson").read_text(encoding="utf-8"))["features"] == []
    output = " ".join(result.output.split())
    assert "code ← 网格代码" in result.output and "households ← 户数" in result.output
    assert "village_name ← 村社区" in result.output and "town_name ← 镇街" in result.output
    assert f"imported {len(frame)} grids" in output and "source CRS EPSG:4527" in output
    assert "encoding gb18030" in result.output or "encoding gbk" in result.output.lower()
    stored = _table(cli_env, "SELECT code, name, households FROM grids WHERE valid_to IS NULL ORDER BY code")
    assert stored == _file_rows(shp)
    assert "号网格" not in "".join(r[1] for r in stored)
    villages = dict(_table(cli_env, "SELECT code, name FROM areas WHERE level = 'village'"))
    towns = dict(_table(cli_env, "SELECT code, name FROM areas WHERE level = 'town'"))
    expected_villages = dict(zip(frame["code"].str[:12], frame["village_name"], strict=True))
    assert villages == expected_villages
    assert sorted(towns.values()) == sorted(name for _, name in county.TOWNS)
    assert _table(cli_env, "SELECT code, name FROM areas WHERE level = 'district'") == [("370881000000", "曲阜市")]
    assert "derived from the grid codes" in output and f"{len(villages)} villages" in output
    # the geometry is the file's: back in its own zone within centimetres
    eng = create_engine(cli_env)
    back = gpd.read_postgis("SELECT code, geom FROM grids", eng, geom_col="geom").to_crs(epsg).set_index("code")
    eng.dispose()
    source = frame.set_index("code").geometry
    assert max(source[c].hausdorff_distance(back.geometry[c]) for c in source.index) < 0.01
    assert runner.invoke(app, validate).exit_code == 0


def readme_steps(shp, problems) -> list[list[str]]:
    """The `onemap grids ...` lines of the README's import section, pointed at this test's files."""
    section = README.read_text(encoding="utf-8").split("## Importing a county's grids")[1]
    block = section.split("```bash")[1].split("```")[0]
    steps = [shlex.split(line.split("  #")[0]) for line in block.splitlines() if line.startswith("onemap grids")]
    files = {"曲阜市网格.shp": str(shp), "problems.geojson": str(problems)}
    return [[files.get(word, word) for word in step[1:]] for step in steps]


def test_valid_codes_are_never_replaced(cli_env, tmp_path, qufu):
    """Areas registered first (as in the report), a code column named BM: the file's codes are kept."""
    frame, _ = qufu
    areas = tmp_path / "areas.shp"
    county.areas(frame).to_file(areas, encoding="GBK", engine="pyogrio")
    result = runner.invoke(app, ["areas", "import", str(areas), "--field", "code=区划代码", "--field", "name=名称"])
    assert result.exit_code == 0, result.output
    shp = county.write_shapefile(tmp_path / "b", frame, code_field="BM")
    result = runner.invoke(app, ["grids", "import", str(shp)])
    assert result.exit_code == 0, result.output
    assert "code ← BM" in result.output and "derived" not in result.output
    stored = _table(cli_env, "SELECT code, name, households FROM grids ORDER BY code")
    assert [r[0] for r in stored] == sorted(frame["code"])
    assert stored == sorted(zip(frame["code"], frame["name"], frame["households"], strict=True))


def test_a_code_column_with_blanks_is_refused_not_filled(cli_env, tmp_path):
    """A column of codes with one blank: refused with the row, nothing written, no code invented."""
    runner.invoke(app, ["areas", "import", str(_areas(tmp_path))])
    grids = city.grids().rename(columns={"code": "WGBM"})
    grids.loc[1, "WGBM"] = None
    path = tmp_path / "grids.geojson"
    grids.to_file(path, driver="GeoJSON")
    result = runner.invoke(app, ["grids", "import", str(path)])
    assert result.exit_code == 1
    assert "rows 2 have no grid code in column 'WGBM'" in result.output and "--assign-codes" in result.output
    assert _table(cli_env, "SELECT count(*) FROM grids") == [(0,)]
    result = runner.invoke(app, ["grids", "import", str(path), "--assign-codes"])  # asked for: issued
    assert result.exit_code == 0, result.output
    assert "not used" in result.output
    assert len(_table(cli_env, "SELECT code FROM grids")) == 3


def _areas(tmp_path):
    path = tmp_path / "areas.geojson"
    city.areas().to_file(path, driver="GeoJSON")
    return path


def test_no_code_column_error_lists_columns_and_field(cli_env, tmp_path):
    grids = city.grids().drop(columns="code").rename(columns={"name": "网格名称", "households": "户数"})
    grids["OBJECTID"] = np.arange(1, 4)
    path = tmp_path / "nocode.geojson"
    grids.to_file(path, driver="GeoJSON")
    result = runner.invoke(app, ["grids", "import", str(path)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    flat = " ".join(result.output.split())
    assert "no column of 15-digit grid codes" in flat
    assert "网格名称, 户数, population, OBJECTID" in flat and "--field code=COLUMN" in flat
    # with --assign-codes but no areas registered: still names the columns and --field
    result = runner.invoke(app, ["grids", "import", str(path), "--assign-codes"])
    flat = " ".join(result.output.split())
    assert result.exit_code == 1 and "网格名称" in flat and "--field code=COLUMN" in flat
    # a --field naming a column that is not there lists the columns
    result = runner.invoke(app, ["grids", "import", str(path), "--field", "code=网格编码"])
    flat = " ".join(result.output.split())
    assert result.exit_code == 1 and "--field code=网格编码: no column '网格编码'" in flat and "OBJECTID" in flat
    assert _table(cli_env, "SELECT count(*) FROM grids") == [(0,)]


def test_problems_file_has_rows_and_file_coordinates(cli_env, tmp_path):
    runner.invoke(app, ["areas", "import", str(_areas(tmp_path))])
    bad = city.grids(**{"370783001001002": ("南", city.rect(0, 0, 500, 320))}).to_crs(4528)
    bad = bad.rename(columns={"code": "网格编码", "name": "网格名称"})
    shp = tmp_path / "overlap.shp"
    bad.to_file(shp, encoding="GBK", engine="pyogrio")
    out = tmp_path / "problems.geojson"
    result = runner.invoke(app, ["grids", "import", str(shp), "--problems", str(out)])
    assert result.exit_code == 2, result.output
    problems = json.loads(out.read_text(encoding="utf-8"))["features"]
    overlap = next(f for f in problems if f["properties"]["kind"] == "overlap")
    props = overlap["properties"]
    assert props["rows"] == [1, 2] and props["crs"] == "EPSG:4528"
    x0, y0 = city.X0, city.Y0  # the overlap is the strip 300-320 m north of the origin, 0-500 m east
    assert x0 <= props["x"] <= x0 + 500 and y0 + 300 <= props["y"] <= y0 + 320
    assert "rows 1, 2" in result.output and "EPSG:4528" in result.output
    assert _table(cli_env, "SELECT count(*) FROM grids") == [(0,)]


def test_micro_hole_is_cleaned_with_a_warning(cli_env, tmp_path):
    """A 0.25 m² hole (a dissolve artefact) in the file's metres: removed, reported with row and place."""
    runner.invoke(app, ["areas", "import", str(_areas(tmp_path))])
    grids = city.grids().to_crs(4528)
    shell = grids.geometry.iloc[2]
    hx, hy = city.X0 + 700, city.Y0 + 300
    hole = [(hx, hy), (hx + 0.5, hy), (hx + 0.5, hy + 0.5), (hx, hy + 0.5)]
    grids.loc[2, "geometry"] = type(shell)(shell.exterior.coords, [hole])
    path = tmp_path / "holes.shp"
    grids.to_file(path, encoding="GBK", engine="pyogrio")
    out = tmp_path / "problems.geojson"
    result = runner.invoke(app, ["grids", "import", str(path), "--problems", str(out)])
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())
    assert "row 3: a micro-hole of 0.250 m² removed" in flat and "EPSG:4528" in flat
    cleaned = [f for f in json.loads(out.read_text(encoding="utf-8"))["features"]
               if f["properties"]["kind"] == "cleaned"]
    assert len(cleaned) == 1 and cleaned[0]["properties"]["rows"] == [3]
    assert abs(cleaned[0]["properties"]["x"] - (hx + 0.25)) < 0.5
    holes = _table(cli_env, "SELECT sum(ST_NumInteriorRings(ST_GeometryN(geom, 1))) FROM grids")
    assert holes == [(0,)]


def test_areas_valid_in_their_zone_are_not_refused_after_conversion(cli_env, tmp_path):
    """Issue 15 point 3: a dissolve left a 0.3 m² hole touching the north edge of the town, its district
    and its east village. Valid in EPSG:4528; self-intersecting once converted to lon/lat. The hole is
    cleaned in the file's metres (with a warning naming the rows), and the areas and grids import."""
    from shapely.geometry import Polygon, box

    from gis.coords import to_wgs84

    x0, y0 = city.X0, city.Y0
    hole = [(x0 + 775, y0 + 600), (x0 + 774.5, y0 + 599.4), (x0 + 775.5, y0 + 599.4)]

    def holed(a, b):
        return Polygon(box(x0 + a, y0, x0 + b, y0 + 600).exterior.coords, [hole])

    areas = gpd.GeoDataFrame({"区划代码": ["370783000000", "370783001000", "370783001001", "370783001002"],
                              "名称": ["测试市", "圣城街道", "东关社区", "西关社区"]},
                             geometry=[holed(0, 1000), holed(0, 1000), box(x0, y0, x0 + 500, y0 + 600),
                                       holed(500, 1000)], crs="EPSG:4528")
    converted = areas.geometry.apply(lambda g: shapely_transform(g, to_wgs84))
    assert areas.geometry.is_valid.all() and not converted.is_valid.all()
    shp = tmp_path / "areas.shp"
    areas.to_file(shp, encoding="GBK", engine="pyogrio")
    result = runner.invoke(app, ["areas", "import", str(shp), "--field", "code=区划代码", "--field", "name=名称"])
    flat = " ".join(result.output.split())
    assert result.exit_code == 0, result.output
    assert "code ← 区划代码 (--field" in flat and "name ← 名称 (--field)" in flat
    for row in (1, 2, 4):
        assert f"row {row}: a micro-hole of 0.300 m² removed" in flat
    grids = tmp_path / "grids.geojson"
    city.grids().to_file(grids, driver="GeoJSON")
    assert runner.invoke(app, ["grids", "import", str(grids)]).exit_code == 0
    assert runner.invoke(app, ["grids", "validate"]).exit_code == 0


def shapely_transform(geom, to_wgs84):
    import shapely

    return shapely.transform(geom, lambda xy: np.column_stack(to_wgs84(xy[:, 0], xy[:, 1], "EPSG:4528")))
