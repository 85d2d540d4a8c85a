"""gis.columns: which column holds the grid code, name, households, town and village."""

from __future__ import annotations

import pandas as pd
import pytest

from gis.columns import detect_area_columns, detect_grid_columns
from gis.errors import InvalidInput

CODES = ["370881001001001", "370881001001002", "370881101201001"]


def test_common_chinese_names():
    frame = pd.DataFrame({"OBJECTID": [1, 2, 3], "网格编码": CODES, "网格名称": ["甲网格", "乙网格", "丙网格"],
                          "户数": [300, 400, 500], "镇街": ["鲁城街道", "鲁城街道", "吴村镇"],
                          "村社区": ["杏坛社区", "杏坛社区", "孔家村"]})
    choice = detect_grid_columns(frame)
    assert choice.mapping == {"code": "网格编码", "name": "网格名称", "households": "户数",
                              "village_name": "村社区", "town_name": "镇街"}
    assert choice.how["code"] == "name" and choice.code_columns == ("网格编码",)
    assert "code ← 网格编码 (by name; every value a valid code)" in choice.lines()


@pytest.mark.parametrize("column", ["网格代码", "GRIDCODE", "Grid_Code", "BM", "wgbm"])
def test_code_aliases(column):
    assert detect_grid_columns(pd.DataFrame({column: CODES}))


def test_content_beats_a_misleading_name():
    """编号 is a common name for a running number; the column of valid codes wins, whatever its name."""
    frame = pd.DataFrame({"编号": [1, 2, 3], "FIELD_7": CODES, "MC": ["a", "b", "c"], "网格户数": [1, 2, 3],
                          "所在街道": ["鲁城街道", "书院街道", "吴村镇"], "地名": ["杏坛社区", "颜庙社区", "孔家村"]})
    choice = detect_grid_columns(frame)
    assert choice.mapping["code"] == "FIELD_7" and choice.how["code"] == "content"
    assert choice.mapping["name"] == "MC" and choice.mapping["households"] == "网格户数"
    assert choice.mapping["town_name"] == "所在街道" and choice.mapping["village_name"] == "地名"
    assert choice.how["village_name"] == "content"


def test_codes_stored_as_numbers_are_recognised():
    frame = pd.DataFrame({"A": [float(c) for c in CODES]})
    assert detect_grid_columns(frame).mapping == {"code": "A"}


def test_a_name_without_valid_content_is_still_mapped():
    """A 网格编码 column holding bad codes is mapped (and refused later with rows), not skipped."""
    frame = pd.DataFrame({"网格编码": ["WG-1", "WG-2"], "名称": ["x", "y"]})
    assert detect_grid_columns(frame).mapping == {"code": "网格编码", "name": "名称"}


def test_given_fields_win_and_unknown_ones_list_the_columns():
    frame = pd.DataFrame({"网格编码": CODES, "NOTE": ["x", "y", "z"]})
    choice = detect_grid_columns(frame, {"name": "note"})
    assert choice.mapping == {"name": "NOTE", "code": "网格编码"} and choice.how["name"] == "given"
    with pytest.raises(InvalidInput, match=r"--field code=BM: no column 'BM'; the file's columns are: 网格编码, NOTE"):
        detect_grid_columns(frame, {"code": "BM"})


def test_area_columns():
    frame = pd.DataFrame({"区划代码": ["370881000000", "370881001000"], "名称": ["曲阜市", "鲁城街道"]})
    assert detect_area_columns(frame).mapping == {"code": "区划代码", "name": "名称"}
