"""Vision (视频智能分析): ultralytics YOLO over camera frames, fully offline.

Everything that imports torch, ultralytics or OpenCV lives in this package, so the rest of OneMap
installs and imports without the ``vision`` extra. :func:`offline` must run before ultralytics is
imported: ultralytics decides at import time whether it is online, where its settings live and
whether it may pip-install things, and it fetches Arial.ttf for plotting unless a font is already in
its config folder.
"""

from __future__ import annotations

import os
import shutil
from functools import lru_cache
from pathlib import Path

from gis.settings import PROJECT_ROOT

DEMO_WEIGHTS = PROJECT_ROOT / "data" / "models" / "onemap-demo-yolo11n.pt"
CONFIG_DIR = PROJECT_ROOT / ".onemap" / "ultralytics"

# Integrations ultralytics would otherwise call home through (telemetry, hubs, loggers).
QUIET_SETTINGS = {"sync": False, "clearml": False, "comet": False, "dvc": False, "mlflow": False,
                  "raytune": False, "tensorboard": False, "wandb": False, "vscode_msg": False,
                  "openvino_msg": False}


def _local_font(folder: Path) -> None:
    """Put a font ultralytics will accept as Arial in its config folder (matplotlib ships DejaVu)."""
    import matplotlib

    source = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):
        target = folder / name
        if not target.exists() and source.exists():
            shutil.copyfile(source, target)


@lru_cache
def offline() -> Path:
    """Configure ultralytics never to reach the network; returns its config folder. Idempotent."""
    folder = Path(os.environ.setdefault("YOLO_CONFIG_DIR", str(CONFIG_DIR)))
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "0"
    os.environ.setdefault("YOLO_VERBOSE", "0")
    _local_font(folder)
    from ultralytics import settings

    if any(settings.get(k) != v for k, v in QUIET_SETTINGS.items()):
        settings.update(QUIET_SETTINGS)
    return folder


from pydantic import Field  # noqa: E402
from pydantic_settings import BaseSettings, SettingsConfigDict  # noqa: E402


def _data_dir() -> Path:
    from gis.settings import database_settings

    return database_settings().data_dir


class VisionSettings(BaseSettings):
    """``ONEMAP_YOLO_WEIGHTS`` (a user points it at yolo11n.pt or their own model); the folder of key
    frames and latest frames (``ONEMAP_KEYFRAME_DIR``, default ``<ONEMAP_DATA_DIR>/keyframes``)."""

    model_config = SettingsConfigDict(env_prefix="ONEMAP_", extra="ignore")

    yolo_weights: Path = DEMO_WEIGHTS
    keyframe_dir: Path = Field(default_factory=lambda: _data_dir() / "keyframes")
    yolo_conf: float = 0.35
    yolo_imgsz: int | None = None  # None: the size the model was trained at
    batch: int = 8
    reconnect_tries: int = 5
    reconnect_base_s: float = 1.0


def vision_settings() -> VisionSettings:
    return VisionSettings()
