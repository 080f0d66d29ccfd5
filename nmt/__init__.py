"""nmt: Chinese<->English neural machine translation with attention models."""

__version__ = "0.1.0"
