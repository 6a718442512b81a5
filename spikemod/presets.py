"""Named starting points for a run config: spikemod's ``default``, the "Dynamics" code's
``reference`` and the "Extreme sparsity" paper's ``extreme-sparsity``.

``reference`` reproduces the "Dynamics" reference code (dynspec at ddf3d5c; every item is listed
with its file and function in the project's reference audit):

- training: 30 epochs keeping the final state, AdamW lr 1e-3 and weight decay 1e-5, batches of
  256 with drop_last, structured noise r = 0.4 at training, test and metric time, no recurrent
  bias, readout init bound 1/√(M·n) (its masked Linear(M·n -> M·C));
- metrics: one retraining readout per (subset, digit) shared over all steps and trained on the
  summed per-step losses for 3 epochs on fresh input noise each epoch (its early stop never
  fires: ``readout_stop_accuracy`` 1), F^m in the ratio form, the ablation scored on the accuracy
  that remains, and the correlation re-run on reshuffled inputs over 10 test batches of 256,
  its M̄ unclipped;
- the fused pathway is the ``concat`` readout (:data:`FUSED_READOUT`); the papers' text is
  followed where the code has the normalisation's precedence bug.

The spiking variant takes the same procedure; its neuron model and LIF init stay spikemod's (the
reference has no spiking network).

``extreme-sparsity`` follows the "Extreme sparsity" paper's text and its "Training parameters"
table: two modules of n = 100 with separate input and readouts (competitive max), T = 5 (the
variant's T for spiking), the parity target alone with (D1 − D0) mod 10 ∉ {0, 1}, init U(±0.1)
(spiking: its own uniform bound), a Deep-R interconnect (Adam with betas (0.95, 0.999), learning
rate 0.1 at p = 0 falling geometrically to 0.01 at p = 1), modules trained with Adadelta 0.5 for
5 epochs, the final state kept; metrics at the last step: the weight mask (q = 5%, SGD 0.1, one
epoch) and the correlation, and on networks with a 5-unit bottleneck (7 epochs, set by
``experiments/extreme_sparsity.py``) the bottleneck metric (Adadelta 0.5, 5 epochs). The table's
"betas 0.9/0.95" is read as Adadelta's ρ = 0.9 (PyTorch's default) and Adam's β₁ = 0.95. Every choice is a config field of its own, so a run may take
the preset and then change one field to see what that field moves.
"""

from __future__ import annotations

from typing import Any, Dict

from .config import PRESETS, ConfigError, RunConfig

__all__ = ["OVERRIDES", "FUSED_READOUT", "with_preset"]

#: The fields each preset sets, by config section.
OVERRIDES: Dict[str, Dict[str, Dict[str, Any]]] = {
    "default": {},
    "reference": {
        "task": {"noise_ratio": 0.4},
        "model": {"hidden_bias": False, "readout_fan_in": "network"},
        "train": {
            "epochs": 30,
            "keep": "final",
            "drop_last": True,
            "optimizer": "adamw",
            "lr": 1e-3,
            "weight_decay": 1e-5,
            "batch_size": 256,
            "loss": "deciding",
        },
        "metrics": {
            "readout_time": "shared",
            "readout_epochs": 3,
            "readout_hidden": 30,
            "readout_stop_accuracy": 1.0,
            "module_score": "ratio",
            "clip_correlation": False,
            "ablation_score": "remaining",
            "readout_noise": "fresh",
            "correlation_procedure": "reshuffled",
            "correlation_batches": 10,
        },
    },
    "extreme-sparsity": {
        "task": {"targets": "parity", "exclude_adjacent": True, "n_steps": None, "noise_ratio": 0.0},
        "model": {"n_neurons": 100, "init": "uniform", "deep_r": True, "input_scheme": "separate", "readout_scheme": "separate"},
        "train": {
            "optimizer": "adadelta",
            "lr": 0.5,
            "epochs": 5,
            "keep": "final",
            "deep_r_lr": 0.1,
            "deep_r_lr_final": 0.01,
            "deep_r_betas": (0.95, 0.999),
        },
        "metrics": {"metrics": ("weight_mask", "correlation"), "per_step": False, "bottleneck_epochs": 5, "bottleneck_lr": 0.5},
    },
}
assert tuple(OVERRIDES) == PRESETS

#: The readout scheme of the papers' fused pathway (separate input, one readout) in each preset.
FUSED_READOUT = {"default": "shared", "reference": "concat"}


def with_preset(config: RunConfig, name: str) -> RunConfig:
    """``config`` with the fields of preset ``name`` set and ``preset`` = ``name``."""
    if name not in OVERRIDES:
        raise ConfigError(f"unknown preset {name!r}: use one of {', '.join(OVERRIDES)}")
    return config.replace(preset=name, **OVERRIDES[name])
