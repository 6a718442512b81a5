"""The reference preset and its choices, each on a hand-made example whose numbers are worked out
here: the ratio F^m, the unclipped correlation, the remaining-accuracy ablation, the time-shared
readout loss, the concat readout's loss and decision, the kept final state, no hidden bias, and
the preset itself (fields, run id, command line)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from spikemod import dynamics
from spikemod.config import ConfigError, MetricConfig, RunConfig
from spikemod.identity import run_id
from spikemod.metrics import FeatureSet, measure, measure_features
from spikemod.metrics.suite import measure_test_onsets
from spikemod.metrics.correlation import class_group_similarity, derangement, reshuffled_correlation_metric
from spikemod.metrics.retraining import Readouts, readout_loss
from spikemod.metrics.scores import MetricScores, module_specialization, normalise, scoring
from spikemod.presets import FUSED_READOUT, OVERRIDES, with_preset
from spikemod.training import build_model, task_loss, train

# ----- scores -----


def test_ratio_module_score_and_reference_clips():
    # accuracies 0.82 and 0.28 of module 0, chance 0.1: M̄ = 0.8 and 0.2, F^0 = 0.6 / 1.0
    raw = np.array([[[0.82, 0.28], [0.19, 0.73]]])
    accuracy = MetricScores("retraining", raw, 0.1, [5], **scoring("ratio", False, "retraining"))
    np.testing.assert_allclose(accuracy.normalised[0], [[0.8, 0.2], [0.1, 0.7]])
    np.testing.assert_allclose(accuracy.module_scores[0], [0.6 / 1.0, -0.6 / 0.8])
    np.testing.assert_allclose(accuracy.specialization, [(0.6 + 0.75) / 2])
    # the difference form of the same values
    plain = MetricScores("retraining", raw, 0.1, [5])
    np.testing.assert_allclose(plain.module_scores[0], [0.6, -0.6])
    # an accuracy under chance is clipped to 1e-5 (not 0) in the ratio form: F^m stays defined
    under = MetricScores("retraining", np.array([[[0.05, 0.05], [0.5, 0.05]]]), 0.1, [5], form="ratio", clip=(1e-5, 1.0))
    np.testing.assert_allclose(under.module_scores[0], [0.0, (4 / 9 - 1e-5) / (4 / 9 + 1e-5)])


def test_unclipped_correlation_keeps_values_below_the_base():
    # c = 0.2 under the base b = 0.4: M̄ = (0.2 − 0.4)/0.6 = −1/3 unclipped, 0 clipped
    assert scoring("ratio", False, "correlation") == {"form": "ratio", "clip": None}
    assert scoring("ratio", True, "correlation")["clip"] == (1e-5, 1.0)
    assert scoring("difference", True, "ablation")["clip"] == (0.0, 1.0)
    np.testing.assert_allclose(normalise(0.2, 0.4, None), -1 / 3)
    np.testing.assert_allclose(normalise(0.2, 0.4), 0.0)
    np.testing.assert_allclose(normalise(1.3, 0.4, None), 1.5)  # and above 1
    # F^m = (M̄₀ − M̄₁)/(M̄₀ + M̄₁) with M̄ = 0.9 and −1/3
    np.testing.assert_allclose(module_specialization(np.array([0.9, -1 / 3]), "ratio"), (0.9 + 1 / 3) / (0.9 - 1 / 3))
    with pytest.raises(ValueError, match="unknown module score"):
        module_specialization(np.array([0.9, 0.1]), "quotient")


def _features(seed: int, n: int = 400) -> FeatureSet:
    """Module m's features are a one-hot code of digit m (plus noise): fully specialized."""
    g = torch.Generator().manual_seed(seed)
    digits = torch.randint(0, 10, (n, 2), generator=g)
    code = torch.stack([F.one_hot(digits[:, m], 10).float() for m in range(2)], 1)  # [B, M, 10]
    return FeatureSet(code + 0.05 * torch.randn((2,) + code.shape, generator=g), digits)


