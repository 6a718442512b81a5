"""Running sweeps: which runs a store still lacks, the report of a sweep, and the local process pool.

:func:`plan_sweep` splits a sweep's configs into those the :class:`~spikemod.results.ResultStore`
already holds and those still to run; :class:`SweepReport` tells what became of each. The local
executor (:func:`run_local`) hands chunks of runs (:func:`~spikemod.run.make_chunks`:
``chunk_size`` runs that may differ in seed, p, covariance, onset and cap, 6 by default, trained as one
stack; ``chunk_size`` 1 trains each run alone) to a process pool, one torch thread per worker,
with progress as done/total and ETA. Each run's result goes into the store as soon as it ends, so
a sweep killed at any moment loses only its unfinished runs, and starting it again runs only those.
The SLURM executor (:mod:`spikemod.slurm`) runs this pool inside each job.

With ``keep_checkpoints`` the worker also stores each run's trained network in the store
(``checkpoints/<run_id>.h5``, before the run's result), and a run counts as done only when both
are stored.

Every run uses one torch thread wherever it runs, so every executor gives the same numbers.
"""

from __future__ import annotations

import os
import sys
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Set

import torch
from tqdm.auto import tqdm

from .config import ConfigError, RunConfig
from .identity import config_overrides, run_id
from .memory import reuse_freed_memory
from .results import ResultStore, RunFailure
from .run import make_chunks, run_chunk
from .training import TrainResult

#: Seconds between progress updates of a local sweep (runs are counted as their results are stored).
PROGRESS_POLL_S = 5.0
#: Default runs per local chunk (trained together as one stack).
LOCAL_CHUNK_SIZE = 6

__all__ = [
    "SweepPlan",
    "plan_sweep",
    "SweepReport",
    "default_workers",
    "run_local",
]


