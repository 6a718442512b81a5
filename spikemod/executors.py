"""Running sweeps: one run, a chunk of runs, a local process pool, or SLURM through submitit.

:func:`run_one` is everything a run does: train, measure specialization, count resources,
compute Q. :func:`run_chunk` runs several runs of one shape, training them together as one ensemble
(:mod:`spikemod.ensemble`) where it can. The executors hand chunks to workers (``chunk_size``
runs that may differ in seed, p and covariance: 6 by default locally, 8 per SLURM job; results
equal one-by-one training to float tolerance, and ``chunk_size`` 1 trains each run alone); each
run's result goes into the :class:`~spikemod.results.ResultStore` as soon as it ends, so a sweep
killed at any moment loses only its unfinished runs, and starting it again runs only those.

- ``local`` (:func:`run_local`): a process pool, one torch thread per worker, progress with
  done/total and ETA.
- ``slurm`` (:func:`run_slurm`): ``submitit.AutoExecutor`` submits one array job per chunk.
  Jobs write into the same store (per-run files, so concurrent writers cannot corrupt it).
  Submitting again schedules only the runs neither finished nor in a job still queued or
  running. Every run that did not finish is reported with its config, error and log path.
  ``SlurmOptions(cluster="local")`` runs the same code path through submitit's local executor.

Every run uses one torch thread wherever it runs, so every executor gives the same numbers.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional, Sequence, Set, Tuple

import numpy as np
import torch
from tqdm.auto import tqdm

from . import __version__
from .config import ConfigError, RunConfig
from .results import ResultStore, RunFailure
from .results import _alive as _pid_alive
from .sweep import config_overrides, run_id

if TYPE_CHECKING:
    from .training import TrainResult

#: Seconds between progress updates of a local sweep (runs are counted as their results are stored).
PROGRESS_POLL_S = 5.0
#: Default runs per chunk (trained together as one ensemble): per local task and per SLURM job.
LOCAL_CHUNK_SIZE, SLURM_CHUNK_SIZE = 6, 8

__all__ = [
    "run_one",
    "run_chunk",
    "make_chunks",
    "SweepPlan",
    "plan_sweep",
    "SweepReport",
    "SlurmOptions",
    "default_workers",
    "run_sweep",
    "run_local",
    "run_slurm",
    "run_job",
]


def run_one(config: RunConfig, trained: Optional["TrainResult"] = None) -> Dict[str, Any]:
    """Train one network and measure it; the result tree stored for the run.

    Keys: ``accuracy`` [H] (test accuracy per head of the kept state) and its mean
    ``accuracy_mean``; ``q`` (papers', exact and graph Q, p, synapse count); ``specialization``
    (``steps`` [T] and, per metric, ``raw``/``base``/``normalised`` [T, M, K], ``module_scores``
    [T, M], ``F`` [T], ``extreme_sparsity`` [T, 2], ``details``); with ``metrics.onset_pairs``,
    ``onset_pairs`` (per ``"t0-t1"`` and feature metric: ``module_scores`` [T, M] and ``F`` [T]
    with both digit onsets fixed, Fig. 4C); ``traffic`` (events crossing
    between modules per test sample: ``crossing`` [M, M] (i <- j), ``total``; spiking also
    ``per_step`` [M, M] from the kept epoch); ``resources`` (mean counts and energy per
    inference); ``history`` (per-epoch training curves); ``meta`` (wall time, host, versions,
    training speed: provenance that is not a function of the config).
    ``trained``: the run's network already trained (by :func:`run_chunk`'s ensemble); it is then
    only measured, and ``wall_time_s`` covers the measurement only.
    """
    from .metrics.suite import measure, measure_onset_pairs
    from .resources import measure_resources
    from .task import PairDataset
    from .training import train

    start = time.perf_counter()
    trained = train(config, progress=False) if trained is None else trained
    model = trained.model
    train_set = PairDataset(config.data, config.task, train=True, seed=config.seed)
    test_set = PairDataset(config.data, config.task, train=False, seed=config.seed)
    specialization = measure(model, train_set, test_set, config)
    counts = measure_resources(model, test_set, config)

    history = dict(trained.history)
    samples_per_second = history.pop("samples_per_second")
    best_epoch = history["best_epoch"][0]
    traffic: Dict[str, Any] = {
        "crossing": counts.crossing.mean(axis=0),
        "total": float(counts.total_crossing.mean()),
    }
    if "test_cross_spikes" in history:
        traffic["per_step"] = np.asarray(history["test_cross_spikes"][best_epoch])
    accuracy = trained.test_accuracy.numpy()
    onset_pairs = {
        pair: {
            name: {"module_scores": scores.module_scores, "F": scores.specialization}
            for name, scores in r.metrics.items()
        }
        for pair, r in measure_onset_pairs(model, train_set, test_set, config).items()
    }
    return {
        "accuracy": accuracy,
        "accuracy_mean": float(accuracy.mean()),
        "q": vars(specialization.modularity),
        "specialization": {
            "steps": specialization.steps,
            "features": specialization.features,
            **{
                name: {
                    "raw": scores.raw,
                    "base": scores.base,
                    "normalised": scores.normalised,
                    "module_scores": scores.module_scores,
                    "F": scores.specialization,
                    "extreme_sparsity": scores.extreme_sparsity,
                    "details": dict(scores.details),
                }
                for name, scores in specialization.metrics.items()
            },
        },
        **({"onset_pairs": onset_pairs} if onset_pairs else {}),
        "traffic": traffic,
        "resources": counts.summary(),
        "history": {key: np.asarray(value) for key, value in history.items()},
        "meta": {
            "wall_time_s": time.perf_counter() - start,
            "samples_per_second": np.asarray(samples_per_second),
            "host": socket.gethostname(),
            "finished_at": time.time(),
            "torch_threads": torch.get_num_threads(),
            "versions": {
                "spikemod": __version__,
                "torch": torch.__version__,
                "python": platform.python_version(),
            },
        },
    }


def run_chunk(
    configs: Sequence[RunConfig],
    on_result: Optional[Callable[[RunConfig, Dict[str, Any]], None]] = None,
) -> List[Dict[str, Any]]:
    """Run configs of one chunk (see :func:`make_chunks`); ``on_result(config, result)`` is called
    as each run ends. Runs that can share an ensemble train together
    (:func:`spikemod.ensemble.train_ensemble`), the others alone; each trained network then goes
    through :func:`run_one`'s measurement, so the result tree is the same either way."""
    from .ensemble import ensemble_key, train_ensemble, unsupported_reason

    groups: Dict[str, List[RunConfig]] = {}
    for config in configs:
        alone = unsupported_reason(config) is not None
        groups.setdefault(f"alone {run_id(config)}" if alone else ensemble_key(config), []).append(config)
    results = []
    for group in groups.values():
        trained: Sequence[Optional[Any]] = train_ensemble(group) if len(group) > 1 else [None]
        for config, network in zip(group, trained):
            result = run_one(config, network)
            if on_result is not None:
                on_result(config, result)
            results.append(result)
    return results


