"""Chinese address text (地址) → normalised components, without any database.

Why a parser of our own: hotline operators, WeChat forms and spreadsheets write the same door in many
ways — ``山东省潍坊市寿光市圣城街道圣城街１２３号三号楼２单元``, ``圣城街123号3幢2单元``,
``圣城街123号3-2``. Matching works only on one canonical form, so this module:

- folds full-width characters to half-width (NFKC: ``ＡＢＣ１２３`` → ``ABC123``) and drops whitespace
  and punctuation;
- writes Chinese numerals as digits, but only right before an address unit (``十二栋`` → ``12栋``,
  ``二〇八室`` → ``208室``), so names such as ``五一路`` or ``三元朱村`` are left alone;
- unifies the building words 栋/幢/座/号楼/栋楼 → 栋, ``#`` → 号, ``3-2-301`` → 3栋2单元301室, and
  reads Shanghai-style ``100弄5号`` as house number 100, building 5 (the table has no lane level);
- strips the province / prefecture / county prefix of *this* city and reports any other city's
  (``北京市海淀区…``) instead of guessing;
- takes the town (镇/街道) and village/community only by their full registered names, so the street
  office ``圣城街道`` and the road ``圣城街`` are never confused: ``圣城街123号`` has no town.

The city is described by a :class:`CityContext` the caller builds (gis.geocode builds it from the
registry), which keeps this module pure and fast to test.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass, field
from functools import cached_property

# Province-level names (full, short). Public facts; enough to recognise "another city" at the start.
PROVINCES: tuple[tuple[str, str], ...] = (
    ("北京市", "北京"), ("天津市", "天津"), ("上海市", "上海"), ("重庆市", "重庆"), ("河北省", "河北"),
    ("山西省", "山西"), ("辽宁省", "辽宁"), ("吉林省", "吉林"), ("黑龙江省", "黑龙江"), ("江苏省", "江苏"),
    ("浙江省", "浙江"), ("安徽省", "安徽"), ("福建省", "福建"), ("江西省", "江西"), ("山东省", "山东"),
    ("河南省", "河南"), ("湖北省", "湖北"), ("湖南省", "湖南"), ("广东省", "广东"), ("海南省", "海南"),
    ("四川省", "四川"), ("贵州省", "贵州"), ("云南省", "云南"), ("陕西省", "陕西"), ("甘肃省", "甘肃"),
    ("青海省", "青海"), ("台湾省", "台湾"), ("内蒙古自治区", "内蒙古"), ("广西壮族自治区", "广西"),
    ("西藏自治区", "西藏"), ("宁夏回族自治区", "宁夏"), ("新疆维吾尔自治区", "新疆"),
    ("香港特别行政区", "香港"), ("澳门特别行政区", "澳门"),
)
PROVINCE_BY_CODE = dict(zip(
    ("11", "12", "31", "50", "13", "14", "21", "22", "23", "32", "33", "34", "35", "36", "37", "41", "42",
     "43", "44", "46", "51", "52", "53", "61", "62", "63", "71", "15", "45", "54", "64", "65", "81", "82"),
    (full for full, _ in PROVINCES), strict=True))

_DIGITS = {"零": 0, "〇": 0, "○": 0, "一": 1, "壹": 1, "二": 2, "两": 2, "贰": 2, "三": 3, "叁": 3,
           "四": 4, "肆": 4, "五": 5, "伍": 5, "六": 6, "陆": 6, "七": 7, "柒": 7, "八": 8, "捌": 8,
           "九": 9, "玖": 9}
_POWERS = {"十": 10, "拾": 10, "百": 100, "佰": 100, "千": 1000, "仟": 1000}
_NUMERAL = "[" + "".join(_DIGITS) + "".join(_POWERS) + "]+"
_UNIT_WORDS = "号楼|号院|栋楼|号|弄|栋|幢|座|单元|室|户|层|楼"
_CN_BEFORE_UNIT = re.compile(rf"第?({_NUMERAL})(?={_UNIT_WORDS})")
_PUNCT = re.compile(r"[\s,，。.、;；:：()（）\[\]【】{}<>《》\"'“”‘’!！?？/\\|_~·…]+")
_ADMIN = re.compile(r"^([\u4e00-\u9fff]{2,7}?(?:特别行政区|自治区|自治州|地区|省|市|区|县|旗|盟))")
_LOCAL_AREA = ("社区", "小区", "园区", "开发区", "新区", "城区", "景区", "厂区", "校区", "示范区", "片区")
_ZONE = re.compile(r"^[\u4e00-\u9fff]{1,8}?(?:经济开发区|开发区|工业园区|园区|高新区|新区|示范区|片区)")
_ROAD_AFTER = set("路街道巷胡同大")
_TAIL = re.compile(
    r"^(?P<road>.*?)"
    r"(?:(?P<lane>\d+)弄)?"
    r"(?:(?P<number>\d+)号)?"
    r"(?P<place>[^\d]*?)"
    r"(?:(?P<building>\d+)栋)?"
    r"(?:(?P<unit>\d+)单元)?"
    r"(?:(?P<floor>\d+)(?:层|楼))?"
    r"(?:(?P<room>\d+)(?:室|户)?)?$"
)


def chinese_to_int(text: str) -> int:
    """``十二`` → 12, ``一百零八`` → 108, ``二〇八`` → 208 (digit by digit when no 十/百/千)."""
    if not any(ch in _POWERS for ch in text):
        return int("".join(str(_DIGITS[ch]) for ch in text))
    total, current = 0, 0
    for ch in text:
        if ch in _DIGITS:
            current = _DIGITS[ch]
        else:
            total += (current or 1) * _POWERS[ch]
            current = 0
    return total + current


def normalise(text: str) -> str:
    """Canonical text: half-width, digits, unified unit words, no whitespace or punctuation."""
    s = _PUNCT.sub("", unicodedata.normalize("NFKC", text or ""))
    s = s.replace("號", "号").replace("棟", "栋").replace("單元", "单元").replace("樓", "楼")
    s = _CN_BEFORE_UNIT.sub(lambda m: str(chinese_to_int(m.group(1))), s)
    s = re.sub(r"第(\d+)", r"\1", s)
    s = re.sub(r"(\d+)#楼", r"\1栋", s).replace("#", "号")
    s = re.sub(r"(\d+)(?:号楼|栋楼|幢|座)", r"\1栋", s)
    s = re.sub(r"(\d+)号院", r"\1号", s)
    s = re.sub(r"(\d+号[^\d]*?\d+)号", r"\1栋", s, count=1)  # 123号阳光小区3号 → building 3
    s = re.sub(r"(\d+)号(\d+)-(\d+)-(\d+)", r"\1号\2栋\3单元\4室", s)
    s = re.sub(r"(\d+)号(\d+)-(\d+)(?!\d)", r"\1号\2栋\3单元", s)
    s = s.replace("街道办事处", "街道").replace("街办", "街道").replace("办事处", "")
    return s.replace("-", "").upper()


@dataclass(frozen=True)
class CityContext:
    """What the parser must know about the city it serves: its own names and its towns/villages."""

    province: str = ""
    prefecture: str = ""
    counties: tuple[str, ...] = ()
    towns: tuple[str, ...] = ()
    villages: tuple[str, ...] = ()
    # Optional gazetteer: other prefectures (full and short names) and other counties (full names).
    elsewhere: frozenset[str] = field(default_factory=frozenset)

    @cached_property
    def own_prefixes(self) -> list[str]:
        names = [n for n in (self.province, self.prefecture, *self.counties) if n]
        shorts = [_short(n) for n in names]
        return sorted({*names, *(s for s in shorts if len(s) >= 2)}, key=len, reverse=True)

    @cached_property
    def town_names(self) -> frozenset[str]:
        return frozenset(self.towns)

    @cached_property
    def village_names(self) -> frozenset[str]:
        return frozenset(self.villages)

    @cached_property
    def local_names(self) -> frozenset[str]:
        return self.town_names | self.village_names


def _short(name: str) -> str:
    for suffix in ("特别行政区", "自治区", "自治州", "地区", "省", "市", "区", "县"):
        if name.endswith(suffix) and len(name) - len(suffix) >= 2:
            return name[: -len(suffix)]
    return name


@dataclass(frozen=True)
class ParsedAddress:
    """An address in components; ``foreign`` names another city when the text is not in this one."""

    text: str
    normalised: str
    district: str | None = None
    town: str | None = None
    village: str | None = None
    road: str | None = None
    number: str | None = None
    place: str | None = None
    building: str | None = None
    unit: str | None = None
    room: str | None = None
    foreign: str | None = None

    @property
    def key(self) -> str:
        return address_key(self.road, self.number, self.building, self.unit)

    def as_dict(self) -> dict:
        return asdict(self)


def address_key(road: str | None, number: str | None, building: str | None = None,
                unit: str | None = None) -> str:
    """The exact-match key: road, number, building and unit; the town is matched separately."""
    return "|".join(_digits(v) if i else (v or "") for i, v in enumerate((road, number, building, unit)))


def _digits(value: str | None) -> str:
    if not isinstance(value, str):  # None (or NaN from a frame)
        return ""
    return str(int(value)) if value.isdigit() else value


def compose(road: str | None, number: str | None, building: str | None = None, unit: str | None = None,
            *, town: str | None = None, district: str | None = None) -> str:
    """The canonical written form: 寿光市圣城街道圣城街123号3栋2单元."""
    parts = [district or "", town or "", road or ""]
    for value, word in ((number, "号"), (building, "栋"), (unit, "单元")):
        if value:
            parts.append(f"{_digits(value)}{word}")
    return "".join(parts)


def _strip_prefix(s: str, city: CityContext) -> tuple[str, str | None, str | None]:
    """Remove this city's province/prefecture/county; return (rest, county, foreign-name or None).

    A county-level token (区/县/市) right after this city's province or prefecture that is not one of
    its counties is another place (潍坊市奎文区…); a lone 区 further in may be local (开发区), so it
    counts as foreign only when the optional gazetteer (``city.elsewhere``) knows it.
    """
    own = city.own_prefixes
    parents = {n for n in (city.province, city.prefecture) if n} | {_short(n) for n in (city.province, city.prefecture) if n}
    county, after_parent = None, False
    while s:
        hit = next((p for p in own if s.startswith(p) and s[len(p):len(p) + 1] not in _ROAD_AFTER), None)
        if hit:
            county = next((c for c in city.counties if hit in (c, _short(c))), county)
            after_parent = hit in parents
            s = s[len(hit):]
            continue
        if _longest_prefix(s, city.local_names, whole=True):
            break
        other = _elsewhere(s, city.elsewhere)
        if other:
            return s, county, other
        province = next((full for full, short in PROVINCES if s.startswith((full, short))
                         and s[len(short):len(short) + 1] not in _ROAD_AFTER), None)
        if province:
            return s, county, province
        m = _ADMIN.match(s)
        if not m or _not_admin(m.group(1), s[m.end():m.end() + 1]):
            break
        token = m.group(1)
        if token.endswith(("省", "自治区", "特别行政区", "市", "自治州", "地区", "盟")) or after_parent:
            return s, county, token
        break
    return s, county, None


def _elsewhere(s: str, names: frozenset[str]) -> str | None:
    """The longest gazetteer name ``s`` starts with, unless a road word follows (北京路 is a road)."""
    for k in range(min(len(s) - 1, 9), 1, -1):
        if s[:k] in names and s[k] not in _ROAD_AFTER:
            return s[:k]
    return None


def _not_admin(token: str, after: str) -> bool:
    """A token that only looks like an area name: 东关社区, 新华路农贸市(场), 新华超市, 开发区."""
    return token.endswith(_LOCAL_AREA) or token.endswith(("超市", "集市", "门市")) or after == "场" \
        or re.search("[路街巷道村]", token) is not None


def _longest_prefix(s: str, names: frozenset[str], *, whole: bool = False) -> str | None:
    """The longest name in ``names`` that ``s`` starts with (``whole``: may be all of ``s``)."""
    for k in range(min(len(s) if whole else len(s) - 1, 16), 0, -1):
        if s[:k] in names:
            return s[:k]
    return None


def _take(s: str, names: frozenset[str]) -> tuple[str, str | None]:
    """Split off a leading registered name, leaving something behind (a name alone is no address)."""
    name = _longest_prefix(s, names) if names else None
    return (s[len(name):], name) if name else (s, None)


def zone_name(zone: re.Match | None) -> str | None:
    return zone.group(0) if zone else None


def parse(text: str, city: CityContext | None = None) -> ParsedAddress:
    """Parse one address. Never raises on odd text: what cannot be read stays in ``road``/``place``."""
    city = city or CityContext()
    norm = normalise(text)
    rest, county, foreign = _strip_prefix(norm, city)
    if foreign:
        return ParsedAddress(text=text, normalised=norm, foreign=foreign)
    rest, town = _take(rest, city.town_names)
    rest, village = _take(rest, city.village_names)
    zone = _ZONE.match(rest)
    rest = rest[zone.end():] if zone and len(rest) > zone.end() else rest
    m = _TAIL.match(rest)
    if m is None:  # pragma: no cover - the pattern accepts any string
        return ParsedAddress(text=text, normalised=norm, district=county, town=town, road=rest or None)
    g = m.groupdict()
    number, building = g["number"], g["building"]
    if g["lane"]:  # 100弄5号: lane 100, house 5 → number 100, building 5
        number, building = g["lane"], building or g["number"]
    road, place = g["road"], g["place"]
    if not (number or g["lane"]):  # no 号: what the pattern took as a place name is the road
        road, place = (road or "") + (place or ""), None
    room = g["room"]
    if room and not (number or building or g["unit"] or g["floor"]):  # 圣城街123: a bare house number
        number, room = room, None
    return ParsedAddress(
        text=text, normalised=norm, district=county, town=town, village=village,
        road=road or None, number=_digits(number) or None, place=place or zone_name(zone),
        building=_digits(building) or None, unit=_digits(g["unit"]) or None,
        room=_digits(room) or None)
