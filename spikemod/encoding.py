"""Spike encodings of the task input for the spiking variant. Tensors are time-major, [T, B, ...].

- ``direct``: the normalised image is the input current at every step (no spikes in the input).
- ``rate``: Bernoulli rate coding of pixel intensities in [0, 1], one independent draw per step.
- ``latency``: snnTorch's linear latency code; each pixel spikes once, brighter pixels earlier, and
  pixels below 0.01 at the last step (static input only).
"""

from __future__ import annotations

import torch
from snntorch import spikegen

from .data import MNIST_MEAN, MNIST_STD

__all__ = ["encode", "intensities"]


def intensities(x: torch.Tensor) -> torch.Tensor:
    """Undo the MNIST normalisation: pixel intensities clipped to [0, 1]."""
    return (x * MNIST_STD + MNIST_MEAN).clamp(0.0, 1.0)


def encode(x: torch.Tensor, encoding: str, generator: torch.Generator | None = None) -> torch.Tensor:
    """Encode normalised input ``x`` [T, B, ...] as currents (direct) or spikes (rate, latency)."""
    if encoding == "direct":
        return x
    if encoding == "rate":
        return torch.bernoulli(intensities(x), generator=generator)
    if encoding == "latency":
        if not torch.equal(x[0], x[-1]) or not torch.equal(x[0], x[len(x) // 2]):
            raise ValueError(
                "latency encoding needs static input; switch off TaskConfig.noise_ratio and "
                "random_onset, or use encoding='rate'"
            )
        return spikegen.latency(intensities(x[0]), num_steps=len(x), normalize=True, linear=True)
    raise ValueError(f"unknown encoding {encoding!r}: use 'direct', 'rate' or 'latency'")