def make_chunks(configs: Sequence[RunConfig], chunk_size: int) -> List[List[RunConfig]]:
    """Group configs by :func:`~spikemod.ensemble.ensemble_key` (first-seen order) and cut groups
    into chunks of at most ``chunk_size``: each chunk can train as one ensemble."""
    from .ensemble import ensemble_key

    if chunk_size < 1:
        raise ConfigError(f"chunk size {chunk_size} is invalid: use a positive integer")
    groups: Dict[str, List[RunConfig]] = {}
    for config in configs:
        groups.setdefault(ensemble_key(config), []).append(config)
    return [group[i : i + chunk_size] for group in groups.values() for i in range(0, len(group), chunk_size)]


def default_workers() -> int:
    """Local workers by default: one per CPU this process may use (each runs one torch thread)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass(frozen=True)
class SweepPlan:
    """The runs of a sweep split into those already in the store and those still to run."""

    store: Path
    configs: List[RunConfig]
    done: Set[str]
    todo: List[RunConfig]

    def describe(self) -> str:
        failures = {f.run_id: f for f in ResultStore(self.store).failures()}
        lines = [
            f"{len(self.configs)} runs: {len(self.done)} done, {len(self.todo)} to run (store {self.store})"
        ]
        lines += [
            f"  previously failed: {failures[run_id(c)].describe()}"
            for c in self.todo
            if run_id(c) in failures
        ]
        return "\n".join(lines)


def plan_sweep(configs: Sequence[RunConfig], store: "str | Path | ResultStore") -> SweepPlan:
    """Which of ``configs`` the store already holds."""
    store = store if isinstance(store, ResultStore) else ResultStore(store)
    completed = store.completed()
    done = {run_id(c) for c in configs} & completed
    return SweepPlan(store.root, list(configs), done, [c for c in configs if run_id(c) not in done])


@dataclass
class SweepReport:
    """Outcome of a sweep call: every run is finished, failed (with error and log), queued, or missing."""

    total: int
    previously_done: int
    completed: int
    failures: List[RunFailure] = field(default_factory=list)
    queued: Dict[str, List[str]] = field(default_factory=dict)  # job id -> run ids (not waited for)
    missing: List[RunConfig] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no run failed or went missing."""
        return not self.failures and not self.missing

    def describe(self) -> str:
        lines = [
            f"sweep: {self.previously_done + self.completed}/{self.total} runs done "
            f"({self.completed} now, {self.previously_done} before), {len(self.failures)} failed"
        ]
        if self.queued:
            n = sum(len(ids) for ids in self.queued.values())
            lines.append(f"{n} runs in {len(self.queued)} queued or running job(s): {', '.join(self.queued)}")
            lines.append("run the same command again to wait for them, or to resubmit what is missing")
        lines += [failure.describe() for failure in self.failures]
        lines += [
            f"run {run_id(c)} did not finish and left no error record\n    config: "
            + ", ".join(f"{k}={v!r}" for k, v in config_overrides(c).items())
            for c in self.missing
        ]
        if self.failures or self.missing:
            lines.append("run the same command again to retry the runs that did not finish")
        return "\n".join(lines)


