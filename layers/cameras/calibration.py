"""Ground calibration (地面标定): image pixels ↔ map, a homography fitted from ≥ 4 point pairs.

The ground near a street camera is close to a plane, and a plane seen through a pinhole is a
homography. It is fitted in the city's Gauss-Krüger metres (not lon/lat, whose degrees are not square)
so the reprojection error means metres on the ground: that is the number an operator can judge.

OpenCV's ``cv2.findHomography`` does the fit when OpenCV is installed (the ``vision`` extra); without
it a normalised direct linear transform in numpy gives the same least-squares answer, so the API can
calibrate cameras on a server without the vision stack. Degenerate sets are refused before fitting:
fewer than four pairs, or points on (nearly) one line on either side, make the plane undetermined.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from gis.coords import from_wgs84, gauss_kruger_epsg, to_wgs84
from gis.errors import InvalidInput

MIN_POINTS = 4
COLLINEAR_RATIO = 1e-3  # smallest/largest spread of a point set below this: collinear


@dataclass(frozen=True)
class Calibration:
    """Image → GK-metres homography, the zone it works in, and how well it fits the given pairs."""

    h: np.ndarray  # 3x3, image (u, v, 1) → GK (x - x0, y - y0, w)
    epsg: int
    origin: tuple[float, float]  # (x0, y0): GK metres, keeps the fit well conditioned
    image_points: np.ndarray  # (n, 2) pixels
    map_points: np.ndarray  # (n, 2) lon/lat
    rms_m: float
    max_m: float
    errors_m: np.ndarray  # per pair

    def project(self, u, v) -> tuple[np.ndarray, np.ndarray]:
        """Pixels → lon/lat (WGS84), vectorised; points at or above the horizon come back NaN."""
        x, y, ok = apply_h(self.h, np.asarray(u, float), np.asarray(v, float))
        x0, y0 = self.origin
        lon, lat = to_wgs84(np.where(ok, x, 0.0) + x0, np.where(ok, y, 0.0) + y0, f"EPSG:{self.epsg}")
        return np.where(ok, lon, np.nan), np.where(ok, lat, np.nan)

    def to_dict(self) -> dict:
        """JSON-ready, for the cameras.calibration column."""
        return {"h": self.h.tolist(), "epsg": self.epsg, "origin": list(self.origin), "image_points": self.image_points.tolist(),
                "map_points": self.map_points.tolist(), "rms_m": self.rms_m, "max_m": self.max_m,
                "errors_m": self.errors_m.round(3).tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> Calibration:
        return cls(np.asarray(data["h"], float), int(data["epsg"]), tuple(data["origin"]), np.asarray(data["image_points"], float),
                   np.asarray(data["map_points"], float), float(data["rms_m"]), float(data["max_m"]),
                   np.asarray(data.get("errors_m", []), float))


def apply_h(h: np.ndarray, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Apply a homography to arrays; ``ok`` is False where the point maps to infinity or behind."""
    w = h[2, 0] * u + h[2, 1] * v + h[2, 2]
    ok = w > 1e-12  # fit() scales h so the calibration points have w > 0
    safe = np.where(ok, w, 1.0)
    return (h[0, 0] * u + h[0, 1] * v + h[0, 2]) / safe, (h[1, 0] * u + h[1, 1] * v + h[1, 2]) / safe, ok


def _pairs(points, what: str) -> np.ndarray:
    try:
        arr = np.asarray(points, dtype=float)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{what} must be a list of [x, y] pairs") from exc
    if arr.ndim != 2 or arr.shape[1] != 2 or not np.all(np.isfinite(arr)):
        raise InvalidInput(f"{what} must be a list of finite [x, y] pairs")
    return arr


def _spread_ratio(pts: np.ndarray) -> float:
    """Smallest over largest singular value of the centred points: 0 when they lie on one line."""
    s = np.linalg.svd(pts - pts.mean(axis=0), compute_uv=False)
    return float(s[-1] / s[0]) if s[0] > 0 else 0.0


def check_pairs(image_points, map_points) -> tuple[np.ndarray, np.ndarray]:
    """Refuse sets that cannot determine a ground plane, with a message saying why."""
    img, geo = _pairs(image_points, "image points"), _pairs(map_points, "map points")
    if len(img) != len(geo):
        raise InvalidInput(f"{len(img)} image points but {len(geo)} map points: give them in pairs")
    if len(img) < MIN_POINTS:
        raise InvalidInput(f"calibration needs at least {MIN_POINTS} point pairs, got {len(img)}")
    for side, pts in (("image", img), ("map", geo)):
        if _spread_ratio(pts) < COLLINEAR_RATIO:
            raise InvalidInput(f"the {side} points are collinear: pick points spread over the ground, "
                               f"not along one line")
        if len(pts) == MIN_POINTS:  # with only four, any three on a line also leaves it undetermined
            for trio in combinations(range(4), 3):
                if _spread_ratio(pts[list(trio)]) < COLLINEAR_RATIO:
                    raise InvalidInput(f"three of the four {side} points are collinear "
                                       f"(#{', #'.join(str(i + 1) for i in trio)}): move one or add a fifth")
    return img, geo


