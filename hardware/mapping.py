"""The snnTorch -> Lava parameter mapping, in floating point and in Loihi 2 fixed point.

The torch model's LIF step (``snn.Leaky(reset_mechanism="zero")`` plus an explicit recurrence)

    I_t = W_in·x_t + W_rec·s_{t-1} + b;  U_t = beta·(1 - S_{t-1})·U_{t-1} + I_t;  S_t = U_t > theta

is Lava's ``LIF`` with du = 1 (the current u is the step's input), dv = 1 - beta, vth = theta and
bias_mant = b, the recurrence in ``Sparse`` and the external current W_in·x_t entering ``a_in``:
u = a_in; v = v·(1 - dv) + u + bias; spike where v > vth; v = 0 where it spiked.

Fixed point (``Loihi2SimCfg(select_tag="fixed_pt")``) uses a shared scale s, in integer units per
unit of the torch model's membrane:

- weights: w = 2·round(w·s/2), even integers in [-256, 254] (mixed-sign 8-bit weights drop the
  lowest bit), weight_exp = 0;
- vth = round(theta·s) (Lava shifts it left by 6 bits);
- input current a_in = round(I·s) (Lava shifts a_in left by 6 into the 24-bit current u);
- bias = round(b·s·64) = bias_mant·2^bias_exp with a 13-bit mantissa (the bias is not shifted);
- dv = round((1 - beta)·4096) (12 bits; decay is v·(4096 - dv) >> 12), du = 4095 (instantaneous).

The default scale gives the largest weight magnitude 254, so the weights use the whole 8-bit range,
rounded down to the scale at which the largest threshold is a whole number of units (uniform
thresholds are then exact). Lava truncates floats silently (2.7 becomes 2), so every fixed-point
value here is an explicit integer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional

import numpy as np
from scipy import sparse

__all__ = [
    "MappingError",
    "LavaNetwork",
    "float_network",
    "fixed_point_network",
    "default_scale",
    "WEIGHT_MIN",
    "WEIGHT_MAX",
    "VTH_MAX",
    "ACTIVATION_MAX",
    "DECAY_UNITY",
    "FIXED_DU",
]

#: Mixed-sign 8-bit weights: Lava clips to [-256, 255] and drops the lowest bit.
WEIGHT_MIN, WEIGHT_MAX = -256, 254
#: vth is an unsigned 17-bit register.
VTH_MAX = 2**17 - 1
#: a_in is shifted left by 6 bits into the signed 24-bit current u, which wraps beyond 2^23.
ACTIVATION_MAX = 2**17 - 1
#: Bias = mantissa (signed 13 bits) · 2^exponent (unsigned 3 bits).
BIAS_MANTISSA_MAX, BIAS_EXPONENT_MAX = 4095, 7
#: The 6-bit shift of a_in and vth relative to the bias and v.
STATE_SHIFT = 6
#: Decays are 12-bit: x·(4096 - d) >> 12.
DECAY_UNITY = 4096
#: du = 4095 (+1 offset in Lava) decays the current u completely each step: u = a_in << 6.
FIXED_DU = 4095


class MappingError(ValueError):
    """A network cannot be represented in Lava's LIF parameters (e.g. out of fixed-point range)."""


@dataclass(frozen=True, eq=False)
class LavaNetwork:
    """One recurrent LIF population in Lava's own parameters, floating or fixed point.

    ``weights`` [N, N] CSR (row = target, column = source); ``bias_mant``, ``bias_exp``, ``dv`` and
    ``vth`` per neuron [N] (Lava takes dv and vth per process: neurons with equal (dv, vth) form one
    process, see :meth:`populations`); ``du`` for all neurons. ``scale`` is the fixed-point scale s
    (integer units per unit of membrane), None in floating point.
    """

    weights: sparse.csr_matrix
    bias_mant: np.ndarray
    bias_exp: np.ndarray
    du: float
    dv: np.ndarray
    vth: np.ndarray
    scale: Optional[float] = None

    @property
    def fixed_point(self) -> bool:
        return self.scale is not None

    @property
    def n_neurons(self) -> int:
        return self.weights.shape[0]

    def populations(self) -> List[np.ndarray]:
        """Neuron indices of each group with equal (dv, vth), one Lava LIF process each, in the
        order of their first neuron."""
        pairs = np.stack([self.dv, self.vth], axis=1)
        _, first, group = np.unique(pairs, axis=0, return_index=True, return_inverse=True)
        group = group.reshape(-1)
        return [np.flatnonzero(group == g) for g in np.argsort(first)]

    def activation(self, current: np.ndarray) -> np.ndarray:
        """The external current I [..., N] as Lava's a_in: float64 as it is, or round(I·s) in fixed point.

        In fixed point, raises :class:`MappingError` when a_in plus the largest possible recurrent
        input could wrap the 24-bit current register.
        """
        current = np.asarray(current, dtype=np.float64)
        if current.shape[-1] != self.n_neurons:
            raise ValueError(f"current has {current.shape[-1]} neurons, the network {self.n_neurons}")
        if not np.isfinite(current).all():
            raise ValueError("the input current holds NaN or infinite values")
        if not self.fixed_point:
            return current
        activation = np.round(current * self.scale).astype(np.int64)
        recurrent = np.abs(self.weights).sum(axis=1).A1.max(initial=0)
        largest = np.abs(activation).max(initial=0) + recurrent
        if largest > ACTIVATION_MAX:
            safe = self.scale * (ACTIVATION_MAX - recurrent) / max(np.abs(activation).max(), 1)
            raise MappingError(
                f"an input current of {np.abs(current).max():.4g} plus the largest recurrent input "
                f"makes |a_in| up to {largest} > {ACTIVATION_MAX} at scale s = {self.scale:.6g}: "
                "Loihi's 24-bit current register would wrap. Map the network with a smaller scale, "
                f"e.g. fixed_point_network(..., scale={math.floor(safe * 0.9):d}) (--scale on the command line)"
            )
        return activation.astype(np.int32)


