"""Sweeps: every prompt of a dataset x models x request parameters x repeats, as rows.

(Documentation completed below.)
"""

from __future__ import annotations

from llmgine.sweep._limits import AdaptiveLimit
from llmgine.sweep._result import SweepResult
from llmgine.sweep._run import Preflight, Sweep

__all__ = ["AdaptiveLimit", "Preflight", "Sweep", "SweepResult"]