def _normaliser(pts: np.ndarray) -> np.ndarray:
    c = pts.mean(axis=0)
    scale = np.sqrt(2.0) / max(np.mean(np.linalg.norm(pts - c, axis=1)), 1e-12)
    return np.array([[scale, 0, -scale * c[0]], [0, scale, -scale * c[1]], [0, 0, 1.0]])


def dlt_homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares homography src → dst by the normalised DLT (Hartley), numpy only."""
    ts, td = _normaliser(src), _normaliser(dst)
    s = (ts @ np.column_stack([src, np.ones(len(src))]).T).T
    d = (td @ np.column_stack([dst, np.ones(len(dst))]).T).T
    rows = []
    for (x, y, _), (u, v, _) in zip(s, d, strict=True):
        rows.append([-x, -y, -1, 0, 0, 0, u * x, u * y, u])
        rows.append([0, 0, 0, -x, -y, -1, v * x, v * y, v])
    _, _, vt = np.linalg.svd(np.asarray(rows))
    h = np.linalg.inv(td) @ vt[-1].reshape(3, 3) @ ts
    centre = src.mean(axis=0)
    if h[2, 0] * centre[0] + h[2, 1] * centre[1] + h[2, 2] < 0:
        h = -h  # keep the source points on the w > 0 side (see apply_h)
    return h / np.linalg.norm(h)


def _fit(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    try:
        import cv2
    except ImportError:
        return dlt_homography(src, dst)
    h, _ = cv2.findHomography(src.astype(np.float64), dst.astype(np.float64), 0)
    if h is None:
        raise InvalidInput("the points do not determine a homography (degenerate layout)")
    return h / np.linalg.norm(h)


def fit(image_points: Sequence, map_points: Sequence, *, crs: str = "EPSG:4326") -> Calibration:
    """Fit image ↔ ground from pairs; ``map_points`` are lon/lat in ``crs`` (EPSG, gcj02 or bd09).

    Returns the calibration with its reprojection error in metres (RMS and worst pair)."""
    img, geo = check_pairs(image_points, map_points)
    lon, lat = to_wgs84(geo[:, 0], geo[:, 1], crs)
    epsg = gauss_kruger_epsg(float(np.mean(lon)))
    gx, gy = from_wgs84(lon, lat, f"EPSG:{epsg}")
    origin = (float(np.round(gx.mean())), float(np.round(gy.mean())))
    x, y = gx - origin[0], gy - origin[1]
    ground = np.column_stack([x, y])
    h = _fit(img, ground)
    centre = img.mean(axis=0)
    if h[2, 0] * centre[0] + h[2, 1] * centre[1] + h[2, 2] < 0:
        h = -h  # the ground side of the horizon has w > 0
    sv = np.linalg.svd(h, compute_uv=False) if np.all(np.isfinite(h)) else np.zeros(3)
    if sv[0] == 0 or sv[-1] / sv[0] < 1e-12:
        raise InvalidInput("the points do not determine a homography (degenerate layout)")
    px, py, ok = apply_h(h, img[:, 0], img[:, 1])
    errors = np.where(ok, np.hypot(px - x, py - y), np.inf)
    return Calibration(h, epsg, origin, img, np.column_stack([lon, lat]), round(float(np.sqrt(np.mean(errors ** 2))), 3),
                       round(float(errors.max()), 3), errors)


def read_points(text: str) -> tuple[list[list[float]], list[list[float]]]:
    """Pairs from CSV text: ``u,v,lon,lat`` per line (a header line is allowed)."""
    image, ground = [], []
    for n, line in enumerate(text.splitlines(), 1):
        cells = [c.strip() for c in line.replace("\t", ",").split(",") if c.strip()]
        if not cells or cells[0].startswith("#"):
            continue
        try:
            u, v, lon, lat = (float(c) for c in cells[:4])
        except ValueError:
            if n == 1:
                continue  # header
            raise InvalidInput(f"line {n}: expected u,v,lon,lat numbers, got {line!r}") from None
        image.append([u, v])
        ground.append([lon, lat])
    return image, ground
