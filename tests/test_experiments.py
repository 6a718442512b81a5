"""The experiment scripts and the figures they draw from stored results (spikemod.plots)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from spikemod import plots
from spikemod.config import ModelConfig, RunConfig, TaskConfig
from spikemod.modularity import q_paper
from spikemod.results import ResultStore, load_results

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


@pytest.fixture()
def scripts(monkeypatch):
    """The experiment scripts, importable as modules (they import their sibling ``common``)."""
    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    import fig2_sparsity
    import fig3_resources
    import fig4_dynamics
    import make_figures

    return fig2_sparsity, fig3_resources, fig4_dynamics, make_figures


def fake_result(config: RunConfig, f_last: float, steps: int = 5) -> dict:
    """A result tree with the fields the figures read (the layout of run.run_one)."""
    count = config.model.n_synapses
    p = config.model.p_effective
    f = np.linspace(0.9, f_last, steps)
    return {
        "accuracy": np.array([0.8, 0.9]),
        "accuracy_mean": 0.85,
        "q": {"paper": q_paper(p), "exact": q_paper(p), "graph": q_paper(p), "p": p, "n_synapses": count},
        "specialization": {
            "steps": np.arange(1, steps + 1),
            **{m: {"F": f + 0.01 * k} for k, m in enumerate(("retraining", "ablation", "correlation"))},
        },
        "traffic": {"total": 3.0 * count},
        "resources": {"energy": 1e-8 + 1e-10 * count, "energy_input": 1e-8},
    }


@pytest.fixture()
def sweep_store(tmp_path) -> Path:
    """A store of fake runs: 2 variants × 3 synapse counts × 2 seeds, 2 covariances, 2 sizes."""
    store = ResultStore(tmp_path / "store")
    for variant in ("rate", "spiking"):
        for n in (10, 20):
            for count in (1, 10, 100):
                for covariance in (0.0, 0.5):
                    for seed in (0, 1):
                        config = RunConfig(
                            model=ModelConfig(variant=variant, n_neurons=n, synapses=count),
                            task=TaskConfig(covariance=covariance),
                            seed=seed,
                        )
                        # F falls with the synapse count; seeds differ by ±0.1.
                        f_last = 0.5 - 0.1 * np.log10(count) + (0.1 if seed else -0.1)
                        store.write(config, fake_result(config, f_last, 5 if variant == "rate" else 10))
    return store.root


def test_results_are_a_data_frame_of_one_row_per_run(sweep_store):
    table = load_results(sweep_store)
    assert isinstance(table, pd.DataFrame)
    assert list(table["run_id"]) == sorted(ResultStore(sweep_store).completed()) and len(table) == 48
    assert {
        "run_id", "seed", "config.seed", "config.model.p", "config.model.variant", "config.task.covariance",
        "accuracy", "accuracy_mean", "q.paper", "q.n_synapses", "specialization.steps",
        "specialization.retraining.F", "traffic.total", "resources.energy",
    } <= set(table.columns)  # fmt: skip
    assert table["accuracy_mean"].dtype == float and table["config.model.variant"].dtype == object
    assert all(isinstance(f, np.ndarray) and f.shape in {(5,), (10,)} for f in table["specialization.retraining.F"])

    # A groupby over seeds gives the means computed by hand from the rows.
    keys = ["config.model.variant", "config.model.n_neurons", "config.task.covariance", "q.n_synapses"]
    finals = table.assign(F=[f[-1] for f in table["specialization.retraining.F"]])
    means = finals.groupby(keys)["F"].mean()
    by_hand: dict = {}
    for row in table.to_dict("records"):
        by_hand.setdefault(tuple(row[k] for k in keys), []).append(row["specialization.retraining.F"][-1])
    assert len(means) == len(by_hand) == 24
    for key, values in by_hand.items():
        assert len(values) == 2 and means[key] == pytest.approx(sum(values) / len(values))
        assert means[key] == pytest.approx(0.5 - 0.1 * np.log10(key[-1]))  # the seeds' ±0.1 cancel


def test_figures_are_drawn_from_a_store(sweep_store, tmp_path):
    table = load_results(sweep_store)
    out = tmp_path / "figures"
    paths = (
        plots.fig2_sparsity(table, out)
        + plots.fig2_resources(table, out)
        + plots.fig3_heatmaps(table, out)
        + plots.fig4_dynamics(table, out)
    )
    names = {p.name for p in paths}
    for stem in ("fig2_sparsity", "fig2_resources", "fig3_heatmaps", "fig4_dynamics"):
        assert {f"{stem}.png", f"{stem}.pdf"} <= names
    for path in paths:
        assert path.stat().st_size > 5_000, path
        assert path.read_bytes()[:4] in (b"\x89PNG", b"%PDF")


def test_fig2_summary_reports_the_seed_statistics(sweep_store):
    table = load_results(sweep_store)
    table = table[(table["config.model.n_neurons"] == 10) & (table["config.task.covariance"] == 0.0)]
    summary = plots.fig2_summary(table)
    lines = [line for line in summary.splitlines() if line.startswith("| rate")]
    assert [line.split(" | ")[2] for line in lines] == ["1", "10", "100"]
    # One synapse: seeds at 0.4 and 0.6 -> mean 0.50, s = 0.1414 (ddof 1), 95% interval half-width
    # t(0.975, 1)·s/√2 = 12.706·0.1 = 1.27; ablation is 0.01 higher.
    cells = lines[0].split(" | ")
    assert cells[6:9] == ["0.50 ± 1.27", "0.51 ± 1.27", "0.52 ± 1.27"]
    spiking = [line for line in summary.splitlines() if line.startswith("| spiking")]
    assert spiking[-1].split(" | ")[-1] == "300.0 ± 0.0 |"


def test_input_conditions_name_and_order_the_interconnect_onset():
    def row(ratio=0.0, random_onset=False, **model):
        return {"config.task.noise_ratio": ratio, "config.task.random_onset": random_onset, **model}

    assert plots.input_condition(row()) == "static input"
    assert plots.input_condition(row(**{"config.model.interconnect_onset": 1})) == "static input"
    late = plots.input_condition(row(**{"config.model.interconnect_onset": 10}))
    assert late == "static input, interconnect on at step 10"
    names = [
        plots.input_condition(row(0.4, True)),
        late,
        plots.input_condition(row(0.4)),
        plots.input_condition(row(**{"config.model.interconnect_onset": 3})),
        plots.input_condition(row()),
    ]
    assert sorted(names, key=plots._condition_order) == [
        "static input",
        "static input, interconnect on at step 3",
        "static input, interconnect on at step 10",
        "noise r = 0.4",
        "random onsets (noise r = 0.4)",
    ]


def test_fig2_summary_ignores_missing_values(sweep_store):
    table = load_results(sweep_store)
    table = table[(table["config.model.n_neurons"] == 10) & (table["config.task.covariance"] == 0.0)]
    # Seed 1 of the rate runs with one synapse lost its last retraining F: seed 0 (0.4) is left alone.
    lost = (table["config.model.variant"] == "rate") & (table["q.n_synapses"] == 1) & (table["seed"] == 1)
    column = [np.append(f[:-1], np.nan) if gone else f for f, gone in zip(table["specialization.retraining.F"], lost)]
    summary = plots.fig2_summary(table.assign(**{"specialization.retraining.F": column}))
    cells = next(line for line in summary.splitlines() if line.startswith("| rate | 10 | 1 |")).split(" | ")
    assert cells[5:8] == ["2", "0.40", "0.51 ± 1.27"]  # one seed left: no interval


def test_empty_results_give_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        plots.fig2_sparsity(pd.DataFrame(), tmp_path)
    with pytest.raises(FileNotFoundError, match="run a sweep"):
        plots.load_table(tmp_path / "missing")


def test_full_modes_match_the_papers_settings(scripts):
    fig2, fig3, fig4, _ = scripts
    configs = fig2.configs(fig2.make_parser("", "fig2").parse_args([]))
    assert len(configs) == 36
    assert {c.seed for c in configs} == {0, 1, 2}
    assert {c.model.variant for c in configs} == {"rate", "spiking"}
    synapses = sorted({c.model.n_synapses for c in configs})
    assert synapses[0] == 1 and synapses[-1] == 625 and len(synapses) >= 6
    for c in configs:
        assert (c.data.dataset, c.data.n_train, c.model.n_neurons, c.train.epochs) == ("mnist", None, 25, 5)
        assert set(c.metrics.metrics) >= {"retraining", "ablation", "correlation"}
    assert {c.train.loss for c in configs} == {"deciding"}  # the reference code's loss
    import common

    marginal = fig2.make_parser("", "fig2").parse_args(["--loss", "marginal"])
    assert {c.train.loss for c in fig2.configs(marginal)} == {"marginal"}
    assert common.store_path(marginal).name == "fig2-marginal"  # never shares the default's store
    fig3_args = fig3.parser().parse_args([])
    schemes = {(c.model.input_scheme, c.model.readout_scheme) for c in fig3.configs(fig3_args)}
    assert schemes == {("separate", "separate"), ("separate", "shared"), ("shared", "shared")}
    sliced = fig3.parser().parse_args(["--covariances", "0"])
    assert {c.task.covariance for c in fig3.configs(sliced)} == {0.0} and len(fig3.configs(sliced)) == 162
    fig4_args = fig4.make_parser("", "fig4").parse_args([])
    fig4_args.conditions = list(fig4.CONDITIONS)
    fig4_configs = fig4.configs(fig4_args)
    assert len(fig4_configs) == 108
    conditions = {(c.task.noise_ratio, c.task.random_onset, c.model.interconnect_onset) for c in fig4_configs}
    static = {(0.0, False, onset) for onset in (1, 3, 5)}
    assert conditions == static | {(0.4, False, 1), (0.9, False, 1), (0.4, True, 1)}


def test_quick_script_runs_resumes_and_redraws(scripts, tmp_path, monkeypatch):
    fig2, _, _, make_figures = scripts
    monkeypatch.setattr(fig2, "P_QUICK", ("one", 1.0))  # two runs keep the test short
    results = tmp_path / "results"
    store = results / "fig2-quick"
    argv = ["--quick", "--store", str(store), "--workers", "1", "--seeds", "1", "--variants", "rate"]
    assert fig2.main(argv) == 0
    runs = sorted((store / "runs").glob("*.h5"))
    assert len(runs) == len(fig2.P_QUICK)
    stamps = [p.stat().st_mtime_ns for p in runs]
    figures = store / "figures"
    assert (figures / "fig2_sparsity.png").is_file() and (store / "summary.md").is_file()

    assert fig2.main(argv) == 0  # resumes: nothing left to run, the runs stay untouched
    assert [p.stat().st_mtime_ns for p in sorted((store / "runs").glob("*.h5"))] == stamps

    (figures / "fig2_sparsity.png").unlink()
    assert make_figures.main(["--results", str(results), "--only", "fig2"]) == 0
    assert (figures / "fig2_sparsity.png").stat().st_size > 5_000
    table = load_results(store)
    assert (store / "summary.md").read_text().count("| rate |") == len(table)


def test_readout_fan_in_measures_each_network_again_with_only_the_readouts_changed(scripts, tmp_path):
    import readout_fan_in

    store = tmp_path / "fan-in"
    argv = ["--quick", "--store", str(store), "--workers", "1", "--seeds", "1"]
    assert readout_fan_in.main(argv) == 0
    again = sorted((store / "network-fan-in").glob("*.h5"))
    assert [p.name for p in again] == sorted(p.name for p in (store / "checkpoints").glob("*.h5"))
    assert len(again) == 2  # one synapse and p = 1
    table = readout_fan_in.paired_table(store)
    # ablation reads the all-modules readouts and correlation none: unchanged to the last bit
    for metric in ("ablation", "correlation"):
        assert (table[f"F.{metric}"] == table[f"F.{metric}.network"]).all()
    assert (table["F.retraining"] != table["F.retraining.network"]).any()  # the module readouts
    stamps = [p.stat().st_mtime_ns for p in again]
    assert readout_fan_in.main(argv) == 0  # resumes: nothing measured again
    assert [p.stat().st_mtime_ns for p in sorted((store / "network-fan-in").glob("*.h5"))] == stamps
    assert (store / "summary.md").read_text().count("| one synapse |") == 3


def test_make_figures_without_results_fails_clearly(scripts, tmp_path, capsys):
    *_, make_figures = scripts
    assert make_figures.main(["--results", str(tmp_path), "--only", "fig3"]) == 1
    assert "run an experiment first" in capsys.readouterr().err


# ----- the claims table and the side-by-side table -----


def _fig2_store(root: Path, preset: str = "default", seeds=(0, 1, 2)) -> Path:
    """Fake Fig. 2 runs: F (last step) 0.9 with one synapse, 0.7 at p = 0.01, 0.3 at p = 0.05, 0.2 at
    p = 1 (rate); spiking 0.1 lower at one synapse; seeds move everything by (seed − 1)·0.02."""
    store = ResultStore(root)
    values = {"one": 0.9, 0.01: 0.7, 0.05: 0.3, 1.0: 0.2}
    for variant in ("rate", "spiking"):
        for p, f in values.items():
            model = dict(variant=variant, n_neurons=25, p=1 / 625, synapses=1) if p == "one" else dict(variant=variant, n_neurons=25, p=p)
            for seed in seeds:
                config = RunConfig(model=ModelConfig(**model), seed=seed, preset=preset)
                shift = (seed - 1) * 0.02 - (0.1 if variant == "spiking" and p == "one" else 0.0)
                store.write(config, fake_result(config, f + shift))
    return root


def test_claims_decide_extreme_sparsity_and_metric_agreement_per_seed(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    import claims

    table = load_results(_fig2_store(tmp_path / "fig2"))
    d, e = claims.extreme(table)
    # rate: d = mean(0.9, 0.7) − 0.3 = 0.5 in every seed; e = 0.3 − 0.2 = 0.1
    np.testing.assert_allclose(d["rate"].to_numpy(), 0.5)
    np.testing.assert_allclose(e["rate"].to_numpy(), 0.1)
    np.testing.assert_allclose(d["spiking"].to_numpy(), 0.45)  # one synapse 0.1 lower: mean(0.8, 0.7) − 0.3
    rows = claims.claim_rows({"fig2": table}, None)
    assert rows["extreme"][0].startswith("holds: d = +0.50") and "e = +0.10" in rows["extreme"][0]
    assert "+0.05 (the same in all 3 seeds)" in rows["extreme"][2]  # 0.5 − 0.45 in every seed
    assert rows["agree"][0].startswith("holds: retraining +0.70")  # 0.9 − 0.2
    assert rows["collapse"][0] == "not run yet" and rows["size"][1] == "not run yet"
    mean, half, n = claims.interval(pd.Series([0.4, 0.6]))
    assert (mean, n) == (0.5, 2) and half == pytest.approx(12.706 * 0.1, rel=1e-4)


def test_claims_from_the_c0_slice_of_fig3_leave_covariance_open(sweep_store, monkeypatch):
    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    import claims

    table = load_results(sweep_store)  # F does not depend on n or c in the fake store
    rows = claims.claim_rows({"fig3": table[table["config.task.covariance"] == 0.0]}, None)
    assert rows["covariance"] == ["not run (c = 0 slice only)"] * 2 + ["–"]
    assert rows["size"][0] == "does not: +0.00 ± 0.00 (n = 2)"
    assert rows["input"][0] == "not run (needs the separate and shared pathways)"  # --architectures separate
    assert claims.claim_rows({"fig3": table}, None)["covariance"][0] == "does not: +0.00 ± 0.00 (n = 2)"


def test_noise_claim_is_the_slope_under_noise_beyond_the_static_collapse(monkeypatch):
    """Fig. 4B: the slope of F over steps 2..T under noise minus with static input, per seed."""
    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    import claims

    curves = {0.0: [1.0, 0.6, 0.5, 0.5], 0.4: [1.0, 0.6, 0.5, 0.4], 0.9: [1.0, 0.6, 0.4, 0.2]}  # slopes: −0.05, −0.1, −0.2
    rows = [
        {"config.model.variant": variant, "seed": seed, "q.n_synapses": 100, "config.task.noise_ratio": noise,
         "config.task.random_onset": False, "config.model.interconnect_onset": 1,
         "specialization.retraining.F": np.array(f) + 0.01 * seed}
        for variant in ("rate", "spiking") for seed in (0, 1, 2) for noise, f in curves.items()
        if not (variant == "spiking" and noise == 0.0)  # spiking: no static runs
    ]
    per_seed = claims.noise(pd.DataFrame(rows), 0.4)
    np.testing.assert_allclose(per_seed["rate"].to_numpy(), -0.05)
    assert "spiking" not in per_seed  # "not run" in the table
    np.testing.assert_allclose(claims.noise(pd.DataFrame(rows), 0.9)["rate"].to_numpy(), -0.15)


def test_side_by_side_puts_the_notebook_beside_both_presets(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    import compare_presets

    _fig2_store(tmp_path / "fig2")
    _fig2_store(tmp_path / "fig2-reference", preset="reference", seeds=(0,))
    lines = compare_presets.side_by_side(tmp_path).splitlines()
    assert "| one synapse | rate | reference notebook | 1 | 0.69 | 0.92 | 0.86 | 0.60 |" in lines
    assert "| one synapse | rate | default preset | 3 | 0.90 ± 0.05 | 0.91 ± 0.05 | 0.92 ± 0.05 | 0.85 ± 0.00 |" in lines
    assert "| p = 1 | spiking | reference preset | 1 | 0.18 | 0.19 | 0.20 | 0.85 |" in lines


# ----- the whole suite in one command -----


def test_run_all_runs_every_stage_with_the_forwarded_options(scripts, monkeypatch, capsys):
    import run_all

    calls = []
    stages = {name: (lambda argv, name=name: calls.append((name, argv)) or 0, defaults) for name, (_, defaults) in run_all.STAGES.items()}
    monkeypatch.setattr(run_all, "STAGES", stages)
    assert run_all.main(["--workers", "2", "--executor", "slurm", "--partition", "cpu"]) == 0
    forwarded = ["--workers", "2", "--executor", "slurm", "--partition", "cpu"]
    assert calls == [
        ("fig2", ["--seeds", "10", *forwarded]),  # the 10 seeds for Fig. 2
        ("fig3", forwarded),
        ("fig4", forwarded),
        ("extreme-sparsity", forwarded),
    ]
    assert "wall time per stage" in capsys.readouterr().out
    calls.clear()
    assert run_all.main(["--stages", "fig2", "--quick"]) == 0
    assert calls == [("fig2", ["--quick"])]  # quick mode keeps the script's own seeds


def test_figure_scripts_run_through_the_slurm_executor(scripts, monkeypatch, tmp_path):
    """--executor slurm hands the same configs to spikemod.slurm.run_slurm with the slurm options."""
    import spikemod.slurm
    from spikemod.executors import plan_sweep

    fig2 = scripts[0]
    handed = {}

    def fake_run_slurm(configs, store, options, **kwargs):
        handed.update(configs=list(configs), store=store, options=options, **kwargs)
        return plan_sweep([], store).report()

    monkeypatch.setattr(spikemod.slurm, "run_slurm", fake_run_slurm)
    argv = ["--quick", "--store", str(tmp_path / "store"), "--executor", "slurm", "--submitit-cluster", "local",
            "--time", "30", "--slurm-option", "account=lab"]
    fig2.main(argv)  # nothing stored by the fake: the script reports that there is nothing to draw
    args = fig2.make_parser("", "fig2").parse_args(argv)
    assert handed["configs"] == fig2.configs(args) and handed["store"] == tmp_path / "store"
    assert (handed["options"].cluster, handed["options"].time_min, handed["options"].extra) == ("local", 30, (("account", "lab"),))


def test_bandwidth_distance_reads_the_synapse_curve_at_the_same_traffic_or_accuracy(monkeypatch):
    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    import bandwidth

    # The synapse family joins (traffic 10, accuracy 0.6, F 0.8) and (1000, 0.8, 0.2) (the mean of
    # two seeds each). A capped run at traffic 100 (the log midpoint) and accuracy 0.7 (the midpoint)
    # reads 0.5 on both curves, so its F of 0.4 lies 0.1 below; a run without traffic is left out
    # on the traffic axis and one outside the accuracy range on the accuracy axis.
    rows = [
        ("synapse", "-", 0.01, 10.0, 0.6, 0.85, 0), ("synapse", "-", 0.01, 10.0, 0.6, 0.75, 1),
        ("synapse", "-", 1.0, 1000.0, 0.8, 0.2, 0), ("synapse", "-", 1.0, 1000.0, 0.8, 0.2, 1),
        ("bandwidth", "address", 1.0, 100.0, 0.7, 0.4, 0),
        ("bandwidth", "address", 1.0, 0.0, 0.5, 0.9, 0),
        ("both", "random", 0.1, 500.0, 0.9, 0.1, 0),
    ]
    data = pd.DataFrame(rows, columns=["family", "router", "config.model.p", "traffic.total", "accuracy_mean", "F.retraining", "seed"])
    by_traffic = bandwidth.distance_to_synapse_curve(data, "retraining")
    assert by_traffic["traffic.total"].tolist() == [100.0, 500.0]
    # 500 lies at log10 = 2.699: 0.8 − 0.6·(2.699 − 1)/2 = 0.290, so its distance is 0.1 − 0.290
    np.testing.assert_allclose(by_traffic["distance"], [-0.1, 0.1 - (0.8 - 0.3 * np.log10(50))])
    by_accuracy = bandwidth.distance_to_synapse_curve(data, "retraining", "accuracy_mean")
    assert by_accuracy["accuracy_mean"].tolist() == [0.7]
    np.testing.assert_allclose(by_accuracy["distance"], [-0.1])


def test_the_parity_claim_reads_the_probes_at_full_density(monkeypatch):
    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    import claims

    def probe(own: float, other: float) -> list:
        return [np.array([[own, other], [other, own]])]  # one step, M(m, k)

    rows = []
    for seed in range(3):
        for loss, other, parity in (("marginal", 0.25, 0.95), ("deciding", 0.75, 0.9)):
            for synapses in (1, 625):
                shift = 0.01 * seed if synapses == 625 else 0.3  # the one-synapse runs must not count
                rows.append({
                    "config.model.variant": "rate", "config.model.n_neurons": 25, "q.n_synapses": synapses,
                    "config.train.loss": loss, "seed": seed,
                    "specialization.retraining.raw": probe(0.9, other + shift),
                    "specialization.parity.raw": probe(0.95, parity - shift),
                    "decisions.holder_decides": [0.9, 0.9], "decisions.margin": [2.0, 2.0],
                    **{f"specialization.{m}.F": [0.5] for m in ("retraining", "ablation", "correlation")},
                })
    cells = claims.parity_row(pd.DataFrame(rows))
    # a = 0.95 − 0.01·seed − 0.5 (mean 0.44); b = 0.75 − 0.25 = 0.50 in every seed
    assert cells[0] == "holds: a = +0.44 ± 0.02 (n = 3); b = +0.50 ± 0.00"
    assert cells[1] == "not run" and cells[2] == "–"


def test_compare_stores_measures_differences_against_the_seed_spread(sweep_store, monkeypatch):
    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    from compare_stores import agreement

    from spikemod.config import ConfigError

    first = load_results(sweep_store)
    shift = np.where(first["seed"] == 0, 0.05, -0.01)  # seed 0's runs moved up, seed 1's down
    moved = first["specialization.retraining.F"].map(lambda f: f.copy()).to_numpy()
    for f, s in zip(moved, shift):
        f[-1] += s
    second = first.assign(**{"specialization.retraining.F": moved})
    table = agreement(first, second).set_index(["quantity", "cell"])
    assert len(table) == 4 * 24  # accuracy and three metrics, per cell (the 48 runs without their seed)
    retraining = table.loc["retraining"]
    assert np.allclose(retraining["n"], 2) and np.allclose(retraining["mean d"], 0.02)
    assert np.allclose(retraining["mean |d|"], 0.03)
    # the fake seeds differ by ±0.1: sd = 0.2 / √2 in every cell
    assert np.allclose(retraining["seed sd"], 0.2 / np.sqrt(2)) and np.allclose(retraining["z"], 0.02 / (0.2 / np.sqrt(2)))
    assert np.allclose(table.loc[["accuracy", "ablation", "correlation"], "mean |d|"], 0.0)
    with pytest.raises(ConfigError, match="share no run"):
        agreement(first, second.assign(run_id=second["run_id"] + "x"))
    with pytest.raises(ConfigError, match="holds no finished run"):
        agreement(first, second.iloc[:0])
