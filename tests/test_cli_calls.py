"""`onemap calls` and `onemap basedata` against a scratch database: the seeded time limits, changing
one, and a refused import listing its row errors with a non-zero exit."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from scripts.cli import app

runner = CliRunner()


def test_limits_are_data_and_can_be_changed(cli_env):
    shown = runner.invoke(app, ["calls", "limits"])
    assert shown.exit_code == 0, shown.output
    limits = {(r["stage"], r["key"]): r["minutes"] for r in json.loads(shown.output)}
    assert limits[("sign", "*")] == 120 and limits[("onsite", "water")] == 60 and limits[("onsite", "*")] == 120
    changed = runner.invoke(app, ["calls", "limits", "--stage", "grid_chief", "--minutes", "20"])
    assert changed.exit_code == 0, changed.output
    assert {(r["stage"], r["key"]): r["minutes"] for r in json.loads(changed.output)}[("grid_chief", "*")] == 20
    bad = runner.invoke(app, ["calls", "limits", "--stage", "lunch", "--minutes", "20"])
    assert bad.exit_code == 1 and "unknown stage" in bad.output
    assert json.loads(runner.invoke(app, ["calls", "sweep"]).output) == {"calls": 0, "events": 0}


def test_a_refused_import_lists_its_rows(cli_env, tmp_path):
    path = tmp_path / "residents.csv"
    path.write_text("name,grid_code,kind\n张三,370783001001001,registered\n,,ghost\n", encoding="utf-8")
    result = runner.invoke(app, ["basedata", "import", "residents", str(path)])
    assert result.exit_code == 1
    assert "row 2 grid_code: no current grid 370783001001001" in result.output
    assert "row 3 name: required" in result.output and "row 3 kind: must be one of" in result.output
