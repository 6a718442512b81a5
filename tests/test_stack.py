"""K networks trained together equal the same K trained alone; the stack's forward pass is each
network's; the pure LIF step is snnTorch's."""

import pytest
import snntorch as snn
import torch
from numerics import TRAINING, assert_same_up_to_order, assert_spikes_decided

from spikemod import dynamics
from spikemod.config import ConfigError, RunConfig
from spikemod.connectivity import synapse_counts
from spikemod.network import spike_gradient
from spikemod.stack import NetworkStack
from spikemod.training import _input_groups, batch_key, build_model, train

pytestmark = pytest.mark.numerics  # float comparisons between computation orders


def _config(variant: str, seed: int, p: float, covariance: float, **task) -> RunConfig:
    return RunConfig.from_dict(
        {
            "data": {"dataset": "digits", "n_train": 200, "n_test": 100},
            "model": {"variant": variant, "n_neurons": 8, "p": p},
            "task": {"n_steps": 4, "covariance": covariance, **task},
            "train": {"epochs": 2, "batch_size": 64},
            "seed": seed,
        }
    )


def _configs(variant: str, **task) -> list:
    return [
        _config(variant, 1, 0.25, 0.0, **task),
        _config(variant, 2, 0.05, 0.5, **task),
        _config(variant, 3, 1.0, 0.0, **task),
    ]


def _assert_same_as_alone(configs):
    together = train(configs, progress=False)
    for config, ens in zip(configs, together):
        alone = train(config, progress=False)
        for key in ("train_loss", "test_loss", "train_accuracy", "test_accuracy", "best_epoch"):
            expected = torch.tensor(alone.history[key], dtype=torch.float64)
            torch.testing.assert_close(torch.tensor(ens.history[key], dtype=torch.float64), expected, **TRAINING, msg=key)
        if "test_cross_spikes" in alone.history:
            expected = torch.tensor(alone.history["test_cross_spikes"])
            torch.testing.assert_close(torch.tensor(ens.history["test_cross_spikes"]), expected, **TRAINING)
        alone_state = alone.model.state_dict()
        for name, value in ens.model.state_dict().items():
            torch.testing.assert_close(value, alone_state[name], **TRAINING, msg=name)
        # The per-network mask stays exact: masked recurrent weights are exactly zero.
        mask = ens.model.recurrent_mask()
        assert torch.equal(ens.model.w_rec[~mask], torch.zeros(int((~mask).sum())))
        m = config.model.n_modules
        counts = synapse_counts(mask, m)
        off_diagonal = ~torch.eye(m, dtype=torch.bool)
        assert (counts[off_diagonal] == config.model.n_synapses).all()
    return together


@pytest.mark.parametrize("variant", ["rate", "spiking"])
def test_networks_trained_together_equal_each_trained_alone(variant):
    results = _assert_same_as_alone(_configs(variant))
    assert len({r.history["train_loss"][0] for r in results}) == 3  # the networks really differ


@pytest.mark.parametrize(
    "variant, model, task, train_cfg",
    [
        ("rate", {"input_scheme": "fused"}, {}, {"loss": "marginal"}),
        ("rate", {"input_scheme": "shared", "n_modules": 3}, {}, {"optimizer": "adadelta"}),
        ("spiking", {"spike_readout": "count", "bottleneck": 3, "readout_scheme": "shared"}, {"noise_ratio": 0.3}, {}),
        ("spiking", {}, {"encoding": "rate", "random_onset": True}, {}),
        ("spiking", {"deep_r": True, "learn_beta": True, "learn_threshold": True}, {}, {}),
        ("rate", {"deep_r": True}, {}, {}),
    ],
    ids=["fused-marginal", "shared-3-modules-adadelta", "count-bottleneck-noise", "encoding-onsets", "deep-r-learnable-lif", "rate-deep-r"],
)
def test_every_feature_trains_together_as_alone(variant, model, task, train_cfg):
    configs = [c.replace(model=model, task=task, train={"epochs": 1, **train_cfg}) for c in _configs(variant)]
    _assert_same_as_alone(configs)


def test_networks_with_their_own_onset_and_cap_train_together_as_alone():
    caps, onsets = [None, 1, 3], [1, 3, 2]
    configs = [
        c.replace(model={"bandwidth_cap": cap, "interconnect_onset": onset}, train={"epochs": 1})
        for c, cap, onset in zip(_configs("spiking"), caps, onsets)
    ]
    _assert_same_as_alone(configs)


def test_each_network_stops_early_on_its_own():
    configs = [c.replace(train={"epochs": 3, "target_accuracy": t}) for c, t in zip(_configs("rate"), (0.01, None, None))]
    results = _assert_same_as_alone(configs)
    assert [len(r.history["test_accuracy"]) for r in results] == [1, 3, 3]


@pytest.mark.parametrize("variant", ["rate", "spiking"])
def test_networks_of_one_seed_share_an_input_and_still_equal_one_by_one_training(variant):
    # seeds interleaved: the trainer regroups them, trains with 2 inputs for 4 networks and
    # returns the results in the given order
    configs = [_config(variant, seed, p, 0.0, noise_ratio=0.3) for p in (0.25, 1.0) for seed in (1, 2)]
    assert _input_groups(configs) == ([0, 2, 1, 3], 2)
    results = _assert_same_as_alone(configs)
    assert results[0].model.config.p == 0.25 and results[3].model.config.p == 1.0
    assert _input_groups(configs[:3]) == ([0, 1, 2], 3)  # groups of unequal size: one input each


