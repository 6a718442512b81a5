"""The SLURM executor: a sweep's missing runs as a job array, submitted and followed through submitit.

:func:`run_slurm` submits one array job per chunk of runs (:func:`~spikemod.run.make_chunks`, 8
runs by default); each job (:func:`run_job`) runs its chunk with the local executor
(:func:`~spikemod.executors.run_local`) on its CPUs into the same store (per-run files, so
concurrent writers cannot corrupt it). Submitting again schedules only the runs neither finished
nor in a job still queued or running. Every run that did not finish is reported with its config,
error and log path. ``SlurmOptions(cluster="local")`` runs the same code path through submitit's
local executor.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

from tqdm.auto import tqdm

from .config import ConfigError, RunConfig
from .executors import SweepPlan, SweepReport, plan_sweep, run_local
from .identity import run_id
from .results import ResultStore, pid_alive
from .run import make_chunks

#: Default runs per SLURM job (trained together as one stack).
SLURM_CHUNK_SIZE = 8

__all__ = ["SlurmOptions", "SLURM_CHUNK_SIZE", "run_slurm", "run_job"]


@dataclass(frozen=True)
class SlurmOptions:
    """Resources of each SLURM job and how to follow the jobs.

    ``cluster``: ``slurm``, or ``local`` for submitit's local executor (same code path, jobs as
    local processes; for testing). ``cpus``: CPUs per job; a job runs its chunk on that many
    workers. ``wait``: follow the jobs to the end (progress, report); else return once submitted.
    ``extra``: further sbatch options as (name, value) pairs, e.g. ``(("account", "lab"),
    ("qos", "short"))``. ``gpus``: GPUs per job (for ``--device cuda``).
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
    gpus: int = 0

    def __post_init__(self) -> None:
        if self.cluster not in ("slurm", "local"):
            raise ConfigError(f"SlurmOptions.cluster = {self.cluster!r} is invalid: use 'slurm' or 'local'")
        for name in ("time_min", "cpus", "array_parallelism"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"SlurmOptions.{name} = {value!r} is invalid: use a positive integer")
        if isinstance(self.gpus, bool) or not isinstance(self.gpus, int) or self.gpus < 0:
            raise ConfigError(f"SlurmOptions.gpus = {self.gpus!r} is invalid: use an integer >= 0")
        if not self.mem_gb > 0:
            raise ConfigError(f"SlurmOptions.mem_gb = {self.mem_gb!r} is invalid: use a positive number")


def run_job(
    configs: Sequence[RunConfig],
    store_root: str,
    workers: int = 1,
    keep_checkpoints: bool = False,
    device: str = "cpu",
) -> List[str]:
    """Entry point of one SLURM job: run its chunk into the store on ``workers`` processes (the
    job's CPUs), with checkpoints when ``keep_checkpoints``; fail when any run failed. Failures
    carry the job's log path."""
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
        keep_checkpoints=keep_checkpoints,
        device=device,
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
            return pid_alive(int(record["job_id"])) and not Path(record["result"]).exists()

    return {r["job_id"]: r["run_ids"] for r in records if alive(r)}


def run_slurm(
    configs: Sequence[RunConfig],
    store: "str | Path",
    options: SlurmOptions = SlurmOptions(),
    chunk_size: int = SLURM_CHUNK_SIZE,
    progress: bool = True,
    keep_checkpoints: bool = False,
    device: str = "cpu",
) -> SweepReport:
    """Submit the missing runs of ``configs`` as a SLURM job array (one job per chunk) via submitit.

    Runs already in the store, or in jobs of an earlier submission still queued or running, are not
    submitted again. With ``options.wait`` the call follows the jobs (progress bar from the store)
    and reports every run that did not finish with its config, error and log path.
    ``keep_checkpoints``: the jobs store each run's trained network too (see :mod:`spikemod.executors`).
    ``device``: where the jobs train and run the networks (``cuda`` asks for ``options.gpus`` GPUs per job).
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
    plan = plan_sweep(configs, store, keep_checkpoints)
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
            **({"gpus_per_node": options.gpus} if options.gpus else {}),
        )
        n = len(chunks)
        submitted = executor.map_array(
            run_job, chunks, [str(store.root)] * n, [options.cpus] * n, [keep_checkpoints] * n, [device] * n
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
        return plan.report(queued=running)
    _follow(plan, store, options, running, jobs, progress)
    by_id = {run_id(c): c for c in plan.configs}
    stored = store.completed(keep_checkpoints)
    recorded = {f.run_id for f in store.failures(keep_checkpoints)}
    for job_id, ids in running.items():
        lost = [by_id[key] for key in ids if key in by_id and key not in stored and key not in recorded]
        if lost:
            record = json.loads((_submissions_dir(store) / f"{job_id}.json").read_text())
            error = f"SLURM job {job_id} ended without storing this run: {_job_error(record)}"
            for config in lost:
                store.write_failure(config, error, record["stderr"])
    store.rebuild_index()
    return plan.report()


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
            bar.update(len(store.completed(plan.keep_checkpoints) & planned) - bar.n)
        bar.update(len(store.completed(plan.keep_checkpoints) & planned) - bar.n)
    finally:
        bar.close()


def _first_lines(text: str, n: int = 6) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-n:]) if lines else "no error text"
