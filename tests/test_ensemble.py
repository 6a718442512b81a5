import pytest
import torch
from numerics import TRAINING, assert_same_up_to_order, assert_spikes_decided

from spikemod.config import RunConfig
from spikemod.connectivity import synapse_counts
from spikemod.ensemble import EnsembleError, ModularEnsemble, _input_groups, ensemble_key, train_ensemble
from spikemod.training import build_model, train

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
    together = train_ensemble(configs)
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
        assert (ens.model.w_rec[mask] != 0).all()
        n_synapses = config.model.n_synapses
        assert synapse_counts(mask, 2).tolist() == [[56, n_synapses], [n_synapses, 56]]
    return together


@pytest.mark.parametrize("variant", ["rate", "spiking"])
def test_ensemble_equals_one_by_one_training(variant):
    results = _assert_same_as_alone(_configs(variant))
    assert len({r.history["train_loss"][0] for r in results}) == 3  # the networks really differ


def test_ensemble_with_the_marginal_loss_equals_one_by_one_training():
    _assert_same_as_alone([c.replace(train={"loss": "marginal"}) for c in _configs("rate")])


def test_ensemble_with_noisy_input_bottleneck_and_shared_readout_equals_one_by_one():
    configs = [
        c.replace(model={"bottleneck": 3, "readout_scheme": "shared"}, train={"epochs": 1})
        for c in _configs("spiking", noise_ratio=0.3)
    ]
    _assert_same_as_alone(configs)


@pytest.mark.parametrize("variant", ["rate", "spiking"])
def test_networks_of_one_seed_share_an_input_and_still_equal_one_by_one_training(variant):
    # seeds interleaved: the ensemble regroups them, trains with 2 inputs for 4 networks and
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
    ],
)
def test_forward_matches_each_network(variant, model):
    configs = [c.replace(model=model) for c in _configs(variant)]
    models = [build_model(c) for c in configs]
    ensemble = ModularEnsemble(models)
    x = torch.randn(4, 3, 5, 2, 784)
    logits, module_logits, _ = ensemble(x)
    last, last_modules, _ = ensemble(x, last_only=True)
    assert last.shape == (1,) + logits.shape[1:]
    n_terms = 2 * 784 + 16 + 16  # input pixels, recurrent sources, readout inputs
    assert_same_up_to_order(last, logits[-1:], n_terms)
    for k, model in enumerate(models):
        alone = model(x[:, k])
        if alone.membrane is not None:  # the logits below hold only where no spike depends on the order
            assert_spikes_decided(alone.membrane, model.threshold(), n_terms)
        assert_same_up_to_order(logits[:, k], alone.logits, n_terms)
        if alone.module_logits is None:
            assert module_logits is None and last_modules is None
        else:
            assert_same_up_to_order(module_logits[:, k], alone.module_logits, n_terms)
            assert_same_up_to_order(last_modules[0, k], alone.module_logits[-1], n_terms)
    # one input read by all three networks, as by networks of one seed in train_ensemble
    one_input = x[:, :1]
    together = ensemble(one_input)[0]
    assert_same_up_to_order(together, ensemble(one_input.expand_as(x).contiguous())[0], n_terms)


def test_ensemble_refuses_what_it_cannot_batch():
    base = _config("rate", 1, 0.25, 0.0)
    with pytest.raises(EnsembleError, match="Deep-R.*train it alone"):
        train_ensemble([base.replace(model={"deep_r": True})])
    with pytest.raises(EnsembleError, match="interconnect switches on at step 3.*train it alone"):
        train_ensemble([base.replace(model={"interconnect_onset": 3})])
    with pytest.raises(EnsembleError, match="differ only in seed"):
        train_ensemble([base, base.replace(train={"lr": 0.01})])
    assert ensemble_key(base) == ensemble_key(base.replace(seed=9, model={"p": 0.5}, task={"covariance": 0.3}))
    assert ensemble_key(base) != ensemble_key(base.replace(model={"n_neurons": 9}))
