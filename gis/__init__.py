"""OneMap's spatial core: codes, coordinates, the grid registry, topology and the resolver.

Nothing here imports FastAPI or anything from layers/, api/ or web/.
"""