def test_ablation_remaining_scores_the_accuracy_left():
    config = MetricConfig(metrics=("ablation",), readout_epochs=6, readout_lr=1e-2)
    lost = measure_features(_features(1), _features(2), config).metrics["ablation"]
    remaining = measure_features(
        _features(1), _features(2), MetricConfig(metrics=("ablation",), readout_epochs=6, readout_lr=1e-2, ablation_score="remaining")
    ).metrics["ablation"]
    ablated = remaining.details["ablated_accuracy"]
    np.testing.assert_array_equal(remaining.raw, ablated)  # A itself
    np.testing.assert_allclose(lost.raw, 1.1 - ablated)  # 1 + b − A
    # zeroing module 0 leaves digit 0 at chance and digit 1 intact (and the other way round)
    assert ablated[-1, 0, 0] < 0.3 and ablated[-1, 0, 1] > 0.9
    np.testing.assert_allclose(remaining.specialization, lost.specialization)  # F is the same
    np.testing.assert_allclose(remaining.module_scores, -lost.module_scores)  # F^m has the other sign


# ----- the time-shared readout -----


def test_time_shared_readout_loss_is_the_sum_of_its_per_step_losses():
    g = torch.Generator().manual_seed(0)
    readouts = Readouts.initialise(2, 3, 2, 1, 4, 10, g)  # one readout per (subset, digit) for all steps
    x = torch.randn(2, 5, 6, generator=g)  # T = 2 steps, B = 5, D = M·F = 6
    digits = torch.randint(0, 10, (5, 2), generator=g)
    expected = 0.0
    for s in range(3):
        for k in range(2):
            w1 = readouts.w1[s, k, 0] * readouts.masks[s][:, None]
            for t in range(2):
                logits = torch.relu(x[t] @ w1 + readouts.b1[s, k, 0]) @ readouts.w2[s, k, 0] + readouts.b2[s, k, 0]
                expected = expected + F.cross_entropy(logits, digits[:, k])  # batch mean, summed over steps
    torch.testing.assert_close(readout_loss(readouts, x, digits), expected)


def test_time_shared_readouts_are_one_per_subset_and_digit_and_scored_per_step():
    config = MetricConfig(metrics=("retraining",), readout_time="shared", readout_epochs=4, readout_lr=1e-2)
    result = measure_features(_features(1), _features(2), config)
    retraining = result.metrics["retraining"]
    assert retraining.raw.shape == (2, 2, 2)  # [T, M, K]
    assert retraining.raw[:, 0, 0].min() > 0.9 and retraining.raw[:, 0, 1].max() < 0.3


def test_network_fan_in_initialises_every_readout_like_the_all_modules_one():
    # 2 modules of 8 features: a single module's readout has fan-in 8 (bound 1/√8) with subset
    # fan-in and 16 (1/√16) with the reference's; the same draws, scaled by √(8/16)
    shape = dict(n_modules=2, n_features=8, n_digits=2, n_steps=3, hidden=5, n_classes=10)
    own = Readouts.initialise(**shape, generator=torch.Generator().manual_seed(0))
    network = Readouts.initialise(**shape, generator=torch.Generator().manual_seed(0), fan_in="network")
    for name in ("w1", "b1"):
        mine, theirs = getattr(own, name), getattr(network, name)
        torch.testing.assert_close(theirs[:2], mine[:2] * math.sqrt(8 / 16))
        assert torch.equal(theirs[2], mine[2])  # the all-modules readout: fan-in 16 either way
        assert mine[:2].abs().max() > 1 / math.sqrt(16)  # not vacuous: the subset bound is wider
        assert theirs.abs().max() <= 1 / math.sqrt(16)
    assert torch.equal(network.w2, own.w2) and torch.equal(network.masks, own.masks)
    with pytest.raises(ConfigError, match="readout_fan_in"):
        MetricConfig(readout_fan_in="module")


