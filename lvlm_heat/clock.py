"""Wall time of a pair's phases (``answer``, ``prepare``, ``optimise``, ``curves``), as each record reports them."""

from __future__ import annotations

import time

import torch


class Clock:
    """Wall time of consecutive phases (CUDA work finished before each reading)."""

    def __init__(self) -> None:
        self.start = self.last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        """End the phase ``name`` now (a phase may resume: its times add up)."""
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        now = time.perf_counter()
        self.laps[name] = self.laps.get(name, 0.0) + now - self.last
        self.last = now

    @property
    def seconds(self) -> float:
        """Since the clock started."""
        return time.perf_counter() - self.start
