"""Wall time per named stage of a run (provenance: where the time goes, e.g. for the suite's breakdown)."""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Dict, Iterator

__all__ = ["Stopwatch"]


class Stopwatch:
    """Seconds of wall time per stage: ``with watch("training"): ...``; a stage timed twice adds up.

    ``seconds`` maps each stage to its total, in the order the stages first ran.
    """

    def __init__(self) -> None:
        self.seconds: Dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - start)

    def add(self, stage: str, seconds: float) -> None:
        """Add ``seconds`` to ``stage``."""
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds
