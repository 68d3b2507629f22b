"""The algorithm: the codistillation model, its losses, teacher sources and schedules.

Nothing here knows about files, flags or processes; ``exchange`` and ``runner``
build on it.
"""
