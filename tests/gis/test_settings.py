"""The city's time zone is one setting (ONEMAP_CITY_TZ), checked when read."""

from zoneinfo import ZoneInfo

import pytest

from gis import settings


def test_city_time_zone_comes_from_the_environment(monkeypatch):
    assert settings.CITY_TZ == ZoneInfo("Asia/Shanghai")  # the default every module shares
    monkeypatch.setenv("ONEMAP_CITY_TZ", "Asia/Urumqi")
    assert settings.city_tz() == ZoneInfo("Asia/Urumqi")


@pytest.mark.parametrize("name", ["Mars/Olympus", "../etc/passwd", ""])
def test_an_unknown_time_zone_is_refused_by_name(monkeypatch, name):
    monkeypatch.setenv("ONEMAP_CITY_TZ", name)
    with pytest.raises(ValueError, match="ONEMAP_CITY_TZ"):
        settings.city_tz()


def test_the_cli_says_which_setting_is_wrong_without_a_traceback():
    import os
    import subprocess
    import sys

    env = {**os.environ, "ONEMAP_CITY_TZ": "Mars/Olympus"}
    done = subprocess.run([sys.executable, "-m", "scripts.cli", "db", "status"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 1
    assert "ONEMAP_CITY_TZ='Mars/Olympus' is not a time zone" in done.stderr and "Traceback" not in done.stderr
