import pytest

from gis import codes as C
from gis.errors import CodeError


def test_levels_and_parents():
    assert C.level_of("370783000000") is C.Level.DISTRICT
    assert C.level_of("370783001000") is C.Level.TOWN
    assert C.level_of("370783001201") is C.Level.VILLAGE
    assert C.parent_code("370783001201005") == "370783001201"
    assert C.parent_code("370783001201") == "370783001000"
    assert C.parent_code("370783001000") == "370783000000"
    assert C.parent_code("370783000000") is None
    assert C.town_kind("370783005000") == "street" and C.town_kind("370783105000") == "town"
    assert C.village_kind("370783105001") == "community" and C.village_kind("370783105230") == "village"


@pytest.mark.parametrize("code, message", [
    ("37078300100100", "exactly 15 digits"),
    ("37078300100100a", "exactly 15 digits"),
    ("370783001001000", "sequence 000"),
    ("370783001000001", "not a village code"),
    ("370783001401001", "outside 001-399"),
])
def test_malformed_grid_codes(code, message):
    with pytest.raises(CodeError, match=message):
        C.validate_grid_code(code)


def test_grid_code_must_match_its_village_and_kind():
    with pytest.raises(CodeError, match="does not start with"):
        C.validate_grid_code("370783001001001", village_code="370783001002")
    with pytest.raises(CodeError, match="dedicated"):
        C.validate_grid_code("370783001001001", kind="dedicated")
    assert C.validate_grid_code("370783001001950", kind="dedicated") == "370783001001950"


def test_codes_are_strings():
    with pytest.raises(CodeError, match="must be a string"):
        C.validate_grid_code(370783001001001)


def test_assign_codes_reading_order_and_never_reuse():
    # Four grids in a 2x2 block: NW, NE, SW, SE must be 001..004; 002 was used before, so skipped.
    xs, ys = [0.0, 1.0, 0.0, 1.0], [1.0, 1.0, 0.0, 0.0]
    got = C.assign_grid_codes("370783001001", xs, ys, ["basic"] * 4, used={"370783001001002"})
    assert got == ["370783001001001", "370783001001003", "370783001001004", "370783001001005"]
    ded = C.assign_grid_codes("370783001001", [0.0], [0.0], ["dedicated"])
    assert ded == ["370783001001900"]


def test_area_code_parent_prefix():
    with pytest.raises(CodeError, match="parent"):
        C.validate_area_code("370783001001", "village", parent="370783002000")
    assert C.validate_area_code("370783001001", "village", parent="370783001000") == "370783001001"
