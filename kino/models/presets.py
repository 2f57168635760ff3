"""Preset names of the models, as Enums that import nothing heavy.

The command line builds its choices from these without importing torch; `dit.py` and `vae.py`
map each name to its factory function (a test checks that both sides list the same names).
"""

from enum import StrEnum


class DiTPreset(StrEnum):
    WORLD_TINY = "world-tiny"
    WORLD_TINY_V2 = "world-tiny-v2"
    SMALL = "small"
    BASE = "base"
    B1 = "1b"


class VAEPreset(StrEnum):
    WORLD_TINY = "world-tiny"
    WORLD_TINY_V2 = "world-tiny-v2"
    WORLD_SMALL = "world-small"
    REAL_BASE = "real-base"
