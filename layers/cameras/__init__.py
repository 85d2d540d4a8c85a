"""Cameras (视频监控): registry, ground calibration, rules, alarms → tickets, map layers.

Nothing here imports torch, ultralytics or OpenCV at module level (OpenCV is used lazily for the
homography fit when installed); the detector itself lives in :mod:`layers.vision`.
"""
