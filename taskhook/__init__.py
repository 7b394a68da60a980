"""taskhook: a Scale-compatible task API that delivers every task callback."""

from __future__ import annotations

__version__ = "0.1.0"
