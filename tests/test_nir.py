"""NIR export of spiking modular networks (spikemod.nir): the round trip write → nir.read → import →
run gives the model's spikes bit for bit; the file holds every array exactly; unexportable models
fail with the fix; snnTorch's importer is guarded on the same layout."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from numerics import assert_spikes_decided, decided_samples

if os.environ.get("SPIKEMOD_REQUIRE_NIR") != "1":  # CI sets it: there a missing NIR fails
    pytest.importorskip("nir", reason="NIR export needs the optional extra 'nir' (nir==1.0.8): pip install 'spikemod[nir]'")
    pytest.importorskip("nirtorch", reason="NIR import needs the optional extra 'nir' (nirtorch==2.6)")

import nir  # noqa: E402
import snntorch  # noqa: E402

from spikemod.config import ConfigError, RunConfig  # noqa: E402
from spikemod.nir import DT, NIRExportError, export_nir, nir_run, nir_spikes  # noqa: E402
from spikemod.task import PairDataset, network_input  # noqa: E402
from spikemod.training import build_model, train  # noqa: E402

N_INPUTS = 20
BETAS = (0.9, 0.75, 0.8)
THRESHOLDS = (1.0, 1.5, 0.8)


def _config(n_steps: int = 10, seed: int = 1, **model) -> RunConfig:
    fields = dict(variant="spiking", n_modules=3, n_neurons=8, init="uniform", init_scale=0.3)
    fields.update(model)
    return RunConfig().replace(model=fields, task=dict(n_steps=n_steps), seed=seed)


def _model(config: RunConfig):
    """The network of ``config``; with learnable β/θ, one value per module (BETAS, THRESHOLDS)."""
    model = build_model(config, n_inputs=N_INPUTS)
    n = config.model.n_neurons
    with torch.no_grad():
        for name, values in (("beta", BETAS), ("threshold", THRESHOLDS)):
            parameter = getattr(model.lif, name)
            if parameter.dim() == 1:
                parameter.copy_(torch.tensor(values).repeat_interleave(n))
    return model


def _n_terms(model, x: torch.Tensor) -> int:
    """Products summed into one current: the input pixels and the recurrent sources."""
    return x[0, 0].numel() + model.n_modules * model.n_neurons


def _decided(model, x: torch.Tensor) -> torch.Tensor:
    """The samples of x [T, B, ...] whose spikes are decided (every membrane further from θ than
    another summation order can move it), so that bits may be compared exactly on any CPU."""
    with torch.no_grad():
        keep = decided_samples(model(x).membrane, model.threshold(), _n_terms(model, x))
    assert keep.float().mean() >= 0.5, f"only {int(keep.sum())} of {len(keep)} samples are decided"
    return x[:, keep]


def _random_input(config: RunConfig, model, batch: int = 16) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return _decided(model, 2 * torch.rand(config.n_steps, batch, 2, N_INPUTS, generator=generator))


def _assert_identical_spikes(spikes: torch.Tensor, expected: torch.Tensor, model, x: torch.Tensor) -> None:
    """Equal bits, asserted where they are decided: the importer sums the currents in another
    order, so every membrane must lie further from θ than that order can move it."""
    with torch.no_grad():
        membrane = model(x).membrane
    assert_spikes_decided(membrane, model.threshold(), _n_terms(model, x))
    differing = int((spikes != expected).sum())
    assert spikes.shape == expected.shape
    assert differing == 0, f"{differing} of {expected.numel()} spike bits differ"


NETWORKS = {
    "n5-single-synapse": dict(n_neurons=5, synapses=1, learn_beta=True, learn_threshold=True),
    "n8-p0.2-per-module-beta-theta": dict(p=0.2, learn_beta=True, learn_threshold=True),
    "n12-all-to-all": dict(n_neurons=12, p=1.0, learn_beta=True),
    "shared-bottleneck": dict(p=0.3, readout_scheme="shared", bottleneck=3, learn_threshold=True),
    "count-readout-fused-input": dict(p=0.2, spike_readout="count", input_scheme="fused"),
    "shared-count-readout": dict(n_neurons=6, p=0.5, spike_readout="count", readout_scheme="shared"),
    "deep-r-shared-input": dict(p=0.3, deep_r=True, input_scheme="shared", learn_beta=True),
    "concat-readout-no-bias": dict(p=0.2, readout_scheme="concat", hidden_bias=False, learn_threshold=True),
}


@pytest.mark.parametrize("name", list(NETWORKS))
def test_round_trip_through_a_file_gives_identical_spikes(name, tmp_path):
    config = _config(**NETWORKS[name])
    model = _model(config)
    x = _random_input(config, model)
    with torch.no_grad():
        output = model(x)
    assert 0.05 < output.states.mean() < 0.6, "the test network must actually spike"
    assert output.cross_spikes.sum() > 0, "spikes must cross the interconnect"

    ran = nir_run(export_nir(model, config, tmp_path / "net.nir"), x)

    _assert_identical_spikes(ran.spikes, output.states, model, x)
    torch.testing.assert_close(ran.logits, output.logits, rtol=1e-5, atol=1e-5)


def test_briefly_trained_network_gives_identical_spikes_on_digit_pairs(tmp_path):
    config = RunConfig().replace(
        data=dict(dataset="digits", n_train=200, n_test=100),
        model=dict(variant="spiking", n_neurons=8),
        train=dict(epochs=1),
    )
    model = train(config, progress=False).model
    test_set = PairDataset(config.data, config.task, train=False, seed=config.seed)
    images = next(test_set.batches(100)).images
    x, _ = network_input(images, config, torch.Generator().manual_seed(0))
    x = _decided(model, x)
    with torch.no_grad():
        output = model(x)
    assert output.states.mean() > 0.01, "the trained network must spike"

    ran = nir_run(export_nir(model, config, tmp_path / "trained.nir"), x)

    _assert_identical_spikes(ran.spikes, output.states, model, x)
    torch.testing.assert_close(ran.logits, output.logits, rtol=1e-5, atol=1e-5)
    assert (ran.logits[-1].argmax(-1) == output.predictions()).float().mean() >= 0.99


def test_every_array_is_exact_after_write_and_read(tmp_path):
    config = _config(p=0.3, bottleneck=2, learn_beta=True, learn_threshold=True)
    model = _model(config)
    read = nir.read(export_nir(model, config, tmp_path / "net.nir"))
    n = config.model.n_neurons
    w_in = model.input_weight().detach().numpy()
    w_rec = model.recurrent_weight().detach().numpy()
    bias = model.bias().detach().numpy()
    for i in range(3):
        rows = slice(i * n, (i + 1) * n)
        np.testing.assert_array_equal(read.nodes[f"b_drive_{i}"].weight, w_in[rows])
        np.testing.assert_array_equal(read.nodes[f"b_drive_{i}"].bias, bias[rows])
        module = read.nodes[f"c_module_{i}"]
        np.testing.assert_array_equal(module.nodes["c_recurrent"].weight, w_rec[rows, rows])
        lif = module.nodes["b_lif"]
        assert lif.tau.dtype == np.float64 and lif.r.dtype == np.float64
        beta = np.float32(BETAS[i])
        np.testing.assert_array_equal(lif.tau, np.full(n, DT / (1 - np.float64(beta))))
        np.testing.assert_array_equal(lif.r, np.full(n, 1 / (1 - np.float64(beta))))
        np.testing.assert_array_equal((1 - DT / lif.tau).astype(np.float32), np.full(n, beta))
        np.testing.assert_array_equal(lif.v_threshold, np.full(n, THRESHOLDS[i], dtype=np.float32))
        np.testing.assert_array_equal(lif.v_leak, np.zeros(n))
        np.testing.assert_array_equal(lif.v_reset, np.zeros(n))
        for j in range(3):
            if j != i:
                cross = read.nodes[f"d_cross_{i}_from_{j}"].weight
                np.testing.assert_array_equal(cross, w_rec[rows, j * n : (j + 1) * n])
        bottleneck = read.nodes[f"f_bottleneck_{i}"]
        np.testing.assert_array_equal(bottleneck.weight, model.bottleneck.weight[i].detach().numpy())
        np.testing.assert_array_equal(bottleneck.bias, model.bottleneck.bias[i].detach().numpy())
        readout, outputs = read.nodes[f"g_readout_{i}"], model.readout.weight.shape[1]
        block = slice(i * outputs, (i + 1) * outputs)
        np.testing.assert_array_equal(readout.weight[block], model.readout.weight[i].detach().numpy())
        np.testing.assert_array_equal(readout.bias[block], model.readout.bias[i].detach().numpy())
        assert not np.delete(readout.weight, np.s_[block], axis=0).any()
    leak = read.nodes["h_leaky"]
    np.testing.assert_array_equal((1 - DT / leak.tau).astype(np.float32), np.float32(config.model.beta))
    np.testing.assert_array_equal((DT * leak.r / leak.tau).astype(np.float32), np.float32(1))
    assert float(read.metadata["dt"]) == DT
    assert "Euler" in read.metadata["integration"] and "t-1" in read.metadata["recurrent_delay"]


def test_float64_time_constants_give_back_every_float32_beta():
    beta = np.random.default_rng(0).random(100_000).astype(np.float32)
    tau = DT / (1 - beta.astype(np.float64))
    np.testing.assert_array_equal((1 - DT / tau).astype(np.float32), beta)


def test_nir_read_loads_the_lif_nodes_and_the_recurrent_cycles(tmp_path):
    config = _config(p=0.2)
    model = _model(config)
    read = nir.read(export_nir(model, config, tmp_path / "net.nir"))
    assert list(read.nodes) == sorted(read.nodes)
    for i in range(3):
        module = read.nodes[f"c_module_{i}"]
        assert isinstance(module, nir.NIRGraph)
        assert isinstance(module.nodes["b_lif"], nir.LIF)
        assert isinstance(module.nodes["c_recurrent"], nir.Linear)
        assert {("b_lif", "c_recurrent"), ("c_recurrent", "b_lif")} <= set(module.edges)
        assert ("a_input", "b_lif") in module.edges
        for j in set(range(3)) - {i}:
            cross = f"d_cross_{i}_from_{j}"
            assert {(f"c_module_{j}", cross), (cross, f"c_module_{i}")} <= set(read.edges)
    assert isinstance(read.nodes["h_leaky"], nir.LI)
    assert ("h_leaky", "z_output") in read.edges
    x = _random_input(config, model)
    with torch.no_grad():
        _assert_identical_spikes(nir_spikes(read, x), model(x).states, model, x)


def test_unexportable_models_fail_with_the_fix(tmp_path):
    config = _config(learn_beta=True)
    model = _model(config)
    with torch.no_grad():
        model.lif.beta[3] = 0.5
    with pytest.raises(NIRExportError, match="beta differs between the neurons of module 0.*learn_beta=False"):
        export_nir(model, config, tmp_path / "net.nir")

    cases = {
        "bandwidth cap .* Export a network trained with bandwidth_cap=None": dict(bandwidth_cap=2),
        "interconnect onset at step 3 .* interconnect_onset=1": dict(interconnect_onset=3),
        "only spiking networks .* variant='spiking'": dict(variant="rate"),
    }
    for message, fields in cases.items():
        config = _config(**fields)
        with pytest.raises(ConfigError, match=message):
            export_nir(build_model(config, n_inputs=N_INPUTS), config, tmp_path / "net.nir")
    assert not (tmp_path / "net.nir").exists()


def _hidden_graph(graph: nir.NIRGraph) -> nir.NIRGraph:
    """The input, drives, modules and interconnect of ``graph``, its Output fed by module 0."""
    kept = {key: node for key, node in graph.nodes.items() if key[0] in "abcd"}
    n = len(kept["c_module_0"].nodes["b_lif"].tau)
    kept["z_output"] = nir.Output(np.array([n]))
    edges = [(a, b) for a, b in graph.edges if a in kept and b in kept] + [("c_module_0", "z_output")]
    return nir.NIRGraph(nodes=kept, edges=edges)


def test_snntorch_import_of_the_nested_layout_gives_identical_spikes(tmp_path):
    import_from_nir = pytest.importorskip("snntorch.import_nir").import_from_nir

    config = _config(p=0.3, learn_beta=True, learn_threshold=True)
    model = _model(config)
    x = _random_input(config, model)
    with torch.no_grad():
        expected = model(x).states
    module = import_from_nir(_hidden_graph(nir.read(export_nir(model, config, tmp_path / "net.nir"))))
    recorded = {}
    for name, layer in module.named_modules():
        if isinstance(layer, snntorch.Leaky):
            layer.register_forward_hook(lambda _, __, out, name=name: recorded.setdefault(name, []).append(out))
    state = None
    with torch.no_grad():
        for x_t in x.flatten(2):
            *_, state = module(x_t, state)
    spikes = torch.cat([torch.stack(recorded[name]) for name in sorted(recorded)], dim=-1)
    _assert_identical_spikes(spikes, expected, model, x)


def test_export_command_writes_a_nir_graph_that_nir_reads(tmp_path, capsys):
    from spikemod.checkpoint import save_checkpoint
    from spikemod.cli import main

    config = RunConfig().replace(model=dict(variant="spiking", n_neurons=6, p=0.2), task=dict(n_steps=4))
    checkpoint = save_checkpoint(tmp_path / "run.h5", build_model(config), config, {"test_accuracy": [[0.1, 0.1]]})
    out = tmp_path / "net.nir"
    assert main(["export", str(checkpoint), "--to", "nir", "--out", str(out)]) == 0
    assert "as a NIR graph" in capsys.readouterr().out
    graph = nir.read(out)
    lif = [node for node in _all_nodes(graph) if isinstance(node, nir.LIF)]
    assert len(lif) == 2  # one LIF per module
    rate = tmp_path / "rate.h5"
    save_checkpoint(rate, build_model(config.replace(model={"variant": "rate"})), config.replace(model={"variant": "rate"}), {})
    assert main(["export", str(rate), "--to", "nir", "--out", str(tmp_path / "rate.nir")]) == 2
    assert "rate" in capsys.readouterr().err


def _all_nodes(graph):
    for node in graph.nodes.values():
        if isinstance(node, nir.NIRGraph):
            yield from _all_nodes(node)
        else:
            yield node
