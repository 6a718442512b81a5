"""Sweeps: grid specs, the per-run results store, failure handling, and kill-and-resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from spikemod.config import ConfigError, DataConfig, MetricConfig, ModelConfig, RunConfig, TrainConfig
from spikemod.training import batch_key
from spikemod import identity
from spikemod.executors import plan_sweep, run_local
from spikemod.h5tree import read_tree, write_tree
from spikemod.identity import config_overrides, run_id
from spikemod.results import ResultStore, load_results, table_differences
from spikemod.run import cpu_model, make_chunks
from spikemod.sweep import SweepSpec, parse_grid_option

#: A run of about a second or less: the offline digits set, tiny modules, one epoch.
TINY = RunConfig(
    data=DataConfig(dataset="digits"),
    model=ModelConfig(variant="spiking", n_neurons=6, p=0.1),
    train=TrainConfig(epochs=1),
    metrics=MetricConfig(readout_epochs=1),
)


def tiny_spec(seeds=(0, 1, 2)) -> SweepSpec:
    return SweepSpec(
        TINY, (("model.variant", ("rate", "spiking")), ("model.p", (0.05, 1)), ("seed", tuple(seeds)))
    )


# ----- specs -----


def test_grid_expands_in_order_with_coerced_values():
    spec = SweepSpec(TINY, (("model.p", (0.05, 1)), ("seed", (0, 1, 2))))
    configs = spec.configs()
    assert len(spec) == 6
    assert [(c.model.p, c.seed) for c in configs] == [
        (0.05, 0),
        (0.05, 1),
        (0.05, 2),
        (1.0, 0),
        (1.0, 1),
        (1.0, 2),
    ]
    assert all(isinstance(c.model.p, float) for c in configs)  # the integer 1 became 1.0
    assert configs[3] == TINY.replace(model={"p": 1.0}, seed=0)
    assert len({run_id(c) for c in configs}) == 6


def test_run_id_hashes_only_fields_off_their_defaults(monkeypatch):
    before = run_id(TINY)
    assert run_id(TINY.replace(model={"interconnect_onset": 3})) != before
    # a field at its default does not enter the id, so configs that lacked it keep their ids
    fields = identity.config_fields()
    monkeypatch.setattr(
        identity, "config_fields", lambda: {k: v for k, v in fields.items() if k != "model.interconnect_onset"}
    )
    assert run_id(TINY) == before


def test_run_id_is_canonical():
    assert run_id(TINY.replace(model={"p": 1})) == run_id(TINY.replace(model={"p": 1.0}))
    assert run_id(TINY.replace(data={"data_root": "/somewhere"})) == run_id(TINY)
    assert run_id(TINY.replace(seed=1)) != run_id(TINY)
    assert run_id(RunConfig.from_json(TINY.to_json())) == run_id(TINY)
    # defaults are hashed with the value in effect: spelling them out keeps the id, changing them does not
    spelled = TINY.replace(task={"n_steps": TINY.n_steps}, model={"init": "uniform", "init_scale": 0.01})
    assert run_id(spelled) == run_id(TINY)
    assert run_id(TINY.replace(model={"init_scale": 0.03})) != run_id(TINY)
    assert config_overrides(TINY) == {
        "data.dataset": "digits",
        "model.variant": "spiking",
        "model.n_neurons": 6,
        "train.epochs": 1,
        "metrics.readout_epochs": 1,
    }


def test_duplicate_points_run_once():
    spec = SweepSpec(TINY.replace(model={"synapses": 1}), (("seed", (0, 0, 1)),))
    assert [c.seed for c in spec.configs()] == [0, 1]


@pytest.mark.parametrize(
    "grid, message",
    [
        ((("model.pp", (1,)),), "model.pp"),
        ((("modle.p", (0.1,)),), "modle.p"),
        ((("model.p", ()),), "non-empty"),
        ((("model.p", "0.1"),), "non-empty list"),
        ((("seed", (0,)), ("seed", (1,))), "twice"),
        ((("model.p", (0.1, 0.001)),), "model.p=0.001"),  # int(p·n²) = 0 synapses at n = 6
        ((("model.variant", ("rate", "lstm")),), "model.variant='lstm'"),
    ],
)
def test_bad_grids_name_the_problem(grid, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        SweepSpec(TINY, grid)


def test_grid_option_parsing():
    assert parse_grid_option("model.p=0.01,0.1,1") == ("model.p", (0.01, 0.1, 1))
    assert parse_grid_option("model.bottleneck=none,5") == ("model.bottleneck", (None, 5))
    assert parse_grid_option("train.lr=1e-3,2.5E+2,-1e1") == ("train.lr", (1e-3, 250.0, -10.0))
    assert parse_grid_option("model.variant=rate, spiking") == ("model.variant", ("rate", "spiking"))
    assert parse_grid_option("metrics.metrics=[retraining,ablation],[correlation]") == (
        "metrics.metrics",
        (["retraining", "ablation"], ["correlation"]),
    )
    for bad in ("model.p", "=1,2", "model.p=", "model.p=1,,2", "model.p=[1"):
        with pytest.raises(ConfigError, match="--grid"):
            parse_grid_option(bad)
    spec = SweepSpec(TINY).with_grid(
        *parse_grid_option("metrics.metrics=[retraining,ablation],[correlation]")
    )
    assert [c.metrics.metrics for c in spec.configs()] == [("retraining", "ablation"), ("correlation",)]


def test_spec_file_round_trip_and_relative_base(tmp_path):
    (tmp_path / "base.yaml").write_text(TINY.to_yaml())
    (tmp_path / "sweep.yaml").write_text(
        "name: demo\nbase: base.yaml\ngrid:\n  model.p: [0.05, 1]\n  seed: [0, 1]\n"
    )
    spec = SweepSpec.load(tmp_path / "sweep.yaml")
    assert spec.name == "demo" and spec.base == TINY and len(spec) == 4
    (tmp_path / "sweep.json").write_text(json.dumps(spec.to_dict()))
    assert SweepSpec.load(tmp_path / "sweep.json") == spec
    (tmp_path / "bad.yaml").write_text("base: {}\ngrids: {seed: [1]}\n")
    with pytest.raises(ConfigError, match="grids"):
        SweepSpec.load(tmp_path / "bad.yaml")


def test_chunks_group_runs_of_one_shape():
    configs = tiny_spec(seeds=(0, 1, 2)).configs()
    chunks = make_chunks(configs, 2)
    assert [len(c) for c in chunks] == [2, 2, 2] * 2  # rate and spiking, each 2 p x 3 seeds
    for chunk in chunks:
        assert len({batch_key(c) for c in chunk}) == 1
    assert sorted(run_id(c) for chunk in chunks for c in chunk) == sorted(run_id(c) for c in configs)


# ----- store -----


def test_result_tree_round_trips_exactly(tmp_path):
    tree = {
        "accuracy": np.array([0.25, 0.5], dtype=np.float32),
        "count": 3,
        "mean": 0.1,
        "flag": True,
        "name": np.str_("spiking"),
        "missing": None,
        "nested": {"F": torch.tensor([0.1, 0.2], dtype=torch.float64), "labels": np.array(["a", "bc"])},
    }
    with h5py.File(tmp_path / "t.h5", "w") as f:
        write_tree(f, tree)
    with h5py.File(tmp_path / "t.h5", "r") as f:
        back = read_tree(f)
    assert back["count"] == 3 and isinstance(back["count"], int)
    assert (
        back["mean"] == 0.1 and back["flag"] is True and back["missing"] is None and back["name"] == "spiking"
    )
    assert back["accuracy"].dtype == np.float32 and np.array_equal(back["accuracy"], tree["accuracy"])
    assert np.array_equal(back["nested"]["F"], [0.1, 0.2]) and list(back["nested"]["labels"]) == ["a", "bc"]
    with h5py.File(tmp_path / "u.h5", "w") as f, pytest.raises(ValueError, match="ragged"):
        write_tree(f, {"bad": [[1, 2], [3]]})


def test_store_ignores_and_cleans_partial_files(tmp_path):
    store = ResultStore(tmp_path)
    store.write(TINY, {"accuracy": np.array([0.5, 0.5])})
    # What a writer killed mid-write leaves: a truncated temporary file under a dead pid.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    partial = (
        store.runs_dir
        / f".{run_id(TINY.replace(seed=1))}.{os.uname().nodename.replace('.', '-')}.{dead.pid}.tmp"
    )
    partial.write_bytes(store.path(run_id(TINY)).read_bytes()[:100])
    assert store.completed() == {run_id(TINY)}
    assert len(load_results(store)) == 1
    assert store.remove_stale_temporaries() == 1 and not partial.exists()
    index = store.rebuild_index()
    assert list(index["runs"]) == [run_id(TINY)] and index["runs"][run_id(TINY)]["config"]["seed"] == 0


def test_table_differences():
    rows = [
        {"run_id": "a", "seed": 0, "config.model.p": 0.1, "F": np.array([0.1, np.nan]), "loss": np.nan, "meta.host": "x"},
        {"run_id": "b", "seed": 1, "config.model.p": 1.0, "F": np.array([0.3, 0.4]), "loss": 0.5, "meta.host": "y"},
    ]  # fmt: skip
    table = pd.DataFrame(rows)
    assert table_differences(table, pd.DataFrame(rows[::-1])) == []  # rows by run id, NaN equals NaN
    changed = pd.DataFrame([{**rows[0], "meta.host": "z"}, {**rows[1], "F": np.array([0.3, 0.41])}])
    assert table_differences(table, changed) == ["run b: F = array([0.3, 0.4]) vs array([0.3 , 0.41])"]
    assert table_differences(table, changed, ignore=()) == [
        "run a: meta.host = 'x' vs 'z'",
        "run b: F = array([0.3, 0.4]) vs array([0.3 , 0.41])",
    ]
    (difference,) = table_differences(table, table.assign(**{"config.model.p": [0.1, 1.0 + 1e-15]}))
    assert difference.startswith("run b: config.model.p = ")  # numbers must be exactly equal
    assert table_differences(table, table.iloc[:1]) == ["run b only in the first table"]
    assert table_differences(table.drop(columns="loss"), table) == ["column loss only in the second table"]


# ----- running -----


def test_run_stores_everything_and_failures_are_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("SPIKEMOD_OFFLINE", "1")
    good = TINY
    bad = TINY.replace(data={"dataset": "mnist", "data_root": str(tmp_path / "no-data")})
    report = run_local([good, bad], tmp_path / "store", workers=1, progress=False)
    assert not report.ok and report.completed == 1 and [f.run_id for f in report.failures] == [run_id(bad)]
    text = report.describe()
    assert (
        "DataUnavailableError" in text
        and run_id(bad) in text
        and "data.data_root='" in text
        and "model.n_neurons=6" in text
    )

    table = load_results(tmp_path / "store")
    assert len(table) == 1
    row = table.iloc[0]
    assert row["run_id"] == run_id(good) and row["seed"] == 0 and row["config.model.n_neurons"] == 6
    steps = good.n_steps
    for metric in good.metrics.metrics:
        assert row[f"specialization.{metric}.F"].shape == (steps,)
        assert row[f"specialization.{metric}.raw"].shape == (steps, 2, 2)
    assert row["accuracy"].shape == (2,) and 0 <= row["accuracy_mean"] <= 1
    assert 0 < row["q.exact"] < 0.5 and row["q.n_synapses"] == int(0.1 * 36)
    assert row["traffic.crossing"].shape == (2, 2) and row["traffic.per_step"].shape == (2, 2)
    assert row["resources.crossing"] == pytest.approx(row["traffic.total"])
    assert row["meta.wall_time_s"] > 0 and row["meta.torch_threads"] == 1
    assert row["meta.device"] == "cpu"
    assert row["meta.cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert row["meta.cpu"] == cpu_model() and row["meta.cpu"]
    # Where the time went: the run's share of its stack's training, then each stage of its measurement.
    stages = ["training", "features", "retraining", "ablation", "correlation", "resources", "decisions"]
    assert {c.removeprefix("meta.stage_s.") for c in table.columns if c.startswith("meta.stage_s.")} == set(stages)
    assert all(row[f"meta.stage_s.{stage}"] > 0 for stage in stages)
    measured = sum(row[f"meta.stage_s.{stage}"] for stage in stages[1:])
    assert measured <= row["meta.wall_time_s"]

    # A second call runs only what is missing: the stored run is untouched, the failure retried.
    mtime = ResultStore(tmp_path / "store").path(run_id(good)).stat().st_mtime_ns
    plan = plan_sweep([good, bad], tmp_path / "store")
    assert plan.done == {run_id(good)} and plan.todo == [bad] and "previously failed" in plan.describe()
    again = run_local([good, bad], tmp_path / "store", workers=1, progress=False)
    assert again.previously_done == 1 and len(again.failures) == 1
    assert ResultStore(tmp_path / "store").path(run_id(good)).stat().st_mtime_ns == mtime

    # Without keep_checkpoints no checkpoint is written; asked for them, a run stored without one is to do.
    assert not (tmp_path / "store" / "checkpoints").exists()
    assert plan_sweep([good, bad], tmp_path / "store", keep_checkpoints=True).todo == [good, bad]


def test_onset_pairs_are_measured_and_drawn(tmp_path):
    """Fig. 4C: a random-onset run measured again at fixed onset pairs, stored and drawn."""
    from spikemod import plots
    from spikemod.run import run_one
    from spikemod.metrics import measure_onset_pairs

    config = TINY.replace(
        task={"n_steps": 5, "random_onset": True, "noise_ratio": 0.4},
        metrics={"metrics": ("retraining", "ablation"), "onset_pairs": [[2, 4], [4, 2]]},
    )
    result = run_one(config)
    assert set(result["onset_pairs"]) == {"2-4", "4-2"}
    for pair in result["onset_pairs"].values():
        assert set(pair) == {"retraining", "ablation"}
        assert pair["retraining"]["module_scores"].shape == (5, 2) and pair["retraining"]["F"].shape == (5,)
    # The onsets change what the readouts see, so the pairs give different scores.
    first, second = (result["onset_pairs"][k]["retraining"]["module_scores"] for k in ("2-4", "4-2"))
    assert not np.allclose(first, second)

    store = ResultStore(tmp_path / "store")
    store.write(config, result)
    paths = plots.fig4_onset_pairs(load_results(store.root), tmp_path / "figures")
    assert {p.name for p in paths} == {"fig4_onset_pairs_spiking.png", "fig4_onset_pairs_spiking.pdf"}
    with pytest.raises(ValueError, match="onset pairs"):
        measure_onset_pairs(None, None, None, config.replace(metrics={"metrics": ("weight_mask",)}))
    assert "onset_pairs" not in run_one(TINY.replace(metrics={"metrics": ("ablation",)}))


def test_onset_pair_readouts_train_on_the_first_training_pairs():
    """MetricConfig.onset_pair_samples: the onset-pair readouts see the first N training pairs only."""
    from spikemod.metrics import measure_onset_pairs
    from spikemod.task import PairDataset
    from spikemod.training import train

    config = TINY.replace(
        task={"n_steps": 5, "random_onset": True, "noise_ratio": 0.4},
        metrics={"metrics": ("retraining",), "onset_pairs": [[2, 4]]},
    )
    model = train(config, progress=False).model
    train_set = PairDataset(config.data, config.task, train=True, seed=config.seed)
    test_set = PairDataset(config.data, config.task, train=False, seed=config.seed)
    n = len(train_set) // 3
    head = train_set.head(n)
    rows = torch.arange(n)
    assert len(head) == n and torch.equal(head.digits, train_set.digits[:n])
    assert torch.equal(head.images(rows), train_set.images(rows)) and torch.equal(head.targets, train_set.targets[:n])
    assert len(train_set.head(10 * len(train_set))) == len(train_set)

    def raw(results):
        return results["2-4"].metrics["retraining"].raw

    limited = measure_onset_pairs(model, train_set, test_set, config.replace(metrics={"onset_pair_samples": n}))
    np.testing.assert_array_equal(raw(limited), raw(measure_onset_pairs(model, head, test_set, config)))
    assert not np.array_equal(raw(limited), raw(measure_onset_pairs(model, train_set, test_set, config)))
    # onset_pair_epochs: the onset-pair readouts train for that many epochs, as readout_epochs would
    never_stop = config.replace(metrics={"onset_pair_samples": n, "readout_stop_accuracy": 1.0})
    longer = measure_onset_pairs(model, train_set, test_set, never_stop.replace(metrics={"onset_pair_epochs": 3}))
    as_readout_epochs = never_stop.replace(metrics={"onset_pair_samples": None, "readout_epochs": 3})
    np.testing.assert_array_equal(raw(longer), raw(measure_onset_pairs(model, head, test_set, as_readout_epochs)))
    assert not np.array_equal(raw(longer), raw(measure_onset_pairs(model, train_set, test_set, never_stop)))
    for name in ("onset_pair_samples", "onset_pair_epochs"):
        with pytest.raises(ConfigError, match=name):
            MetricConfig(**{name: 0})


@pytest.mark.parametrize("readout_noise", ["fixed", "fresh"])
def test_onset_pairs_measured_in_one_pass_equal_each_pair_alone(readout_noise):
    """measure_onset_pairs extracts every pair's features in one pass (one noise draw per batch);
    each pair's scores are number for number those of measure() with that pair's onsets."""
    from spikemod.metrics import measure, measure_onset_pairs
    from spikemod.task import PairDataset
    from spikemod.training import train

    pairs = [[2, 4], [4, 2], [3, 3]]
    config = TINY.replace(
        task={"n_steps": 5, "random_onset": True, "noise_ratio": 0.4},
        metrics={"metrics": ("retraining", "ablation", "correlation"), "onset_pairs": pairs,
                 "readout_epochs": 2, "readout_noise": readout_noise},
    )
    model = train(config, progress=False).model
    train_set = PairDataset(config.data, config.task, train=True, seed=config.seed)
    test_set = PairDataset(config.data, config.task, train=False, seed=config.seed)
    together = measure_onset_pairs(model, train_set, test_set, config)
    for t0, t1 in pairs:
        pair_config = config.replace(task={"onsets": (t0, t1)}, metrics={"onset_pairs": ()})
        alone = measure(model, train_set, test_set, pair_config)
        for name in ("retraining", "ablation", "correlation"):
            np.testing.assert_array_equal(together[f"{t0}-{t1}"].metrics[name].raw, alone.metrics[name].raw)


def _sweep_command(spec_path, store, workers):
    # --chunk-size 1: each run trains alone however the sweep was cut, so the tables below can be
    # compared number for number (networks stacked differently sum in other orders)
    return [
        sys.executable, "-m", "spikemod.cli", "sweep", str(spec_path),
        "--store", str(store), "--workers", str(workers), "--no-progress", "--chunk-size", "1",
    ]  # fmt: skip


def test_killed_sweep_resumes_to_the_uninterrupted_table(tmp_path):
    spec = tiny_spec(seeds=(0, 1, 2))
    total = len(spec)
    spec_path = tmp_path / "sweep.yaml"
    spec_path.write_text(json.dumps(spec.to_dict()))  # JSON is YAML
    store = tmp_path / "killed"
    runs = store / "runs"

    # Start the sweep, SIGKILL it (and any worker) once some runs are stored.
    process = subprocess.Popen(
        _sweep_command(spec_path, store, workers=1),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        if runs.is_dir() and len(list(runs.glob("*.h5"))) >= 2:
            break
        time.sleep(0.01)
    assert process.poll() is None, (
        f"the sweep ended before it could be killed: {process.stderr.read().decode()}"
    )
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    finished = len(ResultStore(store).completed())
    assert 2 <= finished < total

    # Every stored run is complete and readable; the rest is missing.
    interrupted = load_results(store)
    assert len(interrupted) == finished

    # Resume (on two workers): only the missing runs run; finished files stay as they were.
    stamps = {p.name: p.stat().st_mtime_ns for p in runs.glob("*.h5")}
    resumed = subprocess.run(
        _sweep_command(spec_path, store, workers=2), capture_output=True, text=True, timeout=120
    )
    assert resumed.returncode == 0, resumed.stderr + resumed.stdout
    assert (
        f"{total}/{total} runs done ({total - finished} now, {finished} before), 0 failed" in resumed.stdout
    )
    assert all(runs.joinpath(name).stat().st_mtime_ns == stamp for name, stamp in stamps.items())
    index = json.loads((store / "index.json").read_text())
    assert sorted(index["runs"]) == sorted(run_id(c) for c in spec.configs()) and index["failed"] == []

    # The same sweep without interruption, in this process: the same table, number for number.
    reference = run_local(spec.configs(), tmp_path / "reference", workers=1, chunk_size=1, progress=False)
    assert reference.ok and reference.completed == total
    final, expected = load_results(store), load_results(tmp_path / "reference")
    assert len(final) == total
    assert table_differences(final, expected) == []
    # Not vacuous: the runs differ from each other, and provenance columns are the only ones ignored.
    assert len({tuple(f) for f in final["specialization.retraining.F"]}) > 1
    assert table_differences(final, expected, ignore=()) != []
    assert set(final["config.model.variant"]) == {"rate", "spiking"}


@pytest.mark.lava
def test_kept_checkpoints_export_and_simulate(tmp_path):
    """spikemod sweep --keep-checkpoints stores each run's trained network beside its result, and
    spikemod export and simulate take it as they take the checkpoint of spikemod train."""
    from spikemod.checkpoint import load_checkpoint
    from spikemod.cli import main

    config = RunConfig(
        data=DataConfig(dataset="digits", n_train=200, n_test=100),
        model=ModelConfig(variant="spiking", n_neurons=8),
        train=TrainConfig(epochs=1),
        metrics=MetricConfig(readout_epochs=1),
    )
    (tmp_path / "base.yaml").write_text(config.to_yaml())
    store = ResultStore(tmp_path / "store")
    argv = ["sweep", "--config", str(tmp_path / "base.yaml"), "--grid", "seed=0,1", "--store", str(store.root)]
    # Two seeds of one shape train as one stack, so the stacked networks are kept too.
    assert main(argv + ["--workers", "1", "--no-progress", "--keep-checkpoints"]) == 0
    keys = {run_id(config.replace(seed=seed)) for seed in (0, 1)}
    assert store.completed(with_checkpoints=True) == keys
    for key in keys:
        checkpoint = load_checkpoint(store.checkpoint_path(key))
        run = store.read(key)
        assert checkpoint.config == run["config"]
        np.testing.assert_array_equal(checkpoint.history["test_accuracy"], run["history"]["test_accuracy"])

    net = tmp_path / "net.h5"
    assert main(["export", str(store.checkpoint_path(min(keys))), "--to", "lava", "--out", str(net)]) == 0
    assert main(["simulate", str(net), "--n-test", "20", "--batch-size", "20"]) == 0
    with h5py.File(tmp_path / "net.simulation.h5", "r") as f:
        np.testing.assert_array_equal(f["lava_float/spike_counts"][()], f["torch/spike_counts"][()])
