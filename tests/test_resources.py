"""Resource accounting: hand-counted networks, the network's own cross-spike record, energy, storage."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from spikemod.config import DataConfig, ModelConfig, RunConfig, TaskConfig
from spikemod.connectivity import intra_module_mask
from spikemod.network import ModularNetwork
from spikemod.resources import (
    EnergyModel,
    ResourceCounts,
    count_dense_activity,
    count_resources,
    count_spike_trains,
    format_resources,
    load_resources,
    measure_checkpoint_resources,
    measure_resources,
    resources_from_hdf5,
    resources_to_hdf5,
    save_resources,
)

# Two modules of two neurons: module 0 = {0, 1}, module 1 = {2, 3}. Dense modules without
# self-connections and one interconnect synapse, 0 -> 2 (row = target, column = source).
HAND_ADJACENCY = torch.tensor(
    [
        [0, 1, 0, 0],
        [1, 0, 0, 0],
        [1, 0, 0, 1],
        [0, 0, 1, 0],
    ],
    dtype=torch.bool,
)


def hand_network(n_steps: int) -> tuple[ModularNetwork, torch.Tensor]:
    """A 2 × 2 LIF network with one cross synapse whose spikes can be worked out on paper.

    beta = 0.5, threshold 1. Neuron 0 gets 0.75 per step: U = 0.75, 1.125 (spike), 0.75, 1.125
    (spike), ...: it spikes at t = 1, 3, 5. Its cross synapse (weight 1.5) makes neuron 2 spike one
    step later, at t = 2, 4. Inside-module weights of 0.1 keep neurons 1 and 3 silent.
    """
    cfg = ModelConfig(variant="spiking", n_modules=2, n_neurons=2, synapses=1, beta=0.5, threshold=1.0)
    model = ModularNetwork(cfg, n_inputs=1, n_slots=2, n_heads=1)
    with torch.no_grad():
        model.fixed_recurrent_mask.copy_(HAND_ADJACENCY)
        model.w_rec.copy_(0.1 * HAND_ADJACENCY)
        model.w_rec[2, 0] = 1.5
        model.w_in.copy_(torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 0.5], [0.0, 0.5]]))
        model.b.zero_()
    x = torch.zeros(n_steps, 1, 2, 1)
    x[:, :, 0] = 0.75
    return model, x


def test_hand_network_matches_paper_counts():
    model, x = hand_network(n_steps=6)
    with torch.no_grad():
        out = model(x, static=True)
    spike_times = {n: out.states[:, 0, n].nonzero().flatten().tolist() for n in range(4)}
    assert spike_times == {0: [1, 3, 5], 1: [], 2: [2, 4], 3: []}

    counts = count_resources(model, out, x, encoding="direct", static=True)
    assert counts.emitted.tolist() == [[3, 2]]
    # Neuron 0 reaches module 1; neuron 2 has no synapse into module 0.
    assert counts.crossing.tolist() == [[[0, 0], [3, 0]]]
    assert torch.equal(torch.as_tensor(counts.crossing), out.cross_spikes.sum(0).long())
    # Neuron 0: fan-out 1 inside (to 1) and 1 across (to 2); neuron 2: fan-out 1 inside (to 3).
    assert counts.synaptic_ops.tolist() == [[[3, 0], [3, 2]]]
    assert counts.inside_ops.tolist() == [5] and counts.across_ops.tolist() == [3]
    assert counts.neuron_updates.tolist() == [4 * 6]
    # Three nonzero input weights (neurons 0, 2, 3), evaluated once for static input.
    assert counts.input_kind == "current"
    assert counts.input_ops.tolist() == [[1, 2]]
    moving = count_resources(model, out, x, encoding="direct", static=False)
    assert moving.input_ops.tolist() == [[6, 12]]


def test_plain_arrays_give_the_same_counts_as_the_network():
    model, x = hand_network(n_steps=6)
    with torch.no_grad():
        out = model(x, static=True)
    from_model = count_resources(model, out, x, static=True)
    from_arrays = count_spike_trains(
        out.states.numpy(),
        HAND_ADJACENCY.numpy(),
        2,
        input_adjacency=model.input_weight().detach().numpy(),
        static_input=True,
    )
    for name in ("emitted", "crossing", "synaptic_ops", "input_ops", "neuron_updates"):
        np.testing.assert_array_equal(getattr(from_model, name), getattr(from_arrays, name))


def test_bandwidth_cap_passes_lowest_index_spikes_only():
    # Neurons 0 and 1 (module 0) both reach module 1: 0 -> 2, 1 -> 2, 1 -> 3.
    adjacency = torch.zeros(4, 4, dtype=torch.bool)
    adjacency[2, 0] = adjacency[2, 1] = adjacency[3, 1] = True
    adjacency[1, 0] = True
    spikes = torch.zeros(2, 1, 4)
    spikes[0, 0, [0, 1]] = 1  # both spike at t = 0
    spikes[1, 0, 1] = 1  # neuron 1 alone at t = 1
    free = count_spike_trains(spikes, adjacency, 2)
    assert free.crossing[0, 1, 0] == 3
    assert free.synaptic_ops[0].tolist() == [[1, 0], [1 + 2 + 2, 0]]
    capped = count_spike_trains(spikes, adjacency, 2, bandwidth_cap=1)
    # t = 0: only neuron 0 passes (fan-out 1 across); t = 1: neuron 1 passes (fan-out 2).
    assert capped.crossing[0, 1, 0] == 2
    assert capped.synaptic_ops[0].tolist() == [[1, 0], [1 + 2, 0]]
    assert capped.emitted.tolist() == free.emitted.tolist() == [[3, 0]]


def test_capped_network_counts_match_its_cross_spikes():
    cfg = ModelConfig(variant="spiking", n_neurons=8, synapses=20, threshold=0.05, bandwidth_cap=2, init="pytorch")
    model = ModularNetwork(cfg, n_inputs=5)
    x = torch.rand(7, 3, 2, 5)
    with torch.no_grad():
        out = model(x)
    counts = count_resources(model, out, x)
    assert out.cross_spikes.amax() == 2  # the cap binds in this network
    np.testing.assert_array_equal(counts.crossing, out.cross_spikes.sum(0).long().numpy())


def brute_force_synaptic_ops(spikes: torch.Tensor, mask: torch.Tensor, n: int) -> np.ndarray:
    """Loop over every spike and every synapse: [B, M, M] deliveries (target module, source module)."""
    n_steps, batch, n_total = spikes.shape
    m = n_total // n
    ops = np.zeros((batch, m, m), dtype=np.int64)
    for t, b, source in spikes.nonzero().tolist():
        for target in mask[:, source].nonzero().flatten().tolist():
            ops[b, target // n, source // n] += 1
    return ops


def test_random_network_counts_match_brute_force_and_cross_spikes():
    cfg = ModelConfig(variant="spiking", n_modules=3, n_neurons=6, synapses=4, threshold=0.1, init="pytorch")
    model = ModularNetwork(cfg, n_inputs=5, n_slots=2)
    x = torch.rand(5, 4, 2, 5)
    with torch.no_grad():
        out = model(x)
    counts = count_resources(model, out, x)
    assert counts.emitted.sum() > 10  # the test means something only if neurons spike
    expected = brute_force_synaptic_ops(out.states, model.recurrent_mask(), 6)
    np.testing.assert_array_equal(counts.synaptic_ops, expected)
    np.testing.assert_array_equal(counts.crossing, out.cross_spikes.sum(0).long().numpy())
    assert counts.emitted.tolist() == out.states.unflatten(-1, (3, 6)).sum((0, 3)).long().tolist()


def test_spiking_input_counts_input_spikes_times_fan_out():
    # Input 0 reaches neurons 0 and 1 (module 0); input 1 reaches neurons 1 and 2.
    input_adjacency = torch.tensor([[1, 0], [1, 1], [0, 1], [0, 0]])
    input_spikes = torch.zeros(3, 2, 2)
    input_spikes[:, 0, 0] = 1  # sample 0: input 0 at every step
    input_spikes[1, 1, 1] = 1  # sample 1: input 1 once
    counts = count_spike_trains(
        torch.zeros(3, 2, 4), HAND_ADJACENCY, 2, input_spikes=input_spikes, input_adjacency=input_adjacency
    )
    assert counts.input_kind == "spikes"
    assert counts.input_ops.tolist() == [[6, 0], [1, 1]]


def test_network_with_rate_encoded_input_counts_input_synaptic_ops():
    cfg = ModelConfig(variant="spiking", n_neurons=4, synapses=3)
    model = ModularNetwork(cfg, n_inputs=3)
    x = torch.bernoulli(torch.full((4, 2, 2, 3), 0.5))
    with torch.no_grad():
        out = model(x)
    counts = count_resources(model, out, x, encoding="rate")
    # separate input: every pixel of slot m reaches the 4 neurons of module m.
    expected = x.sum(dim=(0, 3)) * 4
    assert counts.input_ops.tolist() == expected.long().tolist()


def test_fused_input_counts_host_macs_once_per_pixel_and_spikes_per_slot():
    cfg = ModelConfig(variant="spiking", n_neurons=3, synapses=2, input_scheme="fused")
    model = ModularNetwork(cfg, n_inputs=4)
    x = torch.bernoulli(torch.full((5, 2, 2, 4), 0.5))
    with torch.no_grad():
        out = model(x)
    # The host sums the two slots, then one [N, D] product: 3 neurons x 4 pixels per module.
    assert count_resources(model, out, x, static=True).input_ops.tolist() == [[12, 12]] * 2
    # On chip every input spike of either slot reaches all 3 neurons of each module.
    spikes = count_resources(model, out, x, encoding="rate")
    assert spikes.input_ops.tolist() == [[3 * int(n)] * 2 for n in x.sum(dim=(0, 2, 3))]


def test_rate_variant_counts_dense_macs_per_existing_synapse():
    counts = count_dense_activity(5, 3, HAND_ADJACENCY, 2, input_adjacency=torch.ones(4, 7))
    assert counts.variant == "rate" and counts.n_samples == 3
    assert counts.emitted.tolist() == [[10, 10]] * 3
    # Per step: 4 inside synapses, 1 across (0 -> 2); only neuron 0 is eligible to cross.
    assert counts.synaptic_ops[0].tolist() == [[10, 0], [5, 10]]
    assert counts.crossing[0].tolist() == [[0, 0], [5, 0]]
    assert counts.input_ops[0].tolist() == [2 * 7 * 5, 2 * 7 * 5]
    assert counts.neuron_updates.tolist() == [20] * 3


@pytest.mark.parametrize("cap", [None, 2])
def test_interconnect_onset_drops_crossing_and_across_ops_before_it(cap):
    onset = 4
    cfg = ModelConfig(
        variant="spiking", n_modules=3, n_neurons=6, synapses=4, threshold=0.1, init="pytorch",
        bandwidth_cap=cap, interconnect_onset=onset,
    )
    model = ModularNetwork(cfg, n_inputs=5, n_slots=2)
    x = torch.rand(6, 4, 2, 5)
    with torch.no_grad():
        out = model(x)
    counts = count_resources(model, out, x)
    np.testing.assert_array_equal(counts.crossing, out.cross_spikes.sum(0).long().numpy())
    mask = model.recurrent_mask()
    intra = intra_module_mask(3, 6)
    if cap is None:  # inside: every spike; across: only spikes of steps >= onset - 1 (delivered from onset on)
        expected = brute_force_synaptic_ops(out.states, mask & intra, 6)
        expected += brute_force_synaptic_ops(out.states[onset - 2 :], mask & ~intra, 6)
        np.testing.assert_array_equal(counts.synaptic_ops, expected)
    early = count_spike_trains(out.states[: onset - 2], mask, 6, bandwidth_cap=cap)
    assert early.crossing.sum() > 0  # the onset did drop crossing spikes
    always = count_spike_trains(out.states, mask, 6, bandwidth_cap=cap)
    np.testing.assert_array_equal(counts.crossing, always.crossing - early.crossing)
    np.testing.assert_array_equal(counts.across_ops, always.across_ops - early.across_ops)
    np.testing.assert_array_equal(counts.inside_ops, always.inside_ops)
    for onset in (1, 2):  # the default: every spike crosses
        same = count_spike_trains(out.states, mask, 6, bandwidth_cap=cap, interconnect_onset=onset)
        np.testing.assert_array_equal(same.synaptic_ops, always.synaptic_ops)
        np.testing.assert_array_equal(same.crossing, always.crossing)
    with pytest.raises(ValueError, match="interconnect_onset = 0 is invalid"):
        count_spike_trains(out.states, mask, 6, interconnect_onset=0)


def test_rate_counts_with_interconnect_onset():
    # T = 5, onset 4: the activations of steps 3, 4, 5 cross (delivered at steps 4, 5 and after).
    counts = count_dense_activity(5, 3, HAND_ADJACENCY, 2, interconnect_onset=4)
    assert counts.synaptic_ops[0].tolist() == [[10, 0], [3, 10]]
    assert counts.crossing[0].tolist() == [[0, 0], [3, 0]]
    late = count_dense_activity(5, 1, HAND_ADJACENCY, 2, interconnect_onset=9)
    assert late.crossing.sum() == 0 and late.synaptic_ops[0].tolist() == [[10, 0], [0, 10]]
    cfg = ModelConfig(variant="rate", n_neurons=5, synapses=3, interconnect_onset=3)
    model = ModularNetwork(cfg, n_inputs=4)
    x = torch.randn(5, 2, 2, 4)
    with torch.no_grad():
        out = model(x)
    counts = count_resources(model, out, x)
    assert counts.inside_ops.tolist() == [5 * 2 * 5 * 4] * 2
    assert counts.across_ops.tolist() == [4 * 2 * 3] * 2


def test_rate_network_counts_follow_its_masks():
    cfg = ModelConfig(variant="rate", n_neurons=5, synapses=3)
    model = ModularNetwork(cfg, n_inputs=4)
    x = torch.randn(5, 2, 2, 4)
    with torch.no_grad():
        out = model(x)
    counts = count_resources(model, out, x, static=False)
    assert counts.inside_ops.tolist() == [5 * 2 * 5 * 4] * 2  # T · M · n(n-1)
    assert counts.across_ops.tolist() == [5 * 2 * 3] * 2
    assert counts.input_ops.tolist() == [[5 * 5 * 4] * 2] * 2
    with pytest.raises(ValueError, match="rate variant takes current input"):
        count_resources(model, out, x, encoding="rate")


def test_energy_is_counts_times_constants():
    model, x = hand_network(n_steps=6)
    with torch.no_grad():
        out = model(x, static=True)
    e = EnergyModel(synaptic_op=1.0, neuron_update=10.0, spike=100.0, tile_hop=1000.0, mac=10000.0)
    counts = count_resources(model, out, x, static=True, energy_model=e)
    breakdown = counts.energy_breakdown()
    assert breakdown["recurrent"].tolist() == [8.0]  # 5 inside + 3 across
    assert breakdown["input"].tolist() == [30000.0]  # 3 host MACs
    assert breakdown["neuron"].tolist() == [240.0]
    assert breakdown["spike"].tolist() == [500.0]
    assert breakdown["interconnect"].tolist() == [3000.0]
    assert counts.energy.tolist() == [33748.0]
    spike_input = count_spike_trains(
        out.states, HAND_ADJACENCY, 2, input_spikes=torch.ones(6, 1, 1), input_adjacency=torch.ones(4, 1),
        energy_model=e,
    )
    assert spike_input.energy_breakdown()["input"].tolist() == [24.0]  # 6 spikes x fan-out 4
    rate = count_dense_activity(2, 1, HAND_ADJACENCY, 2, energy_model=e)
    assert rate.energy.tolist() == [(8 + 2) * 10000.0]
    assert rate.energy_breakdown()["neuron"].tolist() == [0.0]


def test_default_energy_constants_are_loihi_and_horowitz():
    e = EnergyModel()
    assert (e.synaptic_op, e.neuron_update, e.spike, e.tile_hop, e.mac) == (
        23.6e-12, 81e-12, 1.7e-12, 3.5e-12, 4.6e-12
    )


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: EnergyModel(synaptic_op=-1.0), "EnergyModel.synaptic_op"),
        (lambda: EnergyModel(mac=float("nan")), "EnergyModel.mac"),
        (lambda: count_spike_trains(torch.full((2, 1, 4), 0.5), HAND_ADJACENCY, 2), "only 0 and 1"),
        (lambda: count_spike_trains(torch.zeros(2, 4), HAND_ADJACENCY, 2), r"\[T, B, N\]"),
        (lambda: count_spike_trains(torch.zeros(2, 1, 4), HAND_ADJACENCY, 3), "module_size must divide"),
        (
            lambda: count_spike_trains(torch.zeros(2, 1, 4), torch.ones(3, 3), 2),
            r"adjacency must be \[4, 4\]",
        ),
        (
            lambda: count_spike_trains(
                torch.zeros(2, 1, 4), HAND_ADJACENCY, 2, input_spikes=torch.zeros(3, 1, 2),
                input_adjacency=torch.ones(4, 2),
            ),
            r"input_spikes must be \[T = 2",
        ),
        (
            lambda: count_spike_trains(torch.zeros(2, 1, 4), HAND_ADJACENCY, 2, bandwidth_cap=-1),
            "bandwidth_cap",
        ),
    ],
)
def test_bad_input_is_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_concatenate_hdf5_round_trip_and_format(tmp_path):
    model, x = hand_network(n_steps=6)
    with torch.no_grad():
        out = model(x, static=True)
    one = count_resources(model, out, x, static=True, energy_model=EnergyModel(mac=1e-12))
    both = ResourceCounts.concatenate([one, one])
    assert both.n_samples == 2 and both.summary() == one.summary()
    with pytest.raises(ValueError, match="cannot concatenate"):
        ResourceCounts.concatenate([one, count_dense_activity(6, 1, HAND_ADJACENCY, 2)])

    with h5py.File(tmp_path / "r.h5", "w") as f:
        resources_to_hdf5(f.create_group("resources"), both)
    with h5py.File(tmp_path / "r.h5", "r") as f:
        back = resources_from_hdf5(f["resources"])
        assert f["resources"].attrs["mean_crossing"] == 3.0
    assert back.energy_model == both.energy_model and back.summary() == both.summary()
    np.testing.assert_array_equal(back.synaptic_ops, both.synaptic_ops)
    save_resources(tmp_path / "run.h5", one)
    save_resources(tmp_path / "run.h5", both)  # replaces the group
    assert load_resources(tmp_path / "run.h5").n_samples == 2
    with pytest.raises(ValueError, match="no group 'other'"):
        load_resources(tmp_path / "run.h5", group="other")

    text = format_resources(both)
    assert "spikes emitted:  module 0: 3.0  module 1: 2.0  total: 5.0" in text
    assert "0->1: 3.0  1->0: 0.0" in text
    assert "inside 5.0  across 3.0" in text and "input MACs (host): 3.0" in text


def test_measure_resources_covers_the_data_set_reproducibly():
    config = RunConfig(
        data=DataConfig(dataset="digits", n_test=12),
        task=TaskConfig(encoding="rate", n_steps=4),
        model=ModelConfig(variant="spiking", n_neurons=6, synapses=5, threshold=0.2),
    )
    from spikemod.task import PairDataset

    dataset = PairDataset(config.data, config.task, train=False, seed=0)
    model = ModularNetwork(config.model)
    first = measure_resources(model, dataset, config, batch_size=5)
    second = measure_resources(model, dataset, config, batch_size=5)
    assert first.n_samples == 12 and first.input_kind == "spikes"
    assert first.summary() == second.summary()
    assert first.neuron_updates.tolist() == [12 * 4] * 12
    assert model.training  # the model's mode is restored


def test_measure_checkpoint_resources_stores_next_to_the_checkpoint(tmp_path):
    from spikemod.checkpoint import save_checkpoint

    config = RunConfig(
        data=DataConfig(dataset="digits", n_test=8),
        task=TaskConfig(n_steps=3),
        model=ModelConfig(variant="rate", n_neurons=5, synapses=2),
    )
    path = save_checkpoint(tmp_path / "run.h5", ModularNetwork(config.model), config, {})
    counts, written = measure_checkpoint_resources(path, data={"n_test": 6})
    assert written == path and counts.n_samples == 6 and counts.variant == "rate"
    # Rate, static direct input: per sample 3 steps x (2 x 5 x 4 inside + 2 x 2 across) MACs.
    assert counts.inside_ops.tolist() == [120] * 6 and counts.across_ops.tolist() == [12] * 6
    assert load_resources(path).summary() == counts.summary()


def test_measure_command_prints_and_stores_the_resources(tmp_path, capsys):
    from spikemod.checkpoint import save_checkpoint
    from spikemod.cli import main
    from spikemod.config import MetricConfig

    config = RunConfig(
        data=DataConfig(dataset="digits", n_train=40, n_test=40),
        task=TaskConfig(n_steps=4),
        model=ModelConfig(variant="spiking", n_neurons=6, synapses=3, threshold=0.2),
        metrics=MetricConfig(metrics=("correlation",)),
    )
    path = save_checkpoint(tmp_path / "run.h5", ModularNetwork(config.model), config, {})
    assert main(["measure", str(path), "--last-step", "--n-test", "30"]) == 0
    printed = capsys.readouterr().out
    assert "Resources per inference (spiking, T = 4, mean over 30 samples)" in printed
    assert "estimated energy" in printed
    assert load_resources(path).n_samples == 30
