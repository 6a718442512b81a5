"""Numpy references of Lava's LIF arithmetic, operation for operation, floating and fixed point.

They run a :class:`~spikemod.hardware.mapping.LavaNetwork` on a batch of input currents without
Lava, in the order Lava's process models compute:

- floating point (``PyLifModelFloat``, ``PySparseModelFloat``), float64:
  a_in = I_t + W·s_{t-1};  u = a_in (du = 1);  v = v·(1 - dv) + u + bias;  s = v > vth;  v[s] = 0;
- fixed point (``PyLifModelBitAcc``, ``PySparseModelBitAcc``), integers:
  a_in = round(I_t·s) + W·s_{t-1};  u = a_in << 6 (du = 4095);
  v = sign·(|v·(4096 - dv)| >> 12) + u + bias_mant·2^bias_exp, clipped to 24 bits;
  s = v > vth << 6;  v[s] = 0.

Each population (:meth:`LavaNetwork.populations`) receives the external current first and then
the recurrent input from each population in turn, each summed over the synapses in column order,
as the Lava network of :mod:`~spikemod.hardware.simulator` adds them, so the float reference
matches Lava bit for bit, membrane included. It is also a fast stand-in for Lava: a
vectorised batch loop instead of one process per population.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

from .mapping import DECAY_UNITY, STATE_SHIFT, LavaNetwork

__all__ = ["reference_run"]

_V_LIMIT = 2**23 - 1


def reference_run(network: LavaNetwork, current: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Simulate ``network`` on the external current [T, B, N] (float, before any quantisation).

    Returns spikes [T, B, N] (bool) and the membrane before the reset [T, B, N] (float64 in
    floating point; integer v units, scale·64 per unit of membrane, in fixed point).
    """
    activation = network.activation(current)
    n_steps, batch, n = activation.shape
    populations = network.populations()
    # blocks[q][p]: synapses from population p to population q, transposed for s_p @ W_qp^T.
    blocks = [[network.weights[q][:, p].T.tocsr() for p in populations] for q in populations]
    fixed = network.fixed_point
    dtype = np.int64 if fixed else np.float64
    if fixed:
        bias = np.left_shift(network.bias_mant.astype(np.int64), network.bias_exp.astype(np.int64))
        vth = np.left_shift(network.vth.astype(np.int64), STATE_SHIFT)
        keep = DECAY_UNITY - network.dv.astype(np.int64)
    else:
        bias, vth, keep = network.bias_mant, network.vth, 1.0 - network.dv
    spikes = np.zeros((n_steps, batch, n), dtype=bool)
    membrane = np.zeros((n_steps, batch, n), dtype=dtype)
    v = np.zeros((batch, n), dtype=dtype)
    for t in range(n_steps):
        previous = spikes[t - 1] if t > 0 else np.zeros((batch, n), dtype=bool)
        a_in = activation[t].astype(dtype)
        for q, target in enumerate(populations):
            for p, source in enumerate(populations):
                if blocks[q][p].nnz:
                    a_in[:, target] += (previous[:, source].astype(dtype) @ blocks[q][p]).astype(dtype)
        if fixed:
            decayed = v * keep
            v = np.sign(decayed) * np.right_shift(np.abs(decayed), 12) + np.left_shift(a_in, STATE_SHIFT) + bias
            v = np.clip(v, -_V_LIMIT, _V_LIMIT)
        else:
            v = v * keep + a_in + bias
        membrane[t] = v
        spikes[t] = v > vth
        v = np.where(spikes[t], 0, v)
    return spikes, membrane
