"""Export of spiking modular networks to Lava and their Loihi-style simulation (spikemod.hardware).

Tests marked ``lava`` run Lava's CPU simulator (tiny networks, few steps); the others check the
export, the fixed-point mapping and the host computations without Lava.
"""

from __future__ import annotations

import subprocess
import sys
import os
from dataclasses import replace

import h5py
import numpy as np
import pytest
import torch
from numerics import assert_same_up_to_order, assert_spikes_decided, decided_samples

from spikemod.checkpoint import save_checkpoint
from spikemod.config import MetricConfig, RunConfig
from spikemod.hardware.export import (
    DescriptionError,
    ExportError,
    describe,
    load_description,
    save_description,
)
from spikemod.hardware.host import input_current, lava_network, read_out, torch_run
from spikemod.hardware.mapping import (
    ACTIVATION_MAX,
    WEIGHT_MAX,
    WEIGHT_MIN,
    MappingError,
    fixed_point_network,
    float_network,
)
from spikemod.hardware.reference import reference_run
from spikemod.training import build_model, train

N_INPUTS = 20


def _config(n_steps: int = 10, **model) -> RunConfig:
    fields = dict(variant="spiking", n_neurons=10, init="uniform", init_scale=0.3)
    fields.update(model)
    return RunConfig().replace(model=fields, task=dict(n_steps=n_steps))