def _report(
    plan: SweepPlan, store: ResultStore, queued: Optional[Dict[str, List[str]]] = None
) -> SweepReport:
    completed = store.completed()
    failures = {f.run_id: f for f in store.failures()}
    queued = queued or {}
    in_jobs = {key for ids in queued.values() for key in ids}
    report = SweepReport(len(plan.configs), len(plan.done), 0, queued=queued)
    for config in plan.todo:
        key = run_id(config)
        if key in completed:
            report.completed += 1
        elif key in in_jobs:
            continue
        elif key in failures:
            report.failures.append(failures[key])
        else:
            report.missing.append(config)
    return report


# ----- executing chunks (in any process) -----


@contextmanager
def _one_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _init_worker() -> None:
    torch.set_num_threads(1)


def _execute(configs: Sequence[RunConfig], store_root: str, log_path: Optional[str]) -> List[str]:
    """Run the configs not yet stored; store results as they end and record failures. Returns the failed run ids.

    When a chunk fails, its unfinished runs are retried one by one so that one bad run does not
    take its neighbours down.
    """
    store = ResultStore(store_root)
    todo = [c for c in configs if not store.has(run_id(c))]
    finished: Set[str] = set()

    def save(config: RunConfig, result: Dict[str, Any]) -> None:
        store.write(config, result)
        finished.add(run_id(config))

    def attempt(chunk: Sequence[RunConfig]) -> bool:
        try:
            run_chunk(chunk, on_result=save)
            return True
        except Exception as err:  # recorded with its traceback, reported by the sweep
            if len(chunk) == 1:
                trace = traceback.format_exc()
                store.write_failure(chunk[0], f"{type(err).__name__}: {err}", log_path, trace)
                print(f"run {run_id(chunk[0])} failed:\n{trace}", file=sys.stderr, flush=True)
            return False

    if todo and not attempt(todo) and len(todo) > 1:
        for config in [c for c in todo if run_id(c) not in finished]:
            attempt([config])
    return [run_id(c) for c in todo if run_id(c) not in finished]


