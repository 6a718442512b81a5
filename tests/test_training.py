from pathlib import Path

import numpy as np
import pytest
import snntorch
import torch

import spikemod.training as training
from spikemod.cli import main
from spikemod.config import RunConfig
from spikemod.connectivity import synapse_counts
from spikemod.network import competitive_max
from spikemod.config import ConfigError
from spikemod.training import TrainingDivergedError, build_model, loss_logits, task_loss, task_losses, train


def _config(**model) -> RunConfig:
    return RunConfig.from_dict(
        {
            "data": {"dataset": "digits", "n_train": 384, "n_test": 128},
            "model": {"n_neurons": 8, "p": 0.25, **model},
            "task": {"n_steps": 3},
            "train": {"epochs": 2, "batch_size": 128},
            "seed": 3,
        }
    )


def test_training_learns_and_records_history():
    result = train(_config(variant="rate"), progress=False)
    h = result.history
    assert len(h["train_loss"]) == len(h["test_accuracy"]) == len(h["samples_per_second"]) == 2
    assert h["train_loss"][1] < h["train_loss"][0]
    assert result.test_accuracy.shape == (2,)
    assert torch.equal(result.test_accuracy, torch.tensor(h["test_accuracy"][h["best_epoch"][0]]))
    assert ((result.test_accuracy >= 0) & (result.test_accuracy <= 1)).all()


def test_loss_logits_on_a_hand_made_example():
    # [B=1, H=1, M=2, C=3]: module 1 decides (its 2.0 is the largest logit) and says class 0.
    module_logits = torch.tensor([[[[0.0, 1.0, 0.5], [2.0, 0.0, -1.0]]]])
    decided = module_logits[:, :, 1]
    target = torch.tensor([[1]])
    assert torch.equal(loss_logits(decided, module_logits, "deciding"), decided)
    assert torch.equal(loss_logits(decided, None, "marginal"), decided)  # a shared readout
    # marginal: -log of (sum over modules of exp(z[m, 1])) / (sum over modules and classes of exp(z))
    z = module_logits[0, 0]
    expected = -torch.log(z[:, 1].exp().sum() / z.exp().sum())
    torch.testing.assert_close(task_loss(loss_logits(decided, module_logits, "marginal")[None], target), expected)
    torch.testing.assert_close(task_loss(decided[None], target), -torch.log_softmax(z[1], dim=0)[1])


@pytest.mark.parametrize("loss,non_deciding_learns", [("deciding", False), ("marginal", True)])
def test_only_the_marginal_loss_reaches_the_non_deciding_module(loss, non_deciding_learns):
    config = _config(variant="rate").replace(train={"loss": loss})
    net = build_model(config)
    x = torch.randn(3, 1, 2, 784)
    out = net(x)
    _, deciding = competitive_max(out.module_logits[-1])  # [B=1, H]
    task_loss(loss_logits(out.logits, out.module_logits, loss), torch.tensor([[0, 0]])).backward()
    grad = net.readout.weight.grad.view(2, 2, 10, -1)  # [module, head, class, in]
    for head, module in enumerate(deciding[0].tolist()):
        assert grad[module, head].abs().sum() > 0
        assert bool(grad[1 - module, head].abs().sum() > 0) is non_deciding_learns


def test_an_unknown_loss_is_refused():
    with pytest.raises(ConfigError, match="loss"):
        _config().replace(train={"loss": "mse"})


def test_same_seed_same_weights_different_seed_different_weights():
    config = _config(variant="spiking", deep_r=True).replace(train={"epochs": 1})
    first = train(config, progress=False)
    second = train(config, progress=False)
    for name, value in first.model.state_dict().items():
        assert torch.equal(value, second.model.state_dict()[name]), name
    first.history.pop("samples_per_second"), second.history.pop("samples_per_second")
    assert first.history == second.history
    other = train(config.replace(seed=4), progress=False)
    assert not torch.equal(first.model.w_rec, other.model.w_rec)
    assert synapse_counts(first.model.recurrent_mask(), 2).tolist() == [[56, 16], [16, 56]]


def test_build_model_is_seeded_and_leaves_the_global_rng_alone():
    state = torch.random.get_rng_state()
    a, b = build_model(_config()), build_model(_config())
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(a.w_rec, b.w_rec) and torch.equal(a.fixed_recurrent_mask, b.fixed_recurrent_mask)


def test_nan_loss_stops_with_an_error_naming_the_config(monkeypatch):
    monkeypatch.setattr(training, "task_losses", lambda logits, targets: logits.sum() * torch.full((1,), float("nan")))
    with pytest.raises(TrainingDivergedError, match=r"variant=rate n=8 .*seed=3.*full config: \{"):
        train(_config(variant="rate"), progress=False)


