"""The slurm executor (submitit), end to end.

Each test runs twice: through submitit's local executor (jobs as separate local processes, the
same code path; always runs) and on a real SLURM cluster. The SLURM variant is skipped when no
cluster answers, unless SPIKEMOD_REQUIRE_SLURM=1 (CI, after .ci/slurm-up.sh), where that fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time

import pytest

pytest.importorskip("submitit", reason="the slurm executor needs submitit (pip install 'spikemod[slurm]')")

from spikemod.checkpoint import load_checkpoint  # noqa: E402
from spikemod.config import DataConfig, MetricConfig, ModelConfig, RunConfig, TrainConfig  # noqa: E402
from spikemod.executors import run_local  # noqa: E402
from spikemod.identity import run_id  # noqa: E402
from spikemod.results import ResultStore, load_results, table_differences  # noqa: E402
from spikemod.slurm import SlurmOptions, run_slurm  # noqa: E402
from spikemod.sweep import SweepSpec  # noqa: E402

TINY = RunConfig(
    data=DataConfig(dataset="digits"),
    model=ModelConfig(variant="spiking", n_neurons=6, p=0.1),
    train=TrainConfig(epochs=1),
    metrics=MetricConfig(readout_epochs=1),
)
CONFIGS = SweepSpec(TINY, (("model.p", (0.05, 1)), ("seed", (0, 1)))).configs()


def _slurm_problem() -> str | None:
    """Why no SLURM cluster can take jobs here, or None when one can."""
    if shutil.which("sbatch") is None:
        return "sbatch is not installed"
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as err:
        return f"scontrol ping failed: {err}"
    if ping.returncode != 0 or "UP" not in ping.stdout:
        answer = (ping.stdout + ping.stderr).strip().splitlines() or ["no output"]
        return f"no slurmctld answers (scontrol ping: {answer[0]})"
    return None


@pytest.fixture(params=["local", "slurm"])
def cluster(request) -> str:
    if request.param == "slurm":
        problem = _slurm_problem()
        if problem:
            message = f"no SLURM cluster: {problem}; start one with `sudo .ci/slurm-up.sh`"
            if os.environ.get("SPIKEMOD_REQUIRE_SLURM") == "1":
                pytest.fail(message + " (SPIKEMOD_REQUIRE_SLURM=1 forbids skipping)", pytrace=False)
            pytest.skip(message)
    return request.param


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The sweep through the local executor, in the same chunks as the SLURM jobs: a chunk of
    same-shape runs trains as one stack, whose numbers equal one-by-one training only to float
    tolerance, so equal chunking is what makes the two tables exactly equal."""
    store = tmp_path_factory.mktemp("local")
    assert run_local(CONFIGS, store, workers=1, chunk_size=2, progress=False).ok
    return load_results(store)


def _options(cluster: str, **changes) -> SlurmOptions:
    return SlurmOptions(cluster=cluster, time_min=10, mem_gb=2, poll_s=0.5, **changes)


def _submissions(store) -> list[dict]:
    folder = store / "jobs" / "submissions"
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []


def test_slurm_sweep_equals_local_sweep(tmp_path, cluster, reference):
    store = tmp_path / "store"
    # Submit without waiting: one array job per chunk of two same-shape runs.
    queued = run_slurm(CONFIGS, store, _options(cluster, wait=False), chunk_size=2, progress=False)
    assert queued.ok and queued.completed + sum(map(len, queued.queued.values())) == len(CONFIGS)
    first = _submissions(store)
    assert len(first) == 2 and sorted(k for r in first for k in r["run_ids"]) == sorted(map(run_id, CONFIGS))

    # Submitting again while those jobs run schedules nothing new; it waits for them.
    report = run_slurm(CONFIGS, store, _options(cluster), chunk_size=2, progress=False)
    assert report.ok, report.describe()
    assert len(_submissions(store)) == 2
    assert ResultStore(store).completed() == set(map(run_id, CONFIGS))
    assert table_differences(load_results(store), reference) == []

    # Everything is stored: a third call submits nothing and reports all runs done before.
    again = run_slurm(CONFIGS, store, _options(cluster), chunk_size=2, progress=False)
    assert again.ok and again.previously_done == len(CONFIGS) and len(_submissions(store)) == 2


def test_failed_job_is_reported_and_only_missing_runs_are_resubmitted(tmp_path, cluster, monkeypatch):
    monkeypatch.setenv("SPIKEMOD_OFFLINE", "1")  # inherited by the jobs: no download attempts
    bad = TINY.replace(data={"dataset": "mnist", "data_root": str(tmp_path / "no-data")})
    configs = [CONFIGS[0], bad]
    store = tmp_path / "store"
    report = run_slurm(configs, store, _options(cluster), chunk_size=2, progress=False)
    assert not report.ok and report.completed == 1
    (failure,) = report.failures
    assert failure.run_id == run_id(bad) and failure.config == bad
    assert "DataUnavailableError" in failure.error
    assert failure.log_path and os.path.isfile(failure.log_path)
    assert "DataUnavailableError" in open(failure.log_path).read()  # the job's own log says why
    text = report.describe()
    assert run_id(bad) in text and failure.log_path in text and "data.data_root=" in text

    # Resubmitting schedules only the run that did not finish.
    before = {r["job_id"] for r in _submissions(store)}
    again = run_slurm(configs, store, _options(cluster), chunk_size=2, progress=False)
    new = [r for r in _submissions(store) if r["job_id"] not in before]
    assert [r["run_ids"] for r in new] == [[run_id(bad)]]
    assert again.previously_done == 1 and [f.run_id for f in again.failures] == [run_id(bad)]


def test_jobs_keep_checkpoints(tmp_path, cluster):
    """keep_checkpoints travels to the jobs: each run's trained network is stored with its result."""
    store = ResultStore(tmp_path / "store")
    configs = CONFIGS[:2]  # one shape, two seeds: one job, one stack
    report = run_slurm(configs, store.root, _options(cluster), chunk_size=2, progress=False, keep_checkpoints=True)
    assert report.ok, report.describe()
    assert store.completed(with_checkpoints=True) == set(map(run_id, configs))
    for config in configs:
        assert load_checkpoint(store.checkpoint_path(run_id(config))).config == config


@pytest.mark.parametrize("cluster", ["slurm"], indirect=True)
def test_cancelled_job_is_reported_with_its_log(tmp_path, cluster):
    store = tmp_path / "store"
    outcome = {}

    def sweep() -> None:
        outcome["report"] = run_slurm(CONFIGS[:1], store, _options(cluster), progress=False)

    thread = threading.Thread(target=sweep)
    thread.start()
    deadline = time.monotonic() + 60
    while not _submissions(store) and time.monotonic() < deadline:
        time.sleep(0.05)
    (record,) = _submissions(store)
    subprocess.run(["scancel", record["job_id"]], check=True)  # before the job can finish its run
    thread.join(timeout=120)
    report = outcome["report"]
    assert not report.ok and report.completed == 0
    (failure,) = report.failures
    assert failure.run_id == run_id(CONFIGS[0]) and failure.log_path == record["stderr"]
    assert f"SLURM job {record['job_id']} ended without storing this run" in failure.error
    assert "left no result" in failure.error
