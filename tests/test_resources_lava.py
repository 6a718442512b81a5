"""Resource counts of a Lava floating-point run equal those of the torch model on the same input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spikemod.config import ModelConfig, RunConfig, TaskConfig
from spikemod.network import ModularNetwork
from spikemod.resources import count_resources, count_spike_trains


@pytest.mark.lava
def test_torch_and_lava_float_counts_agree_exactly():
    from spikemod.hardware.export import describe
    from spikemod.hardware.host import input_current, lava_network
    from spikemod.hardware.simulator import run_lava

    config = RunConfig(
        task=TaskConfig(n_steps=8),
        model=ModelConfig(variant="spiking", n_modules=2, n_neurons=8, synapses=6, beta=0.8, threshold=0.05, init="pytorch"),
    )
    model = ModularNetwork(config.model, n_inputs=5)
    x = torch.rand(8, 3, 2, 5)
    with torch.no_grad():
        out = model(x)
        description = describe(model, config)
    lava_spikes = run_lava(lava_network(description), input_current(description, x).numpy())

    assert out.states.sum() > 20  # the comparison means something only if neurons spike
    np.testing.assert_array_equal(lava_spikes, out.states.numpy() == 1)

    torch_counts = count_resources(model, out, x)
    lava_counts = count_spike_trains(
        lava_spikes,
        description.recurrent_weight != 0,
        description.module_size,
        input_adjacency=description.input_weight != 0,
    )
    for name in ("emitted", "crossing", "synaptic_ops", "input_ops", "neuron_updates"):
        np.testing.assert_array_equal(getattr(lava_counts, name), getattr(torch_counts, name), err_msg=name)
    assert lava_counts.across_ops.sum() > 0  # spikes did cross the interconnect
    assert lava_counts.summary() == torch_counts.summary()