def test_keeps_the_best_state_not_the_last(monkeypatch):
    snapshots, scores = [], iter([0.6, 0.3])

    def fake_evaluate(stack, test_sets, inputs):
        snapshots.append(stack.network_state(0))
        return {"loss": torch.tensor([1.0]), "accuracy": torch.full((1, 2), next(scores))}

    monkeypatch.setattr(training, "evaluate", fake_evaluate)
    result = train(_config(variant="rate"), progress=False)
    assert result.history["best_epoch"] == [0]
    assert torch.equal(result.model.w_rec, snapshots[0]["w_rec"])
    assert not torch.equal(result.model.w_rec, snapshots[1]["w_rec"])
    assert result.test_accuracy.tolist() == pytest.approx([0.6, 0.6])


def test_early_stop_at_target_accuracy():
    config = _config(variant="rate").replace(train={"epochs": 5, "target_accuracy": 0.01})
    result = train(config, progress=False)
    assert len(result.history["test_accuracy"]) == 1


def test_training_leaves_snntorch_registry_alone():
    # the LIF step is a pure function: no snnTorch neuron object, so none in its global registry (snntorch#328)
    snntorch.Leaky(beta=0.5)  # a stray neuron from earlier work
    train(_config(variant="spiking").replace(train={"epochs": 1}), progress=False)
    assert len(snntorch.SpikingNeuron.instances) == 1


def test_cli_train_writes_a_checkpoint(tmp_path, capsys):
    out = tmp_path / "run.h5"
    code = main(
        ["train", "--dataset", "digits", "--n-train", "256", "--n-test", "128", "--variant", "spiking",
         "--n", "6", "--synapses", "1", "--steps", "3", "--epochs", "1", "--out", str(out), "--quiet"]
    )
    assert code == 0 and out.is_file()
    text = capsys.readouterr().out
    assert "spiking network: 2 modules x 6 neurons, 1 synapses per direction" in text
    assert "test accuracy: T' " in text and "spikes crossing per sample and step" in text


def test_cli_config_file_and_overrides(tmp_path):
    from spikemod.cli import build_parser, run_config_from_args

    path = tmp_path / "run.yaml"
    path.write_text(RunConfig().replace(model={"n_neurons": 10, "p": 0.5}, seed=7).to_yaml())
    args = build_parser().parse_args(["train", "--config", str(path), "--p", "0.2", "--out", "x.h5"])
    config = run_config_from_args(args)
    assert (config.model.n_neurons, config.model.p, config.seed) == (10, 0.2, 7)


def test_cli_reports_bad_config_without_traceback(tmp_path, capsys):
    code = main(["train", "--p", "0.0001", "--out", str(tmp_path / "x.h5")])
    assert code == 2
    assert "ModelConfig.p = 0.0001 is invalid" in capsys.readouterr().err


def test_noisy_input_skips_a_final_batch_too_small_for_the_noise():
    # 260 pairs in batches of 128 leave a last batch of 4 < 5 noise samples: it is skipped.
    config = _config(variant="rate").replace(
        data={"n_train": 260, "n_test": 130}, task={"noise_ratio": 0.4}, train={"epochs": 1}
    )
    result = train(config, progress=False)
    assert len(result.history["train_loss"]) == 1
    with pytest.raises(ValueError, match="structured noise averages 5"):
        train(config.replace(data={"n_test": 3}), progress=False)


def test_accuracy_metrics_and_resource_counts_see_the_same_test_inputs():
    """One input draw per run and split: the evaluation, the metrics' features and the resource
    counts all draw the test split's noise from its ``inputs/test`` stream (spikemod.seeding)."""
    from spikemod import seeding
    from spikemod.metrics.features import extract_features
    from spikemod.resources import measure_resources
    from spikemod.task import PairDataset

    config = _config(variant="spiking", p=1.0, n_neurons=16).replace(
        task={"noise_ratio": 0.8, "n_steps": 5}, train={"epochs": 1}
    )
    result = train(config, progress=False)
    test_set = PairDataset(config.data, config.task, train=False, seed=config.seed)
    spikes_per_step = result.history["test_cross_spikes"][0]  # from training's evaluation
    # a spike that flips between the stack's and the single network's summation order moves a mean
    # per sample and step by 1/(128·5): allow two
    tolerance = 2 / (len(test_set) * config.n_steps)
    counted = measure_resources(result.model, test_set, config).crossing.mean(axis=0) / config.n_steps
    assert counted.sum() > 0
    assert abs(counted - torch.tensor(spikes_per_step).numpy()).max() <= tolerance
    features = extract_features(result.model, test_set, config, seeding.generator(config.seed, "inputs/test"))
    assert features.kind == "count"
    # not vacuous: another draw of the noise moves the same counts by more
    other = measure_resources(result.model, test_set, config, generator=seeding.generator(config.seed + 1, "inputs/test"))
    assert abs(other.crossing.mean(axis=0) / config.n_steps - counted).max() > tolerance


