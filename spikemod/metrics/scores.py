"""From raw metric values M(m, k) to specialization scores ("Dynamics" section 2.4).

For module m and sub-task k (recognise digit k), every metric gives a raw value M(m, k) whose
"no link" base value is b (chance accuracy, or the correlation of random pairs). Then:

- normalised:  M̄(m, k) = clip((M(m, k) − b) / (1 − b), 0, 1). The clip is explicit: a value below
  its base (e.g. accuracy under chance) means no link, and one above 1 cannot occur after it.
  The "Dynamics" reference code computes m − b/(1 − b) instead, an operator-precedence bug; this
  is the intended formula.
- module score: F^m = M̄(m, 0) − M̄(m, 1) ∈ [−1, 1]  (+1: module m only knows digit 0); the
  reference code's ``ratio`` form is F^m = (M̄(m, 0) − M̄(m, 1)) / (M̄(m, 0) + M̄(m, 1)), with
  accuracy-based M̄ clipped to [1e-5, 1] (so that it is defined) and, there, the correlation's
  M̄ unclipped (:func:`scoring`, ``MetricConfig.module_score`` and ``clip_correlation``).
- network score: F = |F^0 − F^1| / 2 ∈ [0, 1]. With more than two modules, F is the mean of
  |F^i − F^j| / 2 over all module pairs (the same formula for two modules).
- "Extreme sparsity" form: S(n) = (M(n, n) − M(n, 1 − n)) / (M(n, n) + M(n, 1 − n)) on the raw
  values, for the modules n = 0, 1 whose own digit is digit n.

Arrays are [..., M, K] with any leading axes (typically time steps).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

import numpy as np

__all__ = [
    "UNIT",
    "scoring",
    "normalise",
    "module_specialization",
    "network_specialization",
    "extreme_sparsity_specialization",
    "MetricScores",
]


#: The clip of spikemod's normalisation.
UNIT = (0.0, 1.0)
#: The reference code's clip of accuracy-based M̄ (its ratio F^m needs M̄ > 0).
REFERENCE_CLIP = (1e-5, 1.0)
FORMS = ("difference", "ratio")


def scoring(module_score: str, clip_correlation: bool, metric: str) -> Dict[str, Any]:
    """The ``form`` and ``clip`` of :class:`MetricScores` for ``metric`` under the config's choices:
    the difference form clips M̄ to [0, 1]; the ratio form to [1e-5, 1]; the correlation's M̄ is
    unclipped when ``clip_correlation`` is False."""
    if metric == "correlation" and not clip_correlation:
        return {"form": module_score, "clip": None}
    return {"form": module_score, "clip": REFERENCE_CLIP if module_score == "ratio" else UNIT}


def normalise(
    raw: np.ndarray, base: np.ndarray | float, clip: Optional[Tuple[float, float]] = UNIT
) -> np.ndarray:
    """M̄ = clip((M − b) / (1 − b), low, high), elementwise with broadcasting (``clip`` None: not
    clipped); NaN where b >= 1 (undefined)."""
    raw = np.asarray(raw, dtype=np.float64)
    base = np.asarray(base, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        value = (raw - base) / (1.0 - base)
        if clip is not None:
            value = np.clip(value, *clip)
    return np.where(base < 1, value, np.nan)


def module_specialization(normalised: np.ndarray, form: str = "difference") -> np.ndarray:
    """F^m from normalised values [..., M, 2] -> [..., M]: M̄(m, 0) − M̄(m, 1) (``difference``) or
    (M̄(m, 0) − M̄(m, 1)) / (M̄(m, 0) + M̄(m, 1)) (``ratio``; NaN where the sum is 0)."""
    normalised = np.asarray(normalised, dtype=np.float64)
    _check_two_digits(normalised)
    if form not in FORMS:
        raise ValueError(f"unknown module score form {form!r}: use one of {', '.join(FORMS)}")
    difference = normalised[..., 0] - normalised[..., 1]
    if form == "difference":
        return difference
    with np.errstate(invalid="ignore", divide="ignore"):
        return difference / (normalised[..., 0] + normalised[..., 1])


def network_specialization(module_scores: np.ndarray) -> np.ndarray:
    """F = |F^0 − F^1| / 2 from module scores [..., M] -> [...] (mean over pairs for M > 2)."""
    f = np.asarray(module_scores, dtype=np.float64)
    if f.shape[-1] < 2:
        raise ValueError(f"network specialization needs at least 2 modules, got {f.shape[-1]}")
    i, j = np.triu_indices(f.shape[-1], k=1)
    return (np.abs(f[..., i] - f[..., j]) / 2.0).mean(-1)


def extreme_sparsity_specialization(raw: np.ndarray) -> np.ndarray:
    """S(n) = (M(n, n) − M(n, 1−n)) / (M(n, n) + M(n, 1−n)) for n = 0, 1: [..., M, 2] -> [..., 2].

    NaN where both raw values are 0.
    """
    raw = np.asarray(raw, dtype=np.float64)
    _check_two_digits(raw)
    if raw.shape[-2] < 2:
        raise ValueError(f"the 'Extreme sparsity' form needs modules 0 and 1, got {raw.shape[-2]} module(s)")
    own = np.stack([raw[..., 0, 0], raw[..., 1, 1]], -1)
    other = np.stack([raw[..., 0, 1], raw[..., 1, 0]], -1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (own - other) / (own + other)


def _check_two_digits(values: np.ndarray) -> None:
    if values.shape[-1] != 2:
        raise ValueError(f"the scores compare the two digits of the task; got {values.shape[-1]} sub-tasks")


@dataclass(frozen=True)
class MetricScores:
    """One metric's values and scores at each measured step.

    ``raw`` M(m, k) and ``base`` b are [T, M, K]; ``steps`` [T] are the 1-based time steps the
    rows belong to. ``details`` holds metric-specific arrays (e.g. accuracies) for the results file.
    ``form`` and ``clip`` choose the module score and the normalisation's clip (:func:`scoring`).
    """

    name: str
    raw: np.ndarray
    base: np.ndarray
    steps: np.ndarray
    details: Dict[str, np.ndarray] = field(default_factory=dict)
    form: str = "difference"
    clip: Optional[Tuple[float, float]] = UNIT

    def __post_init__(self) -> None:
        raw = np.asarray(self.raw, dtype=np.float64)
        if raw.ndim != 3:
            raise ValueError(f"{self.name}: raw values must be [T, M, K], got shape {raw.shape}")
        object.__setattr__(self, "raw", raw)
        object.__setattr__(self, "base", np.broadcast_to(np.asarray(self.base, np.float64), raw.shape).copy())
        object.__setattr__(self, "steps", np.asarray(self.steps, dtype=np.int64))
        if self.steps.shape != (raw.shape[0],):
            raise ValueError(f"{self.name}: {len(self.steps)} step labels for {raw.shape[0]} rows")

    @property
    def normalised(self) -> np.ndarray:
        """M̄(m, k) [T, M, K]."""
        return normalise(self.raw, self.base, self.clip)

    @property
    def module_scores(self) -> np.ndarray:
        """F^m [T, M]."""
        return module_specialization(self.normalised, self.form)

    @property
    def specialization(self) -> np.ndarray:
        """F [T]."""
        return network_specialization(self.module_scores)

    @property
    def extreme_sparsity(self) -> np.ndarray:
        """The "Extreme sparsity" form S(n) [T, 2] on the raw values."""
        return extreme_sparsity_specialization(self.raw)

    @property
    def last(self) -> float:
        """F at the last measured step."""
        return float(self.specialization[-1])
