"""The `onemap` command line end to end, on a scratch database it commits to."""

import csv

import geopandas as gpd
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from scripts.cli import app
from tests import registry_city as city

runner = CliRunner()


def _count(url, table="grids"):
    eng = create_engine(url)
    with eng.connect() as conn:
        n = conn.execute(text(f"SELECT count(*) FROM {table}")).scalar()
    eng.dispose()
    return n


def _areas(tmp_path):
    path = tmp_path / "areas.geojson"
    city.areas().to_file(path, driver="GeoJSON")
    return path


def _gbk_shapefile(tmp_path, frame):
    """Grids in CGCS2000 GK zone 40 with Chinese field names, GBK DBF and no .cpg (as old ArcGIS writes)."""
    out = frame.rename(columns={"code": "网格编码", "name": "网格名称"}).to_crs(4528)
    path = tmp_path / "grids.shp"
    out.to_file(path, encoding="GBK", engine="pyogrio")
    (tmp_path / "grids.cpg").unlink(missing_ok=True)
    return path


def test_import_gbk_gauss_kruger_shapefile(cli_env, tmp_path):
    assert runner.invoke(app, ["areas", "import", str(_areas(tmp_path))]).exit_code == 0
    shp = _gbk_shapefile(tmp_path, city.grids())
    assert b"\xb6\xab\xb9\xd8" in (tmp_path / "grids.dbf").read_bytes()  # 东关 in GBK
    result = runner.invoke(app, ["grids", "import", str(shp), "--field", "code=网格编码", "--field",
                                 "name=网格名称", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "would import 3 grids" in result.output and _count(cli_env) == 0
    result = runner.invoke(app, ["grids", "import", str(shp), "--field", "code=网格编码", "--field", "name=网格名称"])
    assert result.exit_code == 0, result.output
    eng = create_engine(cli_env)
    stored = gpd.read_postgis("SELECT code, name, geom FROM grids ORDER BY code", eng, geom_col="geom")
    eng.dispose()
    assert list(stored["name"]) == ["东关社区第1网格", "东关社区第2网格", "西关社区第1网格"]
    source = city.grids().to_crs(4528).set_index("code").geometry
    back = stored.set_index("code").geometry.to_crs(4528)
    assert max(source[c].hausdorff_distance(back[c]) for c in source.index) < 0.5
    result = runner.invoke(app, ["grids", "validate"])
    assert result.exit_code == 0 and "ok" in result.output.lower()


def test_refused_import_leaves_database_unchanged(cli_env, tmp_path):
    runner.invoke(app, ["areas", "import", str(_areas(tmp_path))])
    bad = city.grids(**{"370783001001002": ("南", city.rect(0, 0, 500, 320))})
    path = tmp_path / "overlap.geojson"
    bad.to_file(path, driver="GeoJSON")
    before = _count(cli_env, "grid_edits")
    result = runner.invoke(app, ["grids", "import", str(path)])
    assert result.exit_code == 2 and "overlap" in result.output
    assert _count(cli_env) == 0 and _count(cli_env, "grid_edits") == before


def test_import_refusals_are_one_line(cli_env, tmp_path):
    runner.invoke(app, ["areas", "import", str(_areas(tmp_path))])
    shp = _gbk_shapefile(tmp_path, city.grids())
    (tmp_path / "grids.prj").unlink()
    result = runner.invoke(app, ["grids", "import", str(shp), "--field", "code=网格编码"])
    assert result.exit_code == 1 and "error:" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["grids", "import", str(shp), "--crs", "EPSG:999999"])
    assert result.exit_code == 1 and "EPSG:999999" in result.output
    notjson = tmp_path / "bad.geojson"
    notjson.write_text("{ this is not json", encoding="utf-8")
    result = runner.invoke(app, ["grids", "import", str(notjson)])
    assert result.exit_code == 1 and "JSON" in result.output
    assert _count(cli_env) == 0


def test_resolve_csv(cli_env, tmp_path):
    runner.invoke(app, ["areas", "import", str(_areas(tmp_path))])
    path = tmp_path / "g.geojson"
    city.grids().to_file(path, driver="GeoJSON")
    assert runner.invoke(app, ["grids", "import", str(path)]).exit_code == 0
    p = city.grids().geometry.iloc[2].representative_point()
    source = tmp_path / "in.csv"
    source.write_text(f"名称,x,y\n甲,{p.x},{p.y}\n乙,bad,36.9\n", encoding="utf-8")
    target = tmp_path / "out.csv"
    result = runner.invoke(app, ["resolve", str(source), str(target), "--lon-col", "x", "--lat-col", "y"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(target.open(encoding="utf-8-sig")))
    assert [r["名称"] for r in rows] == ["甲", "乙"]
    assert rows[0]["grid_code"] == "370783001002001" and rows[0]["town_name"] == "圣城街道"
    assert rows[1]["grid_code"] == "" and "not a number" in rows[1]["error"]
    result = runner.invoke(app, ["resolve", str(source), str(target), "--lon-col", "lng"])
    assert result.exit_code == 1 and "column 'lng', 'lat' not found" in result.output