# ----- the concat readout -----


def test_concat_readout_loss_and_decision_put_the_answer_in_module_0s_block():
    """Two modules, one head, C = 3 classes; module m's block of logits is z_m = W_m·h_m + b_m."""
    c = 3
    weight = torch.zeros(1, 2, c, 1)  # [K, M, O, F], one feature per module
    weight[0, 0, :, 0] = torch.tensor([1.0, 2.0, 0.0])
    weight[0, 1, :, 0] = torch.tensor([0.0, 0.0, 3.0])
    readout = dynamics.Readout(weight, torch.zeros(1, 2, c), n_heads=1, n_classes=c, scheme="concat")
    states = torch.tensor([[1.0, 1.0], [1.0, 0.5]])[None, None]  # [T, K, B, N]: h = (1, 1) and (1, 0.5)
    logits = dynamics.read_out(readout, states, 2)[0][:, 0]  # [T, B, H, M·C]
    np.testing.assert_allclose(logits[0, :, 0].numpy(), [[1, 2, 0, 0, 0, 3], [1, 2, 0, 0, 0, 1.5]])
    # argmax over all 2·C: sample 0 picks module 1's block (index 5): wrong whatever the target;
    # sample 1 picks class 1 of module 0
    targets = torch.tensor([[1], [1]])
    assert logits[-1].argmax(-1).flatten().tolist() == [5, 1]
    assert (logits[-1].argmax(-1) == targets).flatten().tolist() == [False, True]
    # the loss: one softmax cross-entropy over all 2·C logits with the target in 0..C−1
    expected = [math.log(sum(math.exp(v) for v in row)) - row[1] for row in ([1, 2, 0, 0, 0, 3], [1, 2, 0, 0, 0, 1.5])]
    torch.testing.assert_close(task_loss(logits, targets), torch.tensor(sum(expected) / 2))


def test_concat_model_reads_out_blocks_and_refuses_the_marginal_loss():
    config = RunConfig().replace(model=dict(readout_scheme="concat", readout_fan_in="network", n_neurons=4))
    model = build_model(config, n_inputs=6)
    assert model.readout.weight.shape == (2, 20, 4)
    assert model.readout.weight.abs().max() <= 1 / math.sqrt(8)  # the masked Linear(M·n -> M·C)'s bound
    out = model(torch.rand(5, 3, 2, 6))
    assert out.logits.shape == (5, 3, 2, 20)
    torch.testing.assert_close(out.logits, out.module_logits.flatten(-2))
    with pytest.raises(ConfigError, match="'deciding' with the concat readout"):
        config.replace(train=dict(loss="marginal"))


# ----- training choices -----


def _digits(**fields) -> RunConfig:
    config = RunConfig().replace(data=dict(dataset="digits", n_train=300, n_test=100), model=dict(n_neurons=6))
    return config.replace(**fields)


def test_keep_final_keeps_the_last_epoch_and_no_hidden_bias_is_zero_and_untrained():
    config = _digits(train=dict(epochs=3, keep="final"), model=dict(hidden_bias=False))
    result = train(config, progress=False)
    assert result.history["best_epoch"] == [2]
    assert "b" not in dict(result.model.named_parameters())
    assert torch.equal(result.model.b, torch.zeros(12))
    np.testing.assert_allclose(result.test_accuracy.numpy(), result.history["test_accuracy"][-1])


def test_drop_last_needs_a_full_batch():
    with pytest.raises(ConfigError, match="drop_last"):
        train(_digits(train=dict(drop_last=True, batch_size=512)), progress=False)


# ----- the preset -----