def run_local(
    configs: Sequence[RunConfig],
    store: "str | Path",
    workers: Optional[int] = None,
    chunk_size: int = LOCAL_CHUNK_SIZE,
    progress: bool = True,
    log_path: Optional[str] = None,
) -> SweepReport:
    """Run the missing runs of ``configs`` on ``workers`` local processes (1: in this process).

    ``log_path`` is recorded with failures (a SLURM job passes its log file).
    """
    workers = default_workers() if workers is None else workers
    if workers < 1:
        raise ConfigError(f"workers = {workers} is invalid: use a positive integer")
    store = ResultStore(Path(store).resolve())
    store.remove_stale_temporaries()
    plan = plan_sweep(configs, store)
    chunks = make_chunks(plan.todo, chunk_size)
    bar = tqdm(
        total=len(plan.configs),
        initial=len(plan.done),
        unit="run",
        desc="sweep",
        disable=not progress,
        dynamic_ncols=True,
    )
    failed = 0
    counted: Set[str] = set()
    todo_ids = [run_id(c) for c in plan.todo]

    def advance(ids: Sequence[str], failed_ids: Sequence[str] = ()) -> None:
        """Count runs as they end: stored ones while their chunk trains on, the rest when it ends."""
        nonlocal failed
        new = [i for i in ids if i not in counted]
        counted.update(new)
        failed += len(failed_ids)
        bar.update(len(new))
        bar.set_postfix(failed=failed, refresh=True)

    try:
        if workers == 1 or len(chunks) <= 1:
            with _one_thread():
                for chunk in chunks:
                    failed_ids = _execute(chunk, str(store.root), log_path)
                    advance([run_id(c) for c in chunk], failed_ids)
        else:
            context = get_context("spawn")  # fork after torch has run threads can deadlock
            with ProcessPoolExecutor(
                min(workers, len(chunks)), mp_context=context, initializer=_init_worker
            ) as pool:
                futures = {pool.submit(_execute, chunk, str(store.root), log_path): chunk for chunk in chunks}
                pending = set(futures)
                try:
                    while pending:
                        done, pending = wait(pending, timeout=PROGRESS_POLL_S, return_when=FIRST_COMPLETED)
                        advance([i for i in todo_ids if i not in counted and store.has(i)])
                        for future in done:
                            chunk = futures[future]
                            try:
                                failed_ids = future.result()
                            except BrokenProcessPool as err:  # a worker died (killed, out of memory, crashed)
                                error = (
                                    f"worker process died: {err} (when run_sweep is called from a script, "
                                    "the script must guard its code with `if __name__ == '__main__':`)"
                                )
                                failed_ids = _record_lost(store, chunk, error, log_path)
                            advance([run_id(c) for c in chunk], failed_ids)
                except BaseException:  # e.g. Ctrl-C: start nothing more; unstarted runs stay missing
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
    finally:
        bar.close()
    return _report(plan, store)


def _record_lost(
    store: ResultStore, chunk: Sequence[RunConfig], error: str, log_path: Optional[str]
) -> List[str]:
    """Record a failure for every run of ``chunk`` that is neither stored nor already recorded as failed."""
    recorded = {f.run_id for f in store.failures()}
    lost = [c for c in chunk if not store.has(run_id(c)) and run_id(c) not in recorded]
    for config in lost:
        store.write_failure(config, error, log_path)
    return [run_id(c) for c in lost]


# ----- SLURM through submitit -----


