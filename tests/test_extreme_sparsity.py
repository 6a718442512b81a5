"""The "Extreme sparsity" setup: its preset, the Deep-R learning rate over p, the bottleneck metric
(only W_br and β_br retrained), M_spec and the weight-mask fraction on hand-made numbers."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from spikemod.config import ConfigError, RunConfig, TrainConfig
from spikemod.deepr import DeepR
from spikemod.metrics import measure
from spikemod.metrics.bottleneck import bottleneck_metric, readout_units, train_bottleneck_readouts
from spikemod.metrics.features import extract_features
from spikemod.metrics.scores import MetricScores
from spikemod.metrics.weight_mask import _masks
from spikemod.presets import with_preset
from spikemod.task import PairBatch, task_targets
from spikemod.training import build_model


def test_preset_holds_the_papers_settings():
    config = with_preset(RunConfig(), "extreme-sparsity")
    assert config.preset == "extreme-sparsity" and config.model.n_neurons == 100 and config.n_steps == 5
    assert (config.task.targets, config.task.exclude_adjacent) == ("parity", True)
    assert (config.model.init_scheme, config.model.uniform_bound, config.model.deep_r) == ("uniform", 0.1, True)
    assert (config.train.optimizer, config.train.learning_rate, config.train.epochs) == ("adadelta", 0.5, 5)
    assert config.train.deep_r_betas == (0.95, 0.999)
    assert config.metrics.metrics == ("weight_mask", "correlation") and not config.metrics.per_step
    spiking = with_preset(RunConfig().replace(model={"variant": "spiking"}), "extreme-sparsity")
    assert spiking.n_steps == 10 and spiking.model.uniform_bound == 0.01  # the spiking variant's own T and init


def test_deep_r_learning_rate_falls_geometrically_from_0_1_to_0_01():
    train = with_preset(RunConfig(), "extreme-sparsity").train
    assert train.deep_r_rate(0.0) == pytest.approx(0.1)
    assert train.deep_r_rate(1.0) == pytest.approx(0.01)
    assert train.deep_r_rate(0.5) == pytest.approx(0.1 * math.sqrt(0.1))  # the geometric mean
    assert TrainConfig().deep_r_rate(0.7) == TrainConfig().deep_r_lr  # no schedule by default
    with pytest.raises(ConfigError, match="deep_r_betas"):
        TrainConfig(deep_r_betas=(0.9, 1.0))


def test_deep_r_networks_with_their_own_learning_rates_step_as_each_alone():
    g = torch.Generator().manual_seed(0)
    theta = torch.rand(2, 2, 4, 4, generator=g) - 0.3  # two networks, some connections dormant
    counts = [int((t > 0).flatten(1).sum(1)[0]) for t in theta]
    theta[:, 1] = theta[:, 0]  # both directions of a network hold the same count
    stacked = torch.nn.Parameter(theta.clone())
    rates = [0.1, 0.01]
    together = DeepR(stacked, counts, lr=rates, l1=1e-3, noise=[0.0, 0.0], generators=[torch.Generator(), torch.Generator()], betas=(0.95, 0.999))
    alone = [torch.nn.Parameter(theta[i].clone()) for i in range(2)]
    each = [DeepR(a, [c], lr=r, l1=1e-3, noise=[0.0], generators=[torch.Generator()], betas=(0.95, 0.999)) for a, c, r in zip(alone, counts, rates)]
    for _ in range(5):
        grads = torch.randn(theta.shape, generator=g)
        stacked.grad = grads.clone()
        together.step()
        for i in range(2):
            alone[i].grad = grads[i].clone()
            each[i].step()
    for i in range(2):
        torch.testing.assert_close(stacked[i].detach(), alone[i].detach(), rtol=1e-6, atol=1e-7)
    moved = [(stacked[i] - theta[i]).abs().max().item() for i in range(2)]
    assert moved[0] > 5 * moved[1]  # lr 0.1 moves θ about 10 times as far as lr 0.01


def test_m_spec_and_the_weight_mask_fraction_on_hand_made_numbers():
    # M_spec(n) = (M(n, n) − M(n, 1 − n)) / (M(n, n) + M(n, 1 − n))
    scores = MetricScores("weight_mask", np.array([[[0.9, 0.3], [0.2, 0.8]]]), 0.0, [5])
    np.testing.assert_allclose(scores.extreme_sparsity[0], [0.6 / 1.2, 0.6 / 1.0])
    # six candidate entries (one more is never masked): the top half by score is kept, and module
    # n's share is the fraction of kept entries it owns
    owners = {"w_rec": torch.tensor([[0, 0, 1, 1, -1]]), "readout.weight": torch.tensor([[1, 0]])}
    scores = {"w_rec": torch.tensor([[[0.9, 0.1, 0.8, 0.2, 5.0]]]), "readout.weight": torch.tensor([[[0.7, 0.3]]])}
    masks, kept_owner = _masks(scores, owners, 0.5)
    assert sorted(kept_owner[0].tolist()) == [0, 1, 1]  # 0.9 (module 0), 0.8 and 0.7 (module 1)
    assert masks["w_rec"][0, 0, 4].item() == 1.0  # the unmasked entry stays on
    shares = torch.bincount(kept_owner[0], minlength=2) / kept_owner.shape[1]
    np.testing.assert_allclose(shares.numpy(), [1 / 3, 2 / 3])


class OwnDigitPairs:
    """Pairs whose image in slot m is a fixed prototype of digit m, plus a little noise."""

    n_classes = 10
    prototypes = torch.randn(10, 20, generator=torch.Generator().manual_seed(3))

    def __init__(self, n_pairs: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.digits = torch.randint(0, 10, (n_pairs, 2), generator=g)
        self.images = self.prototypes[self.digits] + 0.1 * torch.randn(n_pairs, 2, 20, generator=g)

    def __len__(self) -> int:
        return len(self.digits)

    def batches(self, batch_size, shuffle=False, generator=None):
        for start in range(0, len(self), batch_size):
            rows = slice(start, start + batch_size)
            yield PairBatch(self.images[rows], self.digits[rows], task_targets(self.digits[rows], "parity"))


def test_bottleneck_metric_retrains_only_the_bottleneck_to_readout_layer():
    config = RunConfig().replace(
        model=dict(n_neurons=12, synapses=0, bottleneck=5, init="uniform", init_scale=0.3),
        task=dict(n_steps=2, targets="parity"),
        metrics=dict(metrics=("bottleneck",), per_step=False, bottleneck_epochs=20, readout_batch_size=64),
    )
    model = build_model(config, n_inputs=20)
    before = copy.deepcopy(model.state_dict())
    train_set, test_set = OwnDigitPairs(800, 0), OwnDigitPairs(400, 1)
    result = measure(model, train_set, test_set, config)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # nothing of the network changed
    accuracy = result.metrics["bottleneck"].raw[-1]  # [M, K]
    assert accuracy[0, 0] > 0.4 and accuracy[1, 1] > 0.4  # no interconnect: each module knows its digit (chance 0.1)
    assert accuracy[0, 1] < 0.2 and accuracy[1, 0] < 0.2

    # The same numbers as retraining module m's W_br and β_br inside the network for digit k:
    # plug the trained layer into module m's readout (head 0) and read its logits.
    generator = torch.Generator()
    units = [extract_features(model, s, config, generator, source="bottleneck").at_steps(torch.tensor([1])) for s in (train_set, test_set)]
    weight, bias = train_bottleneck_readouts(units[0], config.metrics, torch.Generator().manual_seed(0))
    scores = bottleneck_metric(units[0], units[1], config.metrics, torch.Generator().manual_seed(0), np.array([2]))
    x = torch.stack([b.images for b in test_set.batches(400)])[0]
    for m in range(2):
        for k in range(2):
            retrained = copy.deepcopy(model)
            with torch.no_grad():
                retrained.readout.weight[m, :10] = weight[m, k, 0].T
                retrained.readout.bias[m, :10] = bias[m, k, 0, 0]
            logits = retrained(x.unsqueeze(0).expand(2, -1, -1, -1), static=True).module_logits[-1, :, 0, m]
            accuracy = (logits.argmax(-1) == test_set.digits[:, k]).double().mean().item()
            assert accuracy == pytest.approx(scores.raw[0, m, k], abs=1 / 400)


def test_bottleneck_metric_needs_a_bottleneck():
    config = RunConfig().replace(model=dict(n_neurons=6), metrics=dict(metrics=("bottleneck",), per_step=False))
    with pytest.raises(ValueError, match="bottleneck"):
        measure(build_model(config, n_inputs=20), OwnDigitPairs(100, 0), OwnDigitPairs(50, 1), config)


def test_spiking_bottleneck_metric_reads_the_units_as_the_leaky_readout_does():
    """A spiking network's membrane readout integrates W_br·b_t: the metric's classifier on the
    integrated units, plugged in as W_br, gives the network's own logits."""
    config = RunConfig().replace(
        model=dict(variant="spiking", n_neurons=12, synapses=0, bottleneck=5, init="uniform", init_scale=0.3),
        task=dict(n_steps=4, targets="parity"),
        metrics=dict(metrics=("bottleneck",), per_step=False, bottleneck_epochs=5, readout_batch_size=64),
    )
    model = build_model(config, n_inputs=20)
    train_set, test_set = OwnDigitPairs(400, 0), OwnDigitPairs(200, 1)
    units = [
        readout_units(extract_features(model, s, config, torch.Generator(), source="bottleneck"), config).at_steps(torch.tensor([3]))
        for s in (train_set, test_set)
    ]
    weight, bias = train_bottleneck_readouts(units[0], config.metrics, torch.Generator().manual_seed(0))
    x = next(test_set.batches(200)).images.unsqueeze(0).expand(4, -1, -1, -1)
    with torch.no_grad():
        model.readout.weight[0, :10] = weight[0, 1, 0].T
        model.readout.bias[0, :10] = bias[0, 1, 0, 0] / sum(0.9**t for t in range(4))  # V_T adds β_br·Σλ^t
        logits = model(x, static=True).module_logits[-1, :, 0, 0]
    expected = units[1].features[-1, :, 0] @ weight[0, 1, 0] + bias[0, 1, 0]
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4)