def test_reference_preset_sets_its_fields_and_names_the_run():
    config = with_preset(RunConfig(), "reference")
    assert config.preset == "reference"
    assert (config.train.epochs, config.train.keep, config.train.drop_last) == (30, "final", True)
    assert (config.task.noise_ratio, config.model.hidden_bias, config.model.readout_fan_in) == (0.4, False, "network")
    assert (config.metrics.readout_time, config.metrics.module_score, config.metrics.clip_correlation) == ("shared", "ratio", False)
    assert config.metrics.ablation_score == "remaining" and FUSED_READOUT["reference"] == "concat"
    assert run_id(config) != run_id(RunConfig())
    # the label alone changes the id: a run started from the preset is told apart
    assert run_id(RunConfig(preset="reference")) != run_id(RunConfig())
    # a field changed after the preset stays changed; the others keep the preset's values
    five = config.replace(train=dict(epochs=5))
    assert five.train.epochs == 5 and five.train.keep == "final"
    assert RunConfig.from_json(config.to_json()) == config
    with pytest.raises(ConfigError, match="preset"):
        RunConfig(preset="papers")
    assert set(OVERRIDES) == {"default", "reference", "extreme-sparsity"}


def test_command_line_preset_is_applied_before_the_flags(tmp_path, capsys):
    from spikemod.checkpoint import load_checkpoint
    from spikemod.cli import main

    out = tmp_path / "run.h5"
    argv = ["train", "--preset", "reference", "--dataset", "digits", "--n", "4", "--epochs", "1"]
    assert main(argv + ["--n-train", "300", "--n-test", "100", "--quiet", "--out", str(out)]) == 0
    config = load_checkpoint(out).config
    assert config.preset == "reference" and config.train.epochs == 1 and config.train.keep == "final"
    assert "kept epoch: 1 (final)" in capsys.readouterr().out


# ----- the reshuffled correlation and fresh readout noise -----


def test_derangement_has_no_fixed_points():
    g = torch.Generator().manual_seed(0)
    for n in (2, 3, 7, 50):
        permutation = derangement(n, g)
        assert sorted(permutation.tolist()) == list(range(n))
        assert not (permutation == torch.arange(n)).any()
    assert derangement(2, g).tolist() == [1, 0]


def test_class_groups_count_once_whatever_their_size():
    # group A (class 0): two identical vectors, r = 1; group B (class 1): four zero-mean, mutually
    # orthogonal vectors (a Helmert basis of R^5), r = 0 for every pair. Equal weights give 1/2
    # (weighting by samples would give 2/6).
    helmert = torch.tensor(
        [[1, -1, 0, 0, 0], [1, 1, -2, 0, 0], [1, 1, 1, -3, 0], [1, 1, 1, 1, -4]], dtype=torch.float32
    )
    same = torch.tensor([[1.0, 2.0, 0.0, 5.0, 1.0]] * 2)
    features = torch.cat([same, helmert])[None, :, None, :]  # [T = 1, B = 6, M = 1, F = 5]
    classes = torch.tensor([0, 0, 1, 1, 1, 1])
    value = class_group_similarity(features, classes, torch.Generator().manual_seed(0))
    torch.testing.assert_close(value, torch.tensor([[0.5]], dtype=torch.float64))


class PrototypePairs:
    """Pairs whose images are exactly one fixed random prototype per class (no noise)."""

    n_classes = 10
    prototypes = torch.randn(10, 30, generator=torch.Generator().manual_seed(5))

    def __init__(self, n_pairs: int, seed: int) -> None:
        self.digits = torch.randint(0, 10, (n_pairs, 2), generator=torch.Generator().manual_seed(seed))
        self.images = self.prototypes[self.digits]

    def batches(self, batch_size, shuffle=False, generator=None):
        from spikemod.task import PairBatch, task_targets

        for start in range(0, len(self.digits), batch_size):
            rows = slice(start, start + batch_size)
            yield PairBatch(self.images[rows], self.digits[rows], task_targets(self.digits[rows], "both"))