def _random_input(config: RunConfig, batch: int = 12, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return 2 * torch.rand(config.n_steps, batch, 2, N_INPUTS, generator=generator)


def _random_modular_arrays(seed: int, n_modules: int = 3, n: int = 8, p: float = 0.2):
    """A random modular LIF network as plain arrays; module 1 has its own beta, module 2 its own threshold."""
    rng = np.random.default_rng(seed)
    total = n_modules * n
    weights = np.zeros((total, total))
    for i in range(n_modules):
        for j in range(n_modules):
            block = rng.normal(0.0, 0.4, (n, n))
            block = block * ~np.eye(n, dtype=bool) if i == j else block * (rng.random((n, n)) < p)
            weights[i * n : (i + 1) * n, j * n : (j + 1) * n] = block
    bias = rng.normal(0.0, 0.1, total)
    beta = np.repeat([0.9, 0.75, 0.9], n)[:total]
    threshold = np.repeat([1.0, 1.0, 1.5], n)[:total]
    return weights.astype(np.float32).astype(np.float64), bias, beta, threshold, rng


# ----- exact floating-point mapping -----

NETWORKS = {
    "single-synapse": dict(synapses=1),
    "all-to-all": dict(p=1.0),
    "sparse-3-modules-shared-bottleneck": dict(n_modules=3, p=0.1, readout_scheme="shared", bottleneck=3),
    "fused-count-readout": dict(p=0.2, input_scheme="fused", spike_readout="count"),
    "deep-r-shared-input": dict(p=0.3, deep_r=True, input_scheme="shared"),
}


@pytest.mark.lava
@pytest.mark.parametrize("name", list(NETWORKS))
def test_lava_float_reproduces_torch_spike_trains_exactly(name):
    from spikemod.hardware.simulator import run_lava

    # seed 1: the single synapse's source neuron spikes (with seeds 0 and 4 it stays silent)
    config = _config(**NETWORKS[name]).replace(seed=1)
    model = build_model(config, n_inputs=N_INPUTS)
    x = _random_input(config)
    with torch.no_grad():
        output = model(x)
    assert 0.05 < output.states.mean() < 0.6, "the test network must actually spike"
    assert output.cross_spikes.sum() > 0, "spikes must cross the interconnect"
    description = describe(model, config)
    current = input_current(description, x).numpy()

    spikes = run_lava(lava_network(description), current, batch_size=5)  # 3 compiled networks

    torch_spikes = output.states.numpy().astype(bool)
    assert spikes.shape == torch_spikes.shape
    assert (spikes == torch_spikes).mean() == 1.0
    readout = read_out(description, torch.from_numpy(spikes))
    assert torch.equal(readout.logits, output.logits)
    assert torch.equal(readout.predictions(), output.predictions())


@pytest.mark.lava
def test_modules_with_different_beta_run_as_separate_processes_and_stay_exact():
    from spikemod.hardware.simulator import run_lava

    config = _config(n_modules=3, p=0.2, learn_beta=True)
    model = build_model(config, n_inputs=N_INPUTS)
    with torch.no_grad():
        model.lif.beta.copy_(torch.tensor([0.9, 0.8, 0.9]).repeat_interleave(10))
    x = _random_input(config)
    with torch.no_grad():
        output = model(x)
    description = describe(model, config)
    network = lava_network(description)
    assert [len(p) for p in network.populations()] == [20, 10]  # modules 0 and 2 share a process

    spikes = run_lava(network, input_current(description, x).numpy())

    assert (spikes == output.states.numpy().astype(bool)).all()


@pytest.mark.numerics
def test_snntorch_reference_and_host_readout_equal_the_model():
    config = _config(n_steps=6, p=0.3, bottleneck=4)
    model = build_model(config, n_inputs=N_INPUTS)
    x = _random_input(config)
    with torch.no_grad():
        output = model(x)
    description = describe(model, config)
    spikes, membrane = torch_run(description, input_current(description, x))
    assert torch.equal(spikes, output.states)
    assert torch.equal(membrane, output.membrane)
    readout = read_out(description, spikes)
    assert torch.equal(readout.logits, output.logits)
    assert torch.equal(readout.module_logits, output.module_logits)
    assert torch.equal(readout.bottleneck, output.bottleneck)


@pytest.mark.numerics
def test_float_reference_follows_the_model_dynamics():
    config = _config(p=0.5)
    model = build_model(config, n_inputs=N_INPUTS)
    x = _random_input(config)
    with torch.no_grad():
        output = model(x)
    description = describe(model, config)
    spikes, membrane = reference_run(lava_network(description), input_current(description, x).numpy())
    n_terms = 2 * N_INPUTS + 20  # float32 torch against the float64 reference: input pixels, sources
    assert_spikes_decided(output.membrane, config.model.threshold, n_terms)
    assert (spikes == output.states.numpy().astype(bool)).all()
    assert_same_up_to_order(output.membrane, torch.from_numpy(membrane), n_terms)


# ----- Lava against the numpy references -----


@pytest.mark.lava
@pytest.mark.parametrize("fixed_point", [False, True], ids=["float", "fixed"])
def test_lava_matches_numpy_reference_bit_for_bit(fixed_point):
    from spikemod.hardware.simulator import run_lava

    weights, bias, beta, threshold, rng = _random_modular_arrays(seed=1)
    current = rng.normal(0.4, 0.6, (12, 6, len(bias)))
    build = fixed_point_network if fixed_point else float_network
    network = build(weights, bias, beta, threshold)
    assert len(network.populations()) == 3

    expected, _ = reference_run(network, current)
    spikes = run_lava(network, current)

    assert 0.05 < expected.mean() < 0.6
    assert (spikes == expected).all()


@pytest.mark.lava
def test_batched_and_per_sample_runs_agree():
    from spikemod.hardware.simulator import LavaTiming, run_lava, run_lava_per_sample

    weights, bias, beta, threshold, rng = _random_modular_arrays(seed=2, n_modules=2)
    network = fixed_point_network(weights, bias, beta, threshold)
    current = rng.normal(0.4, 0.6, (8, 5, len(bias)))
    expected, _ = reference_run(network, current)

    batched_timing, per_sample_timing = LavaTiming(), LavaTiming()
    batched = run_lava(network, current, batch_size=2, timing=batched_timing)
    per_sample = run_lava_per_sample(network, current[:, :3], timing=per_sample_timing)

    assert (batched == expected).all()
    assert (per_sample == expected[:, :3]).all()
    assert (batched_timing.networks, batched_timing.run_calls) == (3, 3)
    assert (per_sample_timing.networks, per_sample_timing.run_calls) == (1, 3)


@pytest.mark.lava
def test_a_failing_lava_process_gives_a_readable_error(monkeypatch):
    from lava.proc.lif.models import PyLifModelFloat

    from spikemod.hardware.simulator import LavaSimulationError, run_lava

    def broken(self):
        raise ValueError("injected failure in the LIF model")

    monkeypatch.setattr(PyLifModelFloat, "run_spk", broken)
    weights, bias, beta, threshold, rng = _random_modular_arrays(seed=3, n_modules=2)
    network = float_network(weights, bias, np.full(len(bias), 0.9), np.ones(len(bias)))
    with pytest.raises(LavaSimulationError, match="failed to run the floating-point network.*injected failure"):
        run_lava(network, rng.normal(size=(4, 2, len(bias))))


# ----- fixed point -----


def test_fixed_point_quantisation_follows_the_recipe():
    weights, bias, beta, threshold, _ = _random_modular_arrays(seed=4)
    network = fixed_point_network(weights, bias, beta, threshold)
    w = network.weights.toarray()
    s = network.scale
    assert w.dtype == np.int32 and (w % 2 == 0).all()
    assert WEIGHT_MIN <= w.min() and w.max() <= WEIGHT_MAX
    assert np.abs(w).max() >= WEIGHT_MAX - 2  # the weights use the whole 8-bit range
    np.testing.assert_array_equal(w, 2 * np.round(weights * s / 2))
    np.testing.assert_array_equal(network.vth, np.round(threshold * s))
    assert abs(threshold.max() * s - network.vth.max()) < 1e-9  # the largest threshold is exact
    np.testing.assert_array_equal(network.dv, np.round((1 - beta) * 4096))
    assert network.du == 4095
    effective_bias = network.bias_mant.astype(np.int64) << network.bias_exp
    np.testing.assert_allclose(effective_bias, bias * s * 64, atol=0.5 * 2 ** network.bias_exp.max())
    assert np.abs(network.bias_mant).max() <= 4095
    current = np.array([[[0.26] * len(bias)]])
    np.testing.assert_array_equal(network.activation(current), np.round(current * s))


def test_fixed_point_range_errors_name_the_fix():
    weights, bias, beta, threshold, _ = _random_modular_arrays(seed=5)
    network = fixed_point_network(weights, bias, beta, threshold)
    huge = np.full((1, 1, len(bias)), 2.0 * ACTIVATION_MAX / network.scale)
    with pytest.raises(MappingError, match="24-bit current register.*smaller scale"):
        network.activation(huge)
    with pytest.raises(MappingError, match="12-bit dv"):
        fixed_point_network(weights, bias, np.zeros_like(beta), threshold)
    with pytest.raises(MappingError, match="8-bit range"):
        fixed_point_network(weights, bias, beta, threshold, scale=10 * network.scale)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small spiking network trained briefly on the offline digits pairs, and its checkpoint."""
    config = RunConfig().replace(
        data=dict(dataset="digits"),
        task=dict(n_steps=6),
        model=dict(variant="spiking", n_neurons=25, p=0.1),
        train=dict(epochs=5, batch_size=32, lr=0.005),
    )
    result = train(config, progress=False)
    path = save_checkpoint(tmp_path_factory.mktemp("trained") / "run.h5", result.model, config, result.history)
    return result, config, path


@pytest.mark.lava
def test_trained_network_in_fixed_point_keeps_accuracy_and_spike_counts(trained):
    from spikemod.hardware.fidelity import TaskInputs, available_backends, fidelity_report, simulate, task_inputs
    from spikemod.task import PairDataset

    result, config, _ = trained
    description = describe(result.model, config)
    test_set = PairDataset(config.data, config.task, train=False, seed=config.seed)
    train_set = PairDataset(replace(config.data, n_train=300), config.task, train=True, seed=config.seed)
    test_inputs = task_inputs(description, test_set)
    report = fidelity_report(
        description,
        test_inputs,
        train_inputs=task_inputs(description, train_set),
        metrics=MetricConfig(metrics=("correlation",), per_step=False),
    )

    torch_accuracy = report.simulations["torch"].accuracy
    assert (torch_accuracy > 0.2).all(), f"the network must be trained (chance 0.1), got {torch_accuracy}"
    np.testing.assert_allclose(torch_accuracy, result.test_accuracy.numpy(), atol=1e-6)
    assert report.agreement["lava-float"].identical_bits == 1.0
    np.testing.assert_array_equal(report.simulations["lava-float"].accuracy, torch_accuracy)
    fixed = report.agreement["lava-fixed"]
    assert np.abs(report.simulations["lava-fixed"].accuracy - torch_accuracy).max() <= 0.03
    assert fixed.count_correlation >= 0.9
    assert "lava-fixed" in report.table() and "scale s =" in report.table()
    f_torch = report.specialization["torch"]["correlation"]
    assert np.isfinite(f_torch)
    assert report.specialization["lava-float"]["correlation"] == f_torch  # identical spikes, identical F
    assert abs(report.specialization["lava-fixed"]["correlation"] - f_torch) < 0.1
    if "nir" in available_backends() or os.environ.get("SPIKEMOD_REQUIRE_NIR") == "1":
        # The NIR round trip (a file written and read back) sums the recurrent current by module
        # blocks: its bits equal torch's on every sample whose membranes are all decided, and the
        # few undecided samples may flip on another CPU, so the whole report is held to near-equality.
        membrane = torch_run(description, torch.from_numpy(test_inputs.current))[1]
        keep = decided_samples(membrane, torch.from_numpy(description.neuron_threshold()), description.n_total + 1)
        assert keep.float().mean() >= 0.5, f"only {int(keep.sum())} of {len(keep)} test pairs are decided"
        decided = TaskInputs(test_inputs.current[:, keep.numpy()], test_inputs.digits[keep], test_inputs.targets[keep])
        np.testing.assert_array_equal(simulate(description, decided, "nir").spikes, simulate(description, decided, "torch").spikes)
        assert report.agreement["nir"].identical_bits >= 0.999
        assert np.abs(report.simulations["nir"].accuracy - torch_accuracy).max() <= 0.01
        assert abs(report.specialization["nir"]["correlation"] - f_torch) < 0.05
        assert "nir" in report.table()


# ----- export files and errors -----


def test_description_round_trips_through_hdf5(tmp_path):
    config = _config(p=0.2, bottleneck=2, readout_scheme="shared")
    description = describe(build_model(config, n_inputs=N_INPUTS), config)
    loaded = load_description(save_description(tmp_path / "net.h5", description))
    assert loaded.config == config
    for name, array in description.arrays().items():
        np.testing.assert_array_equal(loaded.arrays()[name], array, err_msg=name)


def test_unexportable_models_fail_with_clear_errors():
    config = _config(learn_beta=True)
    model = build_model(config, n_inputs=N_INPUTS)
    with torch.no_grad():
        model.lif.beta[3] = 0.5
    with pytest.raises(ExportError, match="beta differs between the neurons of module 0"):
        describe(model, config)

    config = _config(bandwidth_cap=2)
    with pytest.raises(ExportError, match="bandwidth cap"):
        describe(build_model(config, n_inputs=N_INPUTS), config)

    config = _config(interconnect_onset=3)
    with pytest.raises(ExportError, match="interconnect onset at step 3 has no Lava equivalent"):
        describe(build_model(config, n_inputs=N_INPUTS), config)

    config = _config(variant="rate")
    with pytest.raises(ExportError, match="only spiking networks"):
        describe(build_model(config, n_inputs=N_INPUTS), config)


def test_corrupted_or_mismatched_files_fail_with_clear_errors(tmp_path):
    config = _config()
    path = save_description(tmp_path / "net.h5", describe(build_model(config, n_inputs=N_INPUTS), config))

    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(DescriptionError, match="not a readable HDF5 file"):
        load_description(truncated)

    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.attrs["format"] = "spikemod-checkpoint"
    with pytest.raises(DescriptionError, match="not a spikemod Lava network description"):
        load_description(tmp_path / "other.h5")

    with h5py.File(path, "a") as f:
        f.attrs["format_version"] = 99
    with pytest.raises(DescriptionError, match="format 99"):
        load_description(path)

    with h5py.File(path, "a") as f:
        f.attrs["format_version"] = 1
        del f["recurrent_weight"]
        f["recurrent_weight"] = np.zeros((5, 5), dtype=np.float32)
    with pytest.raises(DescriptionError, match=r"recurrent_weight has shape \(5, 5\).*\(20, 20\)"):
        load_description(path)

    with h5py.File(path, "a") as f:
        del f["bias"]
    with pytest.raises(DescriptionError, match="incomplete"):
        load_description(path)

    with pytest.raises(DescriptionError, match="does not exist"):
        load_description(tmp_path / "missing.h5")


# ----- commands -----


@pytest.mark.lava
def test_export_and_simulate_commands(trained, tmp_path, capsys):
    from spikemod.cli import main
    from spikemod.h5tree import read_tree

    _, config, checkpoint = trained
    net = tmp_path / "net.h5"
    assert main(["export", str(checkpoint), "--to", "lava", "--out", str(net)]) == 0
    assert main(["simulate", str(net), "--n-test", "40", "--batch-size", "25"]) == 0
    assert main(["simulate", str(net), "--fixed-point", "--n-test", "40"]) == 0
    printed = capsys.readouterr().out
    assert "lava-fixed" in printed and "lava-float" in printed

    n_total = config.model.n_modules * config.model.n_neurons
    with h5py.File(tmp_path / "net.simulation.h5", "r") as f:
        torch_counts = f["torch/spike_counts"][()]
        assert torch_counts.shape == (40, n_total)
        np.testing.assert_array_equal(f["lava_float/spike_counts"][()], torch_counts)
        assert f["lava_fixed/spike_counts"].shape == (40, n_total)
        assert f["samples/targets"].shape == (40, 2)

    # spikemod measure on an exported network: the metric suite on each backend's spike counts
    out = tmp_path / "measured.h5"
    assert main(["measure", str(net), "--n-train", "200", "--n-test", "40", "--out", str(out)]) == 0
    assert "F retraining" in capsys.readouterr().out
    with h5py.File(out, "r") as f:
        float_scores = read_tree(f["fidelity/lava_float/specialization"])
        torch_scores = read_tree(f["fidelity/torch/specialization"])
    assert set(float_scores) >= {"retraining", "ablation", "correlation"}
    assert float_scores == torch_scores  # float Lava is spike-exact, so its F equals torch's

    # --metrics, --last-step and --seed apply to an exported network too
    argv = ["measure", str(net), "--n-train", "200", "--n-test", "40", "--out", str(out)]
    assert main(argv + ["--metrics", "ablation", "--last-step", "--seed", "5"]) == 0
    with h5py.File(out, "r") as f:
        chosen = read_tree(f["fidelity/torch/specialization"])
    assert set(chosen) == {"ablation"}
    capsys.readouterr()
    assert main(argv + ["--metrics", "weight_mask"]) == 2
    assert "leave weight_mask out of --metrics" in capsys.readouterr().err

    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not an hdf5 file")
    assert main(["simulate", str(bad)]) == 1
    assert "not a readable HDF5 file" in capsys.readouterr().err


def test_core_package_never_imports_lava():
    code = (
        "import sys, spikemod.cli, spikemod.network, spikemod.training, spikemod.metrics.suite\n"
        "spikemod.cli.build_parser()\n"
        "assert not [m for m in sys.modules if m.split('.')[0] == 'lava'], 'core imported lava'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.lava
def test_measure_on_a_checkpoint_and_on_its_export_give_the_same_torch_F_on_a_noisy_task(tmp_path):
    """Both commands draw the split's input noise from the same stream (spikemod.seeding)."""
    from spikemod.hardware.commands import export_checkpoint, fidelity_of_description
    from spikemod.metrics.suite import measure_checkpoint

    config = RunConfig().replace(
        data=dict(dataset="digits", n_train=300, n_test=150),
        task=dict(n_steps=6, noise_ratio=0.4),
        model=dict(variant="spiking", n_neurons=12, p=0.2),
        train=dict(epochs=2, batch_size=32, lr=0.005),
        metrics=dict(metrics=("retraining", "ablation", "correlation"), readout_epochs=2),
    )
    result = train(config, progress=False)
    checkpoint = save_checkpoint(tmp_path / "run.h5", result.model, config, result.history)
    from_checkpoint, _ = measure_checkpoint(checkpoint, out=tmp_path / "measured.h5")
    _, net = export_checkpoint(checkpoint, tmp_path / "net.h5")
    report, _ = fidelity_of_description(net, specialization=True)

    assert report.specialization["torch"] == from_checkpoint.specialization()
    # not vacuous: another seed (other noise, other readouts) gives another F
    reseeded, _ = measure_checkpoint(checkpoint, out=tmp_path / "other.h5", seed=1)
    assert reseeded.specialization() != from_checkpoint.specialization()


@pytest.mark.lava
def test_fidelity_scores_the_reshuffled_correlation_with_matched_pairs_and_says_so(tmp_path):
    from spikemod.hardware.commands import export_checkpoint, fidelity_of_description

    config = RunConfig().replace(
        data=dict(dataset="digits", n_train=200, n_test=100),
        task=dict(n_steps=4),
        model=dict(variant="spiking", n_neurons=8, p=0.2),
        train=dict(epochs=1, batch_size=32),
        metrics=dict(metrics=("correlation",), correlation_procedure="reshuffled", correlation_batches=2),
    )
    result = train(config, progress=False)
    checkpoint = save_checkpoint(tmp_path / "run.h5", result.model, config, result.history)
    _, net = export_checkpoint(checkpoint, tmp_path / "net.h5")
    report, _ = fidelity_of_description(net, specialization=True)
    assert "correlation" in report.specialization["torch"]
    assert report.notes and "matched pairs" in report.notes[0] and "matched pairs" in report.table()
