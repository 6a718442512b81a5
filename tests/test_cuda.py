"""The whole run on a CUDA GPU: training, every metric, resources and checkpoints (skipped without one).

CI has no GPU; these run wherever torch sees one (``pytest tests/test_cuda.py``). GPU and CPU sum
in other orders, so trained numbers differ between them; what must agree exactly is everything
drawn on the CPU before training (the connectivity, hence Q) and the shape of the stored result.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from spikemod.checkpoint import load_checkpoint, save_checkpoint
from spikemod.config import DataConfig, MetricConfig, ModelConfig, RunConfig, TrainConfig
from spikemod.presets import with_preset
from spikemod.run import run_chunk

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

SMALL = RunConfig(
    data=DataConfig(dataset="digits"),
    model=ModelConfig(variant="spiking", n_neurons=8, p=0.1),
    train=TrainConfig(epochs=1),
    metrics=MetricConfig(readout_epochs=1, metrics=("retraining", "ablation", "correlation", "weight_mask")),
)


@pytest.mark.parametrize(
    "config",
    [
        SMALL,
        SMALL.replace(model={"variant": "rate"}),
        SMALL.replace(
            task={"n_steps": 5, "random_onset": True, "noise_ratio": 0.4},
            metrics={"metrics": ("retraining", "ablation"), "onset_pairs": [[2, 4], [4, 2]]},
        ),
        with_preset(SMALL, "extreme-sparsity").replace(
            data={"dataset": "digits"},
            model={"n_neurons": 8, "bottleneck": 5},
            train={"epochs": 1},
            metrics={"metrics": ("bottleneck", "weight_mask", "correlation"), "bottleneck_epochs": 1},
        ),
    ],
    ids=["spiking", "rate", "random-onset", "extreme-sparsity"],
)
def test_a_run_on_the_gpu_stores_what_a_run_on_the_cpu_stores(config, tmp_path):
    saved = []

    def keep(run_config: RunConfig, trained) -> None:
        path = tmp_path / f"{len(saved)}.h5"
        save_checkpoint(path, trained.model, run_config, trained.history)
        saved.append(path)

    on_gpu = run_chunk([config], on_trained=keep, device="cuda")[0]
    on_cpu = run_chunk([config])[0]
    assert set(pd.json_normalize(on_gpu).columns) == set(pd.json_normalize(on_cpu).columns)  # as load_results flattens
    assert on_gpu["q"] == on_cpu["q"]  # the connectivity is drawn on the CPU
    assert np.isfinite(on_gpu["accuracy"]).all() and ((on_gpu["accuracy"] >= 0) & (on_gpu["accuracy"] <= 1)).all()
    loaded = load_checkpoint(saved[0])
    assert all(p.device.type == "cpu" for p in loaded.model.parameters())