def test_reshuffled_correlation_on_a_network_whose_states_are_a_function_of_its_own_digit():
    """No interconnect and no recurrence: module m's state is tanh(W_m·x_m), a function of its own
    slot's image alone, and images are their class's prototype. Pairs sharing digit m's class then
    have identical module-m states (M(m, m) = 1 exactly), while module m's states for the other
    digit follow the reshuffled slot, as random pairs do (M(m, 1 − m) ≈ b)."""
    config = RunConfig().replace(
        model=dict(n_neurons=8, synapses=0), task=dict(n_steps=2),
        metrics=dict(metrics=("correlation",), correlation_procedure="reshuffled", correlation_batches=4),
    )
    model = build_model(config, n_inputs=30)
    with torch.no_grad():
        model.w_rec.zero_()
        model.b.zero_()
    steps = np.array([1, 2])
    scores, kind = reshuffled_correlation_metric(
        model, PrototypePairs(1000, 0), config, torch.Generator(), torch.Generator().manual_seed(1), steps
    )
    assert kind == "rate" and scores.raw.shape == (2, 2, 2)
    np.testing.assert_allclose(scores.raw[:, 0, 0], 1.0, atol=1e-6)
    np.testing.assert_allclose(scores.raw[:, 1, 1], 1.0, atol=1e-6)
    base = scores.details["base"]  # [T, M]
    assert (base < 0.6).all()
    np.testing.assert_allclose(scores.raw[:, 0, 1], base[:, 0], atol=0.1)
    np.testing.assert_allclose(scores.raw[:, 1, 0], base[:, 1], atol=0.1)
    # the suite measures it with the network (and refuses it on features alone)
    result = measure(model, PrototypePairs(300, 1), PrototypePairs(1000, 0), config)
    assert result.metrics["correlation"].last > 0.8
    with pytest.raises(ValueError, match="reshuffled correlation re-runs the network"):
        measure_features(_features(1), _features(2), config.metrics)


def test_fresh_readout_noise_trains_each_epoch_on_its_own_draw():
    config = MetricConfig(metrics=("retraining",), readout_epochs=3, readout_lr=1e-2)
    train_set, test_set = _features(1), _features(2)
    once = measure_features(train_set, test_set, config).metrics["retraining"].raw
    # three copies of one draw are the one draw, number for number
    np.testing.assert_array_equal(measure_features([train_set] * 3, test_set, config).metrics["retraining"].raw, once)
    # other draws (other noise on the same pairs) give other readouts
    g = torch.Generator().manual_seed(3)
    draws = [train_set] + [
        FeatureSet(train_set.features + 0.3 * torch.randn(train_set.features.shape, generator=g), train_set.digits)
        for _ in (1, 2)
    ]
    assert not np.array_equal(measure_features(draws, test_set, config).metrics["retraining"].raw, once)


def test_test_only_onsets_score_the_trained_readouts_on_raw_accuracies():
    """The reference's Fig. 4C: readouts trained on inputs without onsets, scored with digit 0 on
    from step 3 and digit 1 from step 2. Module m's state follows its own slot at each step
    (no recurrence), so digit 0 is decodable from step 3 only, digit 1 from step 2."""
    config = RunConfig().replace(
        model=dict(n_neurons=8, synapses=0), task=dict(n_steps=4),
        metrics=dict(metrics=("retraining",), readout_epochs=6, readout_lr=1e-2, module_score="ratio"),
    )
    model = build_model(config, n_inputs=30)
    with torch.no_grad():
        model.w_rec.zero_()
    scores = measure_test_onsets(model, PrototypePairs(600, 0), PrototypePairs(600, 1), config, [(3, 2)])["3-2"]
    accuracy = scores.raw  # [T, M, K]
    np.testing.assert_array_equal(scores.normalised, np.clip(accuracy, 1e-5, 1))  # base 0: raw accuracies
    assert accuracy[1, 0, 0] < 0.5 and accuracy[2:, 0, 0].min() > 0.85  # digit 0: on from step 3
    assert accuracy[1:, 1, 1].min() > 0.85  # digit 1: on from step 2
    assert accuracy[0, 1, 1] < 0.5
