"""Tolerances for comparing two computation orders of the same float32 arithmetic.

CPUs sum in different orders: AVX-512, AVX2 and scalar kernels block a dot product differently,
MKL picks its kernels by instruction set, and a batched matmul splits work differently from a
single one. The results then differ by rounding, never by more. For a sum of n float32 terms the
difference is bounded, with high probability, by about √n·u times the size of the terms
(u = 2⁻²⁴, the unit roundoff; rounding errors add like a random walk: Higham & Mary, "A new
approach to probabilistic rounding error analysis", SIAM J. Sci. Comput. 2019). The magnitude of
the compared tensor stands in for the size of the terms, and ``n_terms`` counts the products
summed along the longest chain that produced it (input pixels, recurrent sources, readout inputs).

Measured on AVX2 (and on the scalar kernels, ``ATEN_CPU_CAPABILITY=default MKL_CBWR=COMPATIBLE``),
each float32 forward pass of the test networks lies within 0.5·√n·u·max|y| of its float64 value,
so two orders differ by at most about √n·u·max|y|; :data:`SAFETY` leaves 8× headroom. An AVX-512
machine showed 1.5e-6 on logits of magnitude ~1.8 with n = 1,568 (√n·u·max|y| = 4.3e-6). A real
error in the equations moves values by 1e-2 or more, far above these tolerances.

Exact comparisons stay exact where the arithmetic is exact: integer counts, masks, spike bits of
one computation, and Lava float against its numpy reference (the same float64 arithmetic).
"""

from __future__ import annotations

import math

import torch

#: Unit roundoff of float32.
UNIT_ROUNDOFF = 2.0**-24
#: Headroom over the measured spread of two float32 summation orders.
SAFETY = 8.0
#: rtol for two summation orders: a few float32 ulps relative to each compared value.
RTOL = 1e-5

#: Training compounds rounding over its optimizer steps (Adam divides each gradient by its own
#: running magnitude, so near-zero gradients carry their relative rounding error into a whole
#: step). Ensemble against one-by-one training of the test networks (8 AdamW steps, lr 1e-3)
#: differed by at most 6e-7 in any parameter and 2.3e-7 in any loss on AVX2 and the scalar kernels:
#: this leaves 16× headroom.
TRAINING = {"rtol": 1e-4, "atol": 1e-5}


def order_tolerance(reference: torch.Tensor, n_terms: int) -> dict:
    """rtol and atol for comparing two summation orders of the float32 math that gave ``reference``:
    atol = SAFETY·√n_terms·u·max(max|reference|, 1): the intermediate sums (currents, membranes)
    are of order 1 even where the compared tensor is smaller."""
    scale = max(float(reference.detach().abs().max()), 1.0) if reference.numel() else 1.0
    return {"rtol": RTOL, "atol": SAFETY * math.sqrt(n_terms) * UNIT_ROUNDOFF * scale}


def assert_same_up_to_order(actual: torch.Tensor, expected: torch.Tensor, n_terms: int, msg: str = "") -> None:
    """``actual`` equals ``expected`` up to the rounding of another float32 summation order."""
    expected = torch.as_tensor(expected)
    actual = torch.as_tensor(actual).to(expected.dtype)
    torch.testing.assert_close(actual, expected, **order_tolerance(expected, n_terms), msg=msg or None)


def decision_margin(membrane: torch.Tensor, threshold, n_terms: int) -> tuple:
    """(the smallest |U − θ|, the most another summation order can move U)."""
    membrane = membrane.detach()
    margin = float((membrane - torch.as_tensor(threshold, dtype=membrane.dtype).detach()).abs().min())
    atol = order_tolerance(membrane, n_terms)["atol"] + RTOL * float(membrane.abs().max())
    return margin, atol


def decided_samples(membrane: torch.Tensor, threshold, n_terms: int) -> torch.Tensor:
    """Which samples of a batch (membrane [T, B, N]) have every membrane value further from the
    threshold than another order can move it: their spikes may be compared exactly on any CPU
    (the samples of a batch never interact)."""
    membrane = membrane.detach()
    _, atol = decision_margin(membrane, threshold, n_terms)
    distance = (membrane - torch.as_tensor(threshold, dtype=membrane.dtype).detach()).abs()
    return (distance > atol).all(dim=2).all(dim=0)


def assert_spikes_decided(membrane: torch.Tensor, threshold, n_terms: int) -> None:
    """Every membrane value lies further from the threshold than another summation order can move
    it, so the spike bits S = U > θ are the same on any CPU and may be compared exactly."""
    margin, atol = decision_margin(membrane, threshold, n_terms)
    assert margin > atol, (
        f"a membrane value lies {margin:.2e} from the threshold, within the rounding of "
        f"another summation order ({atol:.2e}): spike bits there depend on the CPU; change the test input"
    )