@pytest.mark.parametrize(
    "variant,model",
    [
        ("rate", {}),
        ("rate", {"input_scheme": "shared"}),
        ("rate", {"input_scheme": "fused"}),
        ("spiking", {"spike_readout": "membrane"}),
        ("spiking", {"spike_readout": "membrane", "bottleneck": 3, "readout_scheme": "shared"}),
        ("spiking", {"spike_readout": "count", "bottleneck": 3}),
        ("spiking", {"deep_r": True, "learn_beta": True, "bandwidth_cap": 2, "interconnect_onset": 2}),
    ],
)
def test_forward_matches_each_network(variant, model):
    configs = [c.replace(model=model) for c in _configs(variant)]
    models = [build_model(c) for c in configs]
    stack = NetworkStack(models)
    x = torch.randn(4, 3, 5, 2, 784)
    out = stack(x)
    last = stack(x, last_only=True)
    assert last.logits.shape == (1,) + out.logits.shape[1:]
    n_terms = 2 * 784 + 16 + 16  # input pixels, recurrent sources, readout inputs
    assert_same_up_to_order(last.logits, out.logits[-1:], n_terms)
    for k, network in enumerate(models):
        alone = network(x[:, k])
        if alone.membrane is not None:  # the logits below hold only where no spike depends on the order
            assert_spikes_decided(alone.membrane, network.threshold(), n_terms)
            assert torch.equal(stack.cross_spikes(out.states)[:, k], alone.cross_spikes)
        assert_same_up_to_order(out.logits[:, k], alone.logits, n_terms)
        if alone.module_logits is None:
            assert out.module_logits is None and last.module_logits is None
        else:
            assert_same_up_to_order(out.module_logits[:, k], alone.module_logits, n_terms)
            assert_same_up_to_order(last.module_logits[0, k], alone.module_logits[-1], n_terms)
    # one input read by all three networks, as by networks of one seed in training
    one_input = x[:, :1]
    together = stack(one_input).logits
    assert_same_up_to_order(together, stack(one_input.expand_as(x).contiguous()).logits, n_terms)


@pytest.mark.parametrize("scheme", ["separate", "shared", "fused"])
def test_a_slot_major_input_gives_the_same_numbers(scheme):
    # the trainer stores drawn inputs slot-major ([S, G, T, B, D] in memory): the same values in
    # another layout must give the same numbers bit for bit, not merely to float tolerance
    stack = NetworkStack([build_model(c.replace(model={"input_scheme": scheme})) for c in _configs("rate")])
    x = torch.randn(4, 3, 5, 2, 784)
    slot_major = x.permute(3, 1, 0, 2, 4).contiguous().permute(2, 1, 3, 0, 4)
    assert torch.equal(slot_major, x) and not slot_major.is_contiguous()
    assert torch.equal(stack(slot_major).logits, stack(x).logits)


def test_configs_that_change_shapes_cannot_train_together():
    base = _config("rate", 1, 0.25, 0.0)
    with pytest.raises(ConfigError, match="may differ only in seed"):
        train([base, base.replace(train={"lr": 0.01})])
    with pytest.raises(ConfigError, match="at least one config"):
        train([])
    free = dict(seed=9, model={"p": 0.5, "interconnect_onset": 3, "bandwidth_cap": 2}, task={"covariance": 0.3})
    assert batch_key(base) == batch_key(base.replace(**free))
    assert batch_key(base) != batch_key(base.replace(model={"n_neurons": 9}))


@pytest.mark.parametrize("surrogate", ["atan", "fast_sigmoid"])
def test_the_pure_lif_step_is_snntorch_leaky_bit_for_bit(surrogate):
    # random β (some outside [0, 1], which snnTorch clamps) and θ per neuron, random currents
    g = torch.Generator().manual_seed(4)
    beta = torch.rand(12, generator=g) * 1.4 - 0.2
    threshold = torch.rand(12, generator=g) + 0.5
    currents = torch.randn(8, 5, 12, generator=g, requires_grad=True)
    spike_fn = spike_gradient(surrogate)
    leaky = snn.Leaky(beta=beta, threshold=threshold, spike_grad=spike_fn, reset_mechanism="zero", learn_beta=True)
    mem_ref, mem = torch.zeros(5, 12), torch.zeros(5, 12)
    spikes_ref, spikes = [], []
    for current in currents:
        s_ref, mem_ref = leaky(current, mem_ref)
        s, mem = dynamics.lif_step(current, mem, beta, threshold, spike_fn)
        assert torch.equal(s, s_ref) and torch.equal(mem, mem_ref)
        spikes_ref.append(s_ref)
        spikes.append(s)
    assert 0 < torch.stack(spikes).mean() < 1  # the neurons both fire and rest
    # gradients too: the surrogate, the detached reset and the clamp of β
    weights = torch.randn(8, 5, 12, generator=g)
    grad_ref = torch.autograd.grad((torch.stack(spikes_ref) * weights).sum() + mem_ref.sum(), currents)[0]
    grad = torch.autograd.grad((torch.stack(spikes) * weights).sum() + mem.sum(), currents)[0]
    assert torch.equal(grad, grad_ref)