def default_workers() -> int:
    """Local workers by default: one per CPU this process may use (each runs one torch thread)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass(frozen=True)
class SweepPlan:
    """The runs of a sweep split into those already in the store and those still to run.

    ``keep_checkpoints``: a run is done only when its checkpoint is stored too.
    """

    store: Path
    configs: List[RunConfig]
    done: Set[str]
    todo: List[RunConfig]
    keep_checkpoints: bool = False

    def describe(self) -> str:
        """One line of counts, and the last error of every run to do that failed before."""
        failures = {f.run_id: f for f in ResultStore(self.store).failures(self.keep_checkpoints)}
        lines = [
            f"{len(self.configs)} runs: {len(self.done)} done, {len(self.todo)} to run (store {self.store})"
        ]
        lines += [
            f"  previously failed: {failures[run_id(c)].describe()}"
            for c in self.todo
            if run_id(c) in failures
        ]
        return "\n".join(lines)

    def report(self, queued: Optional[Dict[str, List[str]]] = None) -> "SweepReport":
        """What became of the runs to do, as the store holds them now; ``queued``: job id -> run ids
        of jobs still queued or running (their runs are neither failed nor missing)."""
        store = ResultStore(self.store)
        completed = store.completed(self.keep_checkpoints)
        failures = {f.run_id: f for f in store.failures(self.keep_checkpoints)}
        queued = queued or {}
        in_jobs = {key for ids in queued.values() for key in ids}
        report = SweepReport(len(self.configs), len(self.done), 0, queued=queued)
        for config in self.todo:
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


def plan_sweep(
    configs: Sequence[RunConfig], store: "str | Path | ResultStore", keep_checkpoints: bool = False
) -> SweepPlan:
    """Which of ``configs`` the store already holds (``keep_checkpoints``: with their checkpoints)."""
    store = store if isinstance(store, ResultStore) else ResultStore(store)
    done = {run_id(c) for c in configs} & store.completed(keep_checkpoints)
    todo = [c for c in configs if run_id(c) not in done]
    return SweepPlan(store.root, list(configs), done, todo, keep_checkpoints)


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
        """Counts, then every failure and missing run with its config."""
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


def _execute(
    configs: Sequence[RunConfig], store_root: str, log_path: Optional[str], keep_checkpoints: bool, device: str
) -> List[str]:
    """Run the configs not yet stored; store results (and checkpoints) as they end and record
    failures. Returns the failed run ids.

    When a chunk fails, its unfinished runs are retried one by one so that one bad run does not
    take its neighbours down. The process keeps freed memory for reuse (:mod:`spikemod.memory`).
    """
    reuse_freed_memory()
    store = ResultStore(store_root)
    stored = store.completed(keep_checkpoints)
    todo = [c for c in configs if run_id(c) not in stored]
    finished: Set[str] = set()

    def keep(config: RunConfig, trained: TrainResult) -> None:
        store.write_checkpoint(config, trained.model, trained.history)

    def save(config: RunConfig, result: Dict[str, Any]) -> None:
        store.write(config, result)
        finished.add(run_id(config))

    def attempt(chunk: Sequence[RunConfig]) -> bool:
        try:
            run_chunk(chunk, on_result=save, on_trained=keep if keep_checkpoints else None, device=device)
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
    keep_checkpoints: bool = False,
    device: str = "cpu",
) -> SweepReport:
    """Run the missing runs of ``configs`` on ``workers`` local processes (1: in this process),
    then rewrite the store's index. ``device``: where the networks train and run (``cpu`` or
    ``cuda``; the workers share a GPU).

    ``log_path`` is recorded with failures (a SLURM job passes its log file). ``keep_checkpoints``:
    store each run's trained network too (see the module docstring).
    """
    workers = default_workers() if workers is None else workers
    if workers < 1:
        raise ConfigError(f"workers = {workers} is invalid: use a positive integer")
    store = ResultStore(Path(store).resolve())
    store.remove_stale_temporaries()
    plan = plan_sweep(configs, store, keep_checkpoints)
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
                    failed_ids = _execute(chunk, str(store.root), log_path, keep_checkpoints, device)
                    advance([run_id(c) for c in chunk], failed_ids)
        else:
            context = get_context("spawn")  # fork after torch has run threads can deadlock
            with ProcessPoolExecutor(
                min(workers, len(chunks)), mp_context=context, initializer=_init_worker
            ) as pool:
                futures = {
                    pool.submit(_execute, chunk, str(store.root), log_path, keep_checkpoints, device): chunk
                    for chunk in chunks
                }
                pending = set(futures)
                try:
                    while pending:
                        done, pending = wait(pending, timeout=PROGRESS_POLL_S, return_when=FIRST_COMPLETED)
                        stored = store.completed(keep_checkpoints)
                        advance([i for i in todo_ids if i not in counted and i in stored])
                        for future in done:
                            chunk = futures[future]
                            try:
                                failed_ids = future.result()
                            except BrokenProcessPool as err:  # a worker died (killed, out of memory, crashed)
                                error = (
                                    f"worker process died: {err} (when run_local is called from a script, "
                                    "the script must guard its code with `if __name__ == '__main__':`)"
                                )
                                failed_ids = _record_lost(store, chunk, error, log_path, keep_checkpoints)
                            advance([run_id(c) for c in chunk], failed_ids)
                except BaseException:  # e.g. Ctrl-C: start nothing more; unstarted runs stay missing
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
    finally:
        bar.close()
        if store.root.is_dir():
            store.rebuild_index()
    return plan.report()


def _record_lost(
    store: ResultStore, chunk: Sequence[RunConfig], error: str, log_path: Optional[str], keep_checkpoints: bool
) -> List[str]:
    """Record a failure for every run of ``chunk`` that is neither stored nor already recorded as failed."""
    stored = store.completed(keep_checkpoints)
    recorded = {f.run_id for f in store.failures(keep_checkpoints)}
    lost = [c for c in chunk if run_id(c) not in stored and run_id(c) not in recorded]
    for config in lost:
        store.write_failure(config, error, log_path)
    return [run_id(c) for c in lost]
