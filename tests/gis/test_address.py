"""The pure address parser: one canonical form for the many ways a door is written."""

import pytest

from gis.address import CityContext, address_key, chinese_to_int, compose, normalise, parse

CITY = CityContext(province="山东省", prefecture="潍坊市", counties=("寿光市",),
                   towns=("圣城街道", "文家街道", "化龙镇", "侯镇"), villages=("东关社区", "三元朱村"),
                   elsewhere=frozenset({"海淀区", "济南", "济南市", "奎文区"}))


@pytest.mark.parametrize(("text", "value"), [
    ("三", 3), ("十", 10), ("十二", 12), ("二十", 20), ("一百零八", 108), ("一百二十三", 123),
    ("二〇八", 208), ("一二", 12), ("两千零五", 2005), ("叁拾", 30),
])
def test_chinese_numerals(text, value):
    assert chinese_to_int(text) == value


@pytest.mark.parametrize(("text", "expected"), [
    ("圣城街１２３号", "圣城街123号"),
    ("ＡＢＣ路１号", "ABC路1号"),
    ("圣城街 123 号，3 栋", "圣城街123号3栋"),
    ("圣城街十二号三号楼", "圣城街12号3栋"),
    ("圣城街12号十二栋", "圣城街12号12栋"),
    ("圣城街12号3幢", "圣城街12号3栋"),
    ("圣城街12号3座", "圣城街12号3栋"),
    ("圣城街12号3#楼", "圣城街12号3栋"),
    ("圣城街12号第二单元二〇八室", "圣城街12号2单元208室"),
    ("圣城街12号3-2-301", "圣城街12号3栋2单元301室"),
    ("五一路3号", "五一路3号"),  # numerals in a name stay
    ("三元朱村8号", "三元朱村8号"),
    ("圣城街道办事处", "圣城街道"),
])
def test_normalise(text, expected):
    assert normalise(text) == expected


def _components(text):
    p = parse(text, CITY)
    return (p.town, p.road, p.number, p.building, p.unit, p.room)


@pytest.mark.parametrize("text", [
    "山东省潍坊市寿光市圣城街道圣城街123号3栋2单元",
    "山东寿光圣城街道圣城街１２３号３幢２单元",
    "潍坊市寿光市圣城街道圣城街一百二十三号三号楼二单元",
    "寿光市 圣城街道 圣城街123号3-2",
    "圣城街道圣城街123号3栋楼第2单元",
])
def test_many_spellings_one_address(text):
    assert _components(text) == ("圣城街道", "圣城街", "123", "3", "2", None)
    assert parse(text, CITY).key == "圣城街|123|3|2"


def test_street_office_is_not_the_road():
    # 圣城街道 is the street office (town level); 圣城街 is a road: never mix them up.
    assert _components("圣城街道圣城街5号") == ("圣城街道", "圣城街", "5", None, None, None)
    assert _components("圣城街5号") == (None, "圣城街", "5", None, None, None)
    assert _components("圣城街道文圣街5号") == ("圣城街道", "文圣街", "5", None, None, None)
    # the street office alone is no road: no town taken, and no house number either
    p = parse("圣城街道", CITY)
    assert (p.town, p.road, p.number) == (None, "圣城街道", None)


def test_roads_keep_their_kind():
    assert parse("文圣路5号", CITY).road == "文圣路"
    assert parse("文圣街5号", CITY).road == "文圣街"
    assert parse("文圣大街5号", CITY).road == "文圣大街"


def test_village_room_floor_and_place():
    p = parse("寿光市圣城街道东关社区文圣街108号阳光小区7栋2单元5楼502室", CITY)
    assert (p.district, p.town, p.village, p.road, p.number, p.place, p.building, p.unit, p.room) == (
        "寿光市", "圣城街道", "东关社区", "文圣街", "108", "阳光小区", "7", "2", "502")
    assert parse("圣城街123", CITY).number == "123"  # a bare number is the house number
    assert parse("圣城街123号阳光小区3#2单元", CITY).building == "3"  # a second 号 is the building


def test_lane_and_development_zone():
    assert _components("渤海路100弄5号") == (None, "渤海路", "100", "5", None, None)
    p = parse("寿光市经济开发区渤海路3号", CITY)
    assert (p.road, p.number, p.place) == ("渤海路", "3", "经济开发区")


@pytest.mark.parametrize(("text", "foreign"), [
    ("北京市海淀区中关村大街1号", "北京市"),
    ("北京海淀区中关村大街1号", "北京市"),
    ("海淀区中关村大街1号", "海淀区"),
    ("上海市浦东新区世纪大道100号", "上海市"),
    ("山东省济南市历下区泉城路1号", "济南市"),
    ("山东济南泉城路1号", "济南"),
    ("潍坊市奎文区胜利街1号", "奎文区"),
    ("潍坊市青州市云门山路1号", "青州市"),  # not in the gazetteer: a county right after the prefecture
    ("广东省佛山市禅城区季华路1号", "广东省"),
])
def test_other_cities_are_named(text, foreign):
    assert parse(text, CITY).foreign == foreign


@pytest.mark.parametrize("text", ["北京路5号", "济南路5号", "上海街1号", "新华路农贸市场5号", "东关社区文圣街1号"])
def test_roads_named_after_places_are_local(text):
    p = parse(text, CITY)
    assert p.foreign is None and p.number is not None


def test_key_and_compose_ignore_leading_zeros():
    assert address_key("圣城街", "0123", "03", None) == "圣城街|123|3|"
    assert compose("圣城街", "123", "3", "2", town="圣城街道", district="寿光市") == "寿光市圣城街道圣城街123号3栋2单元"
    assert compose("圣城街", "123") == "圣城街123号"


def test_odd_text_never_raises():
    for text in ["", "   ", "！！！", "123", "号", "栋单元", "ＡＢＣ", "圣城街道"]:
        p = parse(text, CITY)
        assert p.number is None or p.number.isdigit()