def _per_neuron(name: str, values: np.ndarray, n: int) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 0:
        values = np.full(n, float(values))
    if values.shape != (n,):
        raise ValueError(f"{name} must be a scalar or [{n}], got shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return values


def _check(recurrent_weight, bias, beta, threshold):
    w = np.asarray(
        recurrent_weight.toarray() if sparse.issparse(recurrent_weight) else recurrent_weight, dtype=np.float64
    )
    if w.ndim != 2 or w.shape[0] != w.shape[1]:
        raise ValueError(f"recurrent_weight must be square [N, N], got shape {w.shape}")
    if not np.isfinite(w).all():
        raise ValueError("recurrent_weight holds NaN or infinite values")
    n = w.shape[0]
    bias = _per_neuron("bias", bias, n)
    beta = _per_neuron("beta", beta, n)
    threshold = _per_neuron("threshold", threshold, n)
    if ((beta < 0) | (beta > 1)).any():
        raise MappingError("beta must lie in [0, 1] (snnTorch clips it there; Lava's dv = 1 - beta)")
    if (threshold <= 0).any():
        raise MappingError("thresholds must be positive: Lava's vth is unsigned")
    return w, bias, beta, threshold


def float_network(recurrent_weight, bias, beta, threshold) -> LavaNetwork:
    """Floating-point mapping: du = 1, dv = 1 - beta, vth = threshold, bias_mant = bias (float64)."""
    w, bias, beta, threshold = _check(recurrent_weight, bias, beta, threshold)
    return LavaNetwork(
        weights=sparse.csr_matrix(w),
        bias_mant=bias,
        bias_exp=np.zeros(len(bias), dtype=np.int64),
        du=1.0,
        dv=1.0 - beta,
        vth=threshold,
    )


def default_scale(recurrent_weight, threshold) -> float:
    """The fixed-point scale s: the largest weight becomes 254 (full 8-bit range), rounded down so
    that the largest threshold is a whole number of units; capped by the 17-bit vth."""
    w = recurrent_weight.toarray() if sparse.issparse(recurrent_weight) else np.asarray(recurrent_weight)
    theta = float(np.max(threshold))
    largest = float(np.abs(w).max(initial=0.0))
    units = VTH_MAX if largest == 0 else min(VTH_MAX, math.floor(WEIGHT_MAX * theta / largest))
    if units < 1:
        raise MappingError(
            f"the largest recurrent weight ({largest:.4g}) is over {WEIGHT_MAX} times the threshold "
            f"({theta:.4g}): no 8-bit fixed-point scale represents both"
        )
    return units / theta


def fixed_point_network(recurrent_weight, bias, beta, threshold, scale: Optional[float] = None) -> LavaNetwork:
    """Loihi 2 fixed-point mapping with scale s (default :func:`default_scale`); see the module docs."""
    w, bias, beta, threshold = _check(recurrent_weight, bias, beta, threshold)
    s = default_scale(w, threshold) if scale is None else float(scale)
    if not s > 0:
        raise MappingError(f"the fixed-point scale must be positive, got {scale}")

    weights = 2 * np.round(w * s / 2)
    if weights.max(initial=0) > WEIGHT_MAX or weights.min(initial=0) < WEIGHT_MIN:
        raise MappingError(
            f"at scale s = {s:.6g} the recurrent weights span [{weights.min():.0f}, {weights.max():.0f}], "
            f"outside the 8-bit range [{WEIGHT_MIN}, {WEIGHT_MAX}]; use a scale <= "
            f"{WEIGHT_MAX / np.abs(w).max():.6g}"
        )
    vth = np.round(threshold * s)
    if vth.max() > VTH_MAX or vth.min() < 1:
        raise MappingError(
            f"at scale s = {s:.6g} the thresholds become {vth.min():.0f}..{vth.max():.0f} units, outside "
            f"Lava's unsigned 17-bit vth range [1, {VTH_MAX}]"
        )
    dv = np.round((1.0 - beta) * DECAY_UNITY)
    if dv.max() >= DECAY_UNITY:
        raise MappingError(
            "beta < 1/8192 needs dv = 4096, which does not fit Loihi's 12-bit dv (0..4095); "
            "use beta >= 1/4096"
        )

    # Bias in v units (shifted 6 bits like a_in and vth), as mantissa · 2^exponent.
    target = bias * s * 2**STATE_SHIFT
    exponent = np.zeros(len(bias), dtype=np.int64)
    too_big = np.abs(np.round(target)) > BIAS_MANTISSA_MAX
    while too_big.any():
        exponent[too_big] += 1
        if exponent.max() > BIAS_EXPONENT_MAX:
            raise MappingError(
                f"a bias of {np.abs(bias).max():.4g} is too large for Loihi's bias "
                f"(13-bit mantissa, exponent <= {BIAS_EXPONENT_MAX}) at scale s = {s:.6g}"
            )
        too_big = np.abs(np.round(target / 2.0**exponent)) > BIAS_MANTISSA_MAX
    mantissa = np.round(target / 2.0**exponent)

    return LavaNetwork(
        weights=sparse.csr_matrix(weights.astype(np.int32)),
        bias_mant=mantissa.astype(np.int32),
        bias_exp=exponent.astype(np.int32),
        du=FIXED_DU,
        dv=dv.astype(np.int32),
        vth=vth.astype(np.int32),
        scale=s,
    )
