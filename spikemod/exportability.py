"""What an exact export of a trained spiking network needs, whatever the target (Lava, NIR).

Both targets run the LIF step with reset to zero and deliver every spike of step t at step t + 1
over fixed connections, with one β and one θ per group of neurons (a Lava process, a NIR node).
So neither can carry the rate variant, a bandwidth cap, a late interconnect onset, or β and θ that
differ between the neurons of one module.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from .config import RunConfig

__all__ = ["export_problem", "module_value_problem"]


def export_problem(model, config: RunConfig, target: str, edge: str, connections: str) -> Optional[str]:
    """Why ``model`` cannot be exported exactly to ``target``, with the fix, or None.

    ``edge`` and ``connections`` name the target's connections in the messages (Lava: "Sparse",
    "Sparse connections"; NIR: "a Linear edge", "Linear edges").
    """
    cfg = config.model
    if getattr(model, "config", None) != cfg:
        return "the model was not built from config.model; pass the RunConfig it was trained with"
    if cfg.variant != "spiking":
        return (
            f"only spiking networks can be exported to {target}: this is a rate (tanh) network "
            "(model.variant = 'rate'); train it with variant='spiking'"
        )
    if cfg.bandwidth_cap is not None:
        return (
            f"a bandwidth cap ({cfg.bandwidth_cap} spikes per step and direction) has no {target} "
            f"equivalent: {edge} delivers every spike. Export a network trained with bandwidth_cap=None"
        )
    if cfg.interconnect_onset != 1:
        return (
            f"an interconnect onset at step {cfg.interconnect_onset} has no {target} equivalent: the "
            f"{connections} between modules have no time-dependent switch and deliver from step 1 on. "
            "Export a network trained with interconnect_onset=1"
        )
    return None


def module_value_problem(name: str, values: np.ndarray, n_modules: int) -> Optional[str]:
    """Which module's neurons differ in ``values`` [N] (a per-neuron ``name``, e.g. beta), or None
    when each module has one value: "beta differs between the neurons of module 1 (from a to b)"."""
    per_module = values.reshape(n_modules, -1)
    for m in range(n_modules):
        if not (per_module[m] == per_module[m, 0]).all():
            return (
                f"{name} differs between the neurons of module {m} (from {per_module[m].min():.6g} to "
                f"{per_module[m].max():.6g})"
            )
    return None