@dataclass(frozen=True)
class SlurmOptions:
    """Resources of each SLURM job and how to follow the jobs.

    ``cluster``: ``slurm``, or ``local`` for submitit's local executor (same code path, jobs as
    local processes; for testing). ``cpus``: CPUs per job; a job runs its chunk on that many
    workers. ``wait``: follow the jobs to the end (progress, report); else return once submitted.
    ``extra``: further sbatch options as (name, value) pairs, e.g. ``(("account", "lab"),
    ("qos", "short"))``.
    """

    partition: Optional[str] = None
    time_min: int = 60
    cpus: int = 1
    mem_gb: float = 4.0
    array_parallelism: int = 64
    cluster: str = "slurm"
    wait: bool = True
    poll_s: float = 2.0
    job_name: str = "spikemod-sweep"
    extra: Tuple[Tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.cluster not in ("slurm", "local"):
            raise ConfigError(f"SlurmOptions.cluster = {self.cluster!r} is invalid: use 'slurm' or 'local'")
        for name in ("time_min", "cpus", "array_parallelism"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"SlurmOptions.{name} = {value!r} is invalid: use a positive integer")
        if not self.mem_gb > 0:
            raise ConfigError(f"SlurmOptions.mem_gb = {self.mem_gb!r} is invalid: use a positive number")


def run_job(configs: Sequence[RunConfig], store_root: str, workers: int = 1) -> List[str]:
    """Entry point of one SLURM job: run its chunk into the store on ``workers`` processes (the
    job's CPUs); fail when any run failed. Failures carry the job's log path."""
    import submitit

    environment = submitit.JobEnvironment()
    log_path = str(environment.paths.stderr)
    workers = max(1, min(workers, len(configs)))
    report = run_local(
        configs,
        store_root,
        workers=workers,
        chunk_size=math.ceil(len(configs) / workers),
        progress=False,
        log_path=log_path,
    )
    if not report.ok:
        ids = [f.run_id for f in report.failures] + [run_id(c) for c in report.missing]
        raise RuntimeError(
            f"{len(ids)} of {len(configs)} runs of job {environment.job_id} failed: {', '.join(ids)}; "
            f"errors in {Path(store_root) / 'failures'}"
        )
    return [run_id(c) for c in configs]


def _submissions_dir(store: ResultStore) -> Path:
    return store.root / "jobs" / "submissions"


def _slurm_active_jobs() -> Set[str]:
    """Ids (``123`` or ``123_4``) of this user's queued or running SLURM jobs."""
    try:
        out = subprocess.run(
            ["squeue", "-h", "-r", "-u", str(os.getuid()), "-o", "%i"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
    except (OSError, subprocess.SubprocessError) as err:
        raise RuntimeError(f"cannot query the SLURM queue with squeue: {err}") from None
    return set(out.split())


def _active_submissions(
    store: ResultStore, cluster: str, jobs: Optional[Dict[str, Any]] = None
) -> Dict[str, List[str]]:
    """Submissions into this store whose jobs are still queued or running: job id -> run ids.

    ``jobs`` are this process's submitit jobs; for the local cluster their ``done()`` also reaps
    the finished job processes.
    """
    folder = _submissions_dir(store)
    records = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []
    records = [r for r in records if r["cluster"] == cluster]
    if not records:
        return {}
    jobs = jobs or {}
    if cluster == "slurm":
        queued = _slurm_active_jobs()
        alive = lambda record: record["job_id"] in queued  # noqa: E731
    else:  # submitit's local executor: the job id is the pid of the job's controller process

        def alive(record: Dict[str, Any]) -> bool:
            if record["job_id"] in jobs:
                return not jobs[record["job_id"]].done()
            return _pid_alive(int(record["job_id"])) and not Path(record["result"]).exists()

    return {r["job_id"]: r["run_ids"] for r in records if alive(r)}


def run_slurm(
    configs: Sequence[RunConfig],
    store: "str | Path",
    options: SlurmOptions = SlurmOptions(),
    chunk_size: int = SLURM_CHUNK_SIZE,
    progress: bool = True,
) -> SweepReport:
    """Submit the missing runs of ``configs`` as a SLURM job array (one job per chunk) via submitit.

    Runs already in the store, or in jobs of an earlier submission still queued or running, are not
    submitted again. With ``options.wait`` the call follows the jobs (progress bar from the store)
    and reports every run that did not finish with its config, error and log path.
    """
    try:
        import submitit
    except ImportError:
        raise ConfigError("the slurm executor needs submitit: pip install 'spikemod[slurm]'") from None
    if options.cluster == "slurm" and shutil.which("sbatch") is None:
        raise ConfigError(
            "sbatch not found: the slurm executor needs a SLURM cluster. Use --executor local, or "
            "--submitit-cluster local to run the jobs as local processes"
        )
    store = ResultStore(Path(store).resolve())
    store.remove_stale_temporaries()
    plan = plan_sweep(configs, store)
    running = _active_submissions(store, options.cluster)
    busy = {key for ids in running.values() for key in ids}
    chunks = make_chunks([c for c in plan.todo if run_id(c) not in busy], chunk_size)

    jobs: Dict[str, Any] = {}
    if chunks:
        executor = submitit.AutoExecutor(folder=store.root / "jobs" / "%j", cluster=options.cluster)
        executor.update_parameters(
            name=options.job_name,
            timeout_min=options.time_min,
            cpus_per_task=options.cpus,
            mem_gb=options.mem_gb,
            slurm_partition=options.partition,
            slurm_array_parallelism=options.array_parallelism,
            slurm_additional_parameters=dict(options.extra) or None,
        )
        submitted = executor.map_array(
            run_job, chunks, [str(store.root)] * len(chunks), [options.cpus] * len(chunks)
        )
        _submissions_dir(store).mkdir(parents=True, exist_ok=True)
        for job, chunk in zip(submitted, chunks):
            record = {
                "job_id": job.job_id,
                "cluster": options.cluster,
                "run_ids": [run_id(c) for c in chunk],
                "stdout": str(job.paths.stdout),
                "stderr": str(job.paths.stderr),
                "result": str(job.paths.result_pickle),
                "submitted_at": time.time(),
            }
            (_submissions_dir(store) / f"{job.job_id}.json").write_text(json.dumps(record, indent=1))
            running[job.job_id] = record["run_ids"]
            jobs[job.job_id] = job
            for key in record["run_ids"]:  # a failure record describes the latest attempt only
                store.failure_path(key).unlink(missing_ok=True)
    if not options.wait:
        return _report(plan, store, queued=running)
    _follow(plan, store, options, running, jobs, progress)
    by_id = {run_id(c): c for c in plan.configs}
    recorded = {f.run_id for f in store.failures()}
    for job_id, ids in running.items():
        lost = [by_id[key] for key in ids if key in by_id and not store.has(key) and key not in recorded]
        if lost:
            record = json.loads((_submissions_dir(store) / f"{job_id}.json").read_text())
            error = f"SLURM job {job_id} ended without storing this run: {_job_error(record)}"
            for config in lost:
                store.write_failure(config, error, record["stderr"])
    store.rebuild_index()
    return _report(plan, store)


def _job_error(record: Dict[str, Any]) -> str:
    """Why a finished job left runs unstored: its error trace, or the end of its error log."""
    result = Path(record["result"])
    if result.exists():
        from submitit.core.utils import pickle_load

        outcome, trace = pickle_load(result)  # submitit's own result file (what job.exception() reads)
        return _first_lines(str(trace)) if outcome == "error" else "the job finished without error"
    stderr = Path(record["stderr"])
    log = stderr.read_text(errors="replace")[-4000:] if stderr.exists() else ""
    return f"the job left no result (time limit, memory, cancelled, node failure?); log: {_first_lines(log)}"


def _follow(
    plan: SweepPlan,
    store: ResultStore,
    options: SlurmOptions,
    running: Dict[str, List[str]],
    jobs: Dict[str, Any],
    progress: bool,
) -> None:
    """Wait until no job of ``running`` is queued or running, showing runs done / total from the store."""
    planned = {run_id(c) for c in plan.configs}
    bar = tqdm(
        total=len(planned),
        initial=len(plan.done),
        unit="run",
        desc="sweep (slurm)",
        disable=not progress,
        dynamic_ncols=True,
    )
    try:
        while _active_submissions(store, options.cluster, jobs).keys() & running.keys():
            time.sleep(options.poll_s)
            bar.update(len(store.completed() & planned) - bar.n)
        bar.update(len(store.completed() & planned) - bar.n)
    finally:
        bar.close()


def _first_lines(text: str, n: int = 6) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-n:]) if lines else "no error text"


def run_sweep(
    configs: Sequence[RunConfig],
    store: "str | Path",
    executor: str = "local",
    workers: Optional[int] = None,
    chunk_size: Optional[int] = None,
    slurm: Optional[SlurmOptions] = None,
    progress: bool = True,
) -> SweepReport:
    """Run the missing runs of a sweep with the ``local`` process pool or on ``slurm``."""
    if executor == "local":
        try:
            return run_local(
                configs, store, workers=workers, chunk_size=chunk_size or LOCAL_CHUNK_SIZE, progress=progress
            )
        finally:
            if Path(store).is_dir():
                ResultStore(store).rebuild_index()
    if executor == "slurm":
        return run_slurm(
            configs, store, slurm or SlurmOptions(), chunk_size=chunk_size or SLURM_CHUNK_SIZE, progress=progress
        )
    raise ConfigError(f"executor {executor!r} is unknown: use 'local' or 'slurm'")
