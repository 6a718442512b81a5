"""Config validation and round trips."""

from __future__ import annotations

import pytest

from spikemod.config import ConfigError, MetricConfig, ModelConfig, RunConfig, TaskConfig, TrainConfig


def test_round_trip_json_and_yaml(tmp_path):
    config = RunConfig(
        model=ModelConfig(variant="spiking", p=0.01, bottleneck=5),
        task=TaskConfig(covariance=0.3, encoding="rate", n_steps=12),
        metrics=MetricConfig(metrics=("retraining", "weight_mask")),
        seed=4,
    )
    assert RunConfig.from_json(config.to_json()) == config
    assert RunConfig.from_yaml(config.to_yaml()) == config
    path = tmp_path / "run.yaml"
    path.write_text(config.to_yaml())
    assert RunConfig.load(path) == config


@pytest.mark.parametrize(
    "build, field",
    [
        (lambda: ModelConfig(p=1.5), "ModelConfig.p"),
        (lambda: ModelConfig(n_neurons=25, p=0.001), "ModelConfig.p"),
        (lambda: ModelConfig(variant="lstm"), "ModelConfig.variant"),
        (lambda: ModelConfig(synapses=700, n_neurons=25), "ModelConfig.synapses"),
        (lambda: ModelConfig(interconnect_onset=0), "ModelConfig.interconnect_onset"),
        (lambda: ModelConfig(interconnect_onset=2.0), "ModelConfig.interconnect_onset"),
        (lambda: TaskConfig(covariance=-0.1), "TaskConfig.covariance"),
        (lambda: TaskConfig(encoding="latency", noise_ratio=0.2), "TaskConfig.encoding"),
        (lambda: TrainConfig(batch_size=0), "TrainConfig.batch_size"),
        (lambda: TrainConfig(epochs=2.5), "TrainConfig.epochs"),
        (lambda: MetricConfig(metrics=("accuracy",)), "MetricConfig.metrics"),
        (lambda: RunConfig(task=TaskConfig(encoding="rate")), "TaskConfig.encoding"),
        (lambda: RunConfig.from_dict({"model": {"pp": 1}}), "pp"),
    ],
)
def test_invalid_values_name_the_field(build, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        build()


def test_configs_are_frozen_and_replace_makes_copies():
    config = RunConfig()
    with pytest.raises(AttributeError):
        config.model.p = 0.5  # type: ignore[misc]
    changed = config.replace(model={"p": 1.0}, seed=3)
    assert changed.model.p == 1.0 and changed.seed == 3 and config.model.p == 0.1


def test_synapse_counts_and_steps():
    assert ModelConfig(n_neurons=25, p=0.01).n_synapses == 6
    assert ModelConfig(n_neurons=25, synapses=1).n_synapses == 1
    assert RunConfig().n_steps == 5
    assert RunConfig(model=ModelConfig(variant="spiking"), task=TaskConfig(n_steps=7)).n_steps == 7
