"""The field: the grid worker's phone (网格员移动端) and the citizens' public reporting (随手拍)."""