def test_devices_are_checked_with_errors_that_name_the_fix(tmp_path, capsys):
    from spikemod.training import check_device

    assert check_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match="unknown device 'gpu0': use 'cpu' or 'cuda'"):
        check_device("gpu0")
    with pytest.raises(ConfigError, match="device 'meta' is not supported"):
        check_device("meta")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="torch sees no CUDA GPU here; use --device cpu"):
            train(_config(variant="rate"), progress=False, device="cuda")
        argv = ["train", "--dataset", "digits", "--n-train", "256", "--n-test", "128", "--epochs", "1"]
        assert main(argv + ["--device", "cuda", "--out", str(tmp_path / "x.h5")]) == 2
        assert "no CUDA GPU" in capsys.readouterr().err
        assert main(["sweep", "--store", str(tmp_path / "s"), "--grid", "seed=0", "--device", "cuda"]) == 2
        assert "no CUDA GPU" in capsys.readouterr().err


def test_training_on_an_explicit_cpu_device_gives_the_default_numbers():
    config = _config(variant="spiking").replace(train={"epochs": 1})
    default, explicit = train(config, progress=False), train(config, progress=False, device="cpu")
    assert default.history["test_loss"] == explicit.history["test_loss"]
    assert all(torch.equal(a, b) for a, b in zip(default.model.parameters(), explicit.model.parameters()))


def test_python_m_spikemod_and_train_without_out(tmp_path, monkeypatch, capsys):
    import subprocess
    import sys

    from spikemod.identity import run_id

    help_text = subprocess.run([sys.executable, "-m", "spikemod", "--help"], capture_output=True, text=True)
    assert help_text.returncode == 0 and "usage: spikemod" in help_text.stdout and "train" in help_text.stdout
    monkeypatch.chdir(tmp_path)
    argv = ["train", "--dataset", "digits", "--n-train", "256", "--n-test", "128", "--variant", "rate",
            "--n", "6", "--steps", "3", "--epochs", "1", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    written = list((tmp_path / "runs").glob("*.h5"))
    assert len(written) == 1 and written[0].name.startswith("rate-")
    from spikemod.checkpoint import load_checkpoint

    assert written[0].name == f"rate-{run_id(load_checkpoint(written[0]).config)}.h5"
    assert str(Path("runs") / written[0].name) in capsys.readouterr().out


def test_each_loss_sums_every_modules_own_cross_entropy():
    # [T=1, B=1, H=1, M=2, C=3]: both modules answer; the loss is CE(module 0) + CE(module 1)
    module_logits = torch.tensor([[[[[0.0, 1.0, 0.5], [2.0, 0.0, -1.0]]]]])
    decided = module_logits[:, :, :, 1]
    target = torch.tensor([[1]])
    z = module_logits[0, 0, 0]
    expected = -torch.log_softmax(z[0], dim=0)[1] - torch.log_softmax(z[1], dim=0)[1]
    torch.testing.assert_close(task_loss(loss_logits(decided, module_logits, "each"), target), expected)
    # per network, as the trainer computes it: [1, K, B, H, M, C] against [K, B, H]
    stacked = module_logits.unsqueeze(1).expand(1, 2, 1, 1, 2, 3)
    torch.testing.assert_close(task_losses(stacked, target[None].expand(2, 1, 1)), expected.expand(2))
    # both modules' readouts learn from every sample
    config = _config(variant="rate").replace(train={"loss": "each"})
    net = build_model(config)
    out = net(torch.randn(3, 1, 2, 784))
    task_loss(loss_logits(out.logits, out.module_logits, "each"), torch.tensor([[0, 0]])).backward()
    assert (net.readout.weight.grad.view(2, 2, 10, -1).abs().sum(dim=(2, 3)) > 0).all()


def test_decision_statistics_on_a_hand_made_competitive_max():
    """Module readouts set by hand: module 0 answers with logit 3 when the parities differ (it holds
    T′ then), else with 1; module 1 always with 2. Module 0 decides exactly when it holds the answer."""
    from spikemod.decisions import answer_holder, decision_statistics

    config = _config(variant="rate").replace(task={"targets": "parity"}, data={"dataset": "digits", "n_test": 200})
    digits = torch.tensor([[1, 2], [2, 4], [3, 3], [0, 7]])
    assert answer_holder(digits, "both").tolist() == [[0, 1], [1, 0], [1, 0], [0, 1]]

    class Fixed(torch.nn.Module):
        n_modules, n_heads = 2, 1
        device = torch.device("cpu")

        def forward(self, x, static=False):
            differ = (self.digits[:, 0] + self.digits[:, 1]) % 2 == 1
            logits = torch.zeros(x.shape[0], len(differ), 1, 2, 10)
            logits[..., 0, 0] = torch.where(differ, 3.0, 1.0)[None, :, None]
            logits[..., 1, 0] = 2.0
            return type("Out", (), {"module_logits": logits})()

    from spikemod.task import PairDataset

    dataset = PairDataset(config.data, config.task, train=False, seed=0)
    model = Fixed()
    model.digits = dataset.digits
    stats = decision_statistics(model, dataset, config.replace(train={"batch_size": 1000}))
    differ = ((dataset.digits[:, 0] + dataset.digits[:, 1]) % 2 == 1).double().mean().item()
    np.testing.assert_allclose(stats["deciding_share"], [[differ, 1 - differ]])
    np.testing.assert_allclose(stats["margin"], [1.0])
    np.testing.assert_allclose(stats["holder_decides"], [1.0])
