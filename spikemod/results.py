"""The results store of a sweep: one HDF5 file per run, an index derived from them, and a table.

Layout of a store directory::

    runs/<run_id>.h5         one finished run: its config (JSON) and its result tree
    checkpoints/<run_id>.h5  the run's trained network (spikemod.checkpoint), when the sweep keeps them
    failures/<run_id>.json   the last failure of a run not (yet) finished: config, error, log path
    <name>/<run_id>.h5       a measurement made later on the run's stored network (e.g. test_onsets)
    index.json               summary derived from runs/ (a cache: delete it at will)

A run file is written under a temporary name in ``runs/`` and moved into place with
:func:`os.replace`, which is atomic on POSIX file systems: a killed writer leaves either no file
or a complete one, never a partial one. A checkpoint is written the same way, before its run's
result. Writers never share a file, so any number of processes (local workers, SLURM jobs on a
shared file system) can write into one store. Temporary files left by killed writers are ignored
and removed by :meth:`ResultStore.remove_stale_temporaries`.

Result trees are nested dicts whose leaves are numbers, strings, None, or numeric arrays
(lists, numpy arrays, tensors), stored with :mod:`spikemod.h5tree`; they round-trip exactly.
:func:`load_results` gives the runs as a pandas DataFrame, one row per run, with dotted column
names (``config.model.p``, ``specialization.retraining.F``). Columns under ``meta.`` hold
provenance and timing (wall time, host, versions); every other column is a deterministic function
of the config.
"""

from __future__ import annotations

import json
import os
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Sequence

import h5py
import numpy as np
import pandas as pd

from .config import RunConfig
from .h5tree import read_tree, write_tree
from .identity import config_overrides, run_id

if TYPE_CHECKING:
    from .network import ModularNetwork

__all__ = [
    "FORMAT",
    "RunFailure",
    "ResultStore",
    "load_results",
    "table_differences",
    "pid_alive",
    "atomic_file",
]

#: Format tag stored in every run file.
FORMAT = "spikemod-run/1"
_SUFFIX = ".h5"
_TEMP_SUFFIX = ".tmp"


@dataclass(frozen=True)
class RunFailure:
    """A run that did not produce a result: its config, the error and where to read more."""

    run_id: str
    config: RunConfig
    error: str
    log_path: Optional[str] = None
    traceback: str = ""

    def describe(self) -> str:
        """One paragraph: run id, error, log path and the config (its non-default fields)."""
        where = f"\n    log: {self.log_path}" if self.log_path else ""
        overrides = ", ".join(f"{k}={v!r}" for k, v in config_overrides(self.config).items())
        return f"run {self.run_id} failed: {self.error}{where}\n    config: {overrides or 'all defaults'}"



@contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """A temporary file beside ``path`` to write; when the block ends it is synced and renamed to
    ``path`` (a crash leaves no half-written ``path``), and it is removed whatever happens."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.parent / f".{path.stem}.{_host()}.{os.getpid()}{_TEMP_SUFFIX}"
    try:
        yield temporary
        with open(temporary, "rb") as f:
            os.fsync(f.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    _fsync_directory(path.parent)

class ResultStore:
    """A directory of per-run HDF5 files (see the module docstring)."""

    def __init__(self, root: "str | Path") -> None:
        self.root = Path(root)
        self.runs_dir = self.root / "runs"
        self.checkpoints_dir = self.root / "checkpoints"
        self.failures_dir = self.root / "failures"
        self.index_path = self.root / "index.json"

    def path(self, key: str) -> Path:
        """File of run ``key`` (whether it exists or not)."""
        return self.runs_dir / f"{key}{_SUFFIX}"

    def checkpoint_path(self, key: str) -> Path:
        """Checkpoint file of run ``key`` (whether it exists or not)."""
        return self.checkpoints_dir / f"{key}{_SUFFIX}"

    def completed(self, with_checkpoints: bool = False) -> set:
        """Ids of the finished runs: the names of the files in ``runs/``; ``with_checkpoints``:
        only those whose checkpoint is stored too."""
        done = _stored(self.runs_dir)
        return done & _stored(self.checkpoints_dir) if with_checkpoints else done

    def has(self, key: str) -> bool:
        return self.path(key).is_file()

    def write(self, config: RunConfig, result: Dict[str, Any]) -> Path:
        """Store one finished run atomically and clear its failure record; returns the file."""
        key = run_id(config)
        with atomic_file(self.path(key)) as temporary:
            # No HDF5 file locking: every file has one writer, and locks fail on some cluster file systems.
            with h5py.File(temporary, "w", locking=False) as f:
                f.attrs["format"] = FORMAT
                f.attrs["run_id"] = key
                f.attrs["config"] = json.dumps(config.to_dict(), sort_keys=True)
                write_tree(f, result)
        self.failure_path(key).unlink(missing_ok=True)
        return self.path(key)

    def measurement_path(self, name: str, key: str) -> Path:
        """File of the measurement ``name`` made later on run ``key``'s stored network."""
        return self.root / name / f"{key}{_SUFFIX}"

    def write_measurement(self, name: str, key: str, tree: Dict[str, Any]) -> Path:
        """Store a later measurement of run ``key`` atomically (``<store>/<name>/<key>.h5``)."""
        path = self.measurement_path(name, key)
        with atomic_file(path) as temporary:
            with h5py.File(temporary, "w", locking=False) as f:
                f.attrs["run_id"] = key
                write_tree(f, tree)
        return path

    def measurements(self, name: str) -> Dict[str, Dict[str, Any]]:
        """Every stored measurement ``name``, by run id."""
        found = {}
        for key in sorted(_stored(self.root / name)):
            with h5py.File(self.measurement_path(name, key), "r", locking=False) as f:
                found[key] = read_tree(f)
        return found

    def write_checkpoint(self, config: RunConfig, model: "ModularNetwork", history: Dict[str, Any]) -> Path:
        """Store a run's trained network atomically, as :func:`~spikemod.checkpoint.save_checkpoint`
        writes it; returns the file."""
        from .checkpoint import save_checkpoint  # here, so that reading a store does not import torch

        path = self.checkpoint_path(run_id(config))
        with atomic_file(path) as temporary:
            save_checkpoint(temporary, model, config, history)
        return path

    def read(self, key: str) -> Dict[str, Any]:
        """One run as a nested dict: ``run_id``, ``config`` (a RunConfig) and its result tree."""
        path = self.path(key)
        if not path.is_file():
            raise FileNotFoundError(f"run {key} is not in the store {self.root} (no file {path})")
        return _read_run(path)

    def failure_path(self, key: str) -> Path:
        return self.failures_dir / f"{key}.json"

    def write_failure(
        self, config: RunConfig, error: str, log_path: Optional[str], traceback: str = ""
    ) -> Path:
        """Record (atomically) that a run failed; a later success removes the record."""
        key = run_id(config)
        self.failures_dir.mkdir(parents=True, exist_ok=True)
        record = {
            "run_id": key,
            "config": config.to_dict(),
            "error": error,
            "log_path": log_path,
            "traceback": traceback,
            "host": socket.gethostname(),
            "time": time.time(),
        }
        path = self.failure_path(key)
        temporary = path.with_name(f".{path.name}.{_host()}.{os.getpid()}{_TEMP_SUFFIX}")
        temporary.write_text(json.dumps(record, indent=2, sort_keys=True))
        os.replace(temporary, path)
        return path

    def failures(self, with_checkpoints: bool = False) -> List[RunFailure]:
        """Failure records of runs that have not finished since (``with_checkpoints``: with their
        checkpoint), sorted by run id."""
        if not self.failures_dir.is_dir():
            return []
        done = self.completed(with_checkpoints)
        records = []
        for path in sorted(self.failures_dir.glob("*.json")):
            values = json.loads(path.read_text())
            if values["run_id"] not in done:
                records.append(
                    RunFailure(
                        values["run_id"],
                        RunConfig.from_dict(values["config"]),
                        values["error"],
                        values.get("log_path"),
                        values.get("traceback", ""),
                    )
                )
        return records

    def remove_stale_temporaries(self) -> int:
        """Delete temporary files of writers on this host that no longer run; returns how many."""
        removed = 0
        host = _host()
        for folder in (self.root, self.runs_dir, self.checkpoints_dir, self.failures_dir):
            if not folder.is_dir():
                continue
            for path in folder.glob(f".*{_TEMP_SUFFIX}"):
                parts = path.name[: -len(_TEMP_SUFFIX)].rsplit(".", 2)
                if len(parts) == 3 and parts[1] == host and parts[2].isdigit() and not pid_alive(int(parts[2])):
                    path.unlink(missing_ok=True)
                    removed += 1
        return removed

    def rebuild_index(self) -> Dict[str, Any]:
        """Rewrite ``index.json`` from the run files (re-reading only new or changed files)."""
        try:
            old = json.loads(self.index_path.read_text())["runs"]
        except (OSError, ValueError, KeyError):
            old = {}
        runs = {}
        for key in sorted(self.completed()):
            stat = self.path(key).stat()
            entry = old.get(key)
            if not entry or entry.get("mtime_ns") != stat.st_mtime_ns or entry.get("size") != stat.st_size:
                with h5py.File(self.path(key), "r", locking=False) as f:
                    entry = {"config": json.loads(f.attrs["config"])}
                entry.update(file=self.path(key).name, mtime_ns=stat.st_mtime_ns, size=stat.st_size)
            runs[key] = entry
        index = {"format": FORMAT, "runs": runs, "failed": sorted(f.run_id for f in self.failures())}
        self.root.mkdir(parents=True, exist_ok=True)
        temporary = self.root / f".index.json.{_host()}.{os.getpid()}{_TEMP_SUFFIX}"
        temporary.write_text(json.dumps(index, indent=1, sort_keys=True))
        os.replace(temporary, self.index_path)
        return index


def _host() -> str:
    """This host's name as used in temporary file names (without dots, which separate the name's fields)."""
    return socket.gethostname().replace(".", "-")


def pid_alive(pid: int) -> bool:
    """Whether a process with id ``pid`` runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stored(folder: Path) -> set:
    """Run ids of the ``<run_id>.h5`` files in ``folder`` (temporary files end in ``.tmp``)."""
    if not folder.is_dir():
        return set()
    return {p.name[: -len(_SUFFIX)] for p in folder.iterdir() if p.name.endswith(_SUFFIX)}


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot sync directories
        pass
    finally:
        os.close(fd)


def _read_run(path: Path) -> Dict[str, Any]:
    with h5py.File(path, "r", locking=False) as f:
        if f.attrs.get("format") != FORMAT:
            raise ValueError(
                f"{path} is not a spikemod run file (format {f.attrs.get('format')!r}, expected {FORMAT})"
            )
        tree = read_tree(f)
    tree.pop("format")
    tree["config"] = RunConfig.from_json(tree["config"])
    return tree


def load_results(store: "str | Path | ResultStore") -> pd.DataFrame:
    """Every finished run of a store as a DataFrame: one row per run, sorted by run id.

    Columns: ``run_id``, ``seed``, the config (``config.<section>.<field>``) and the run's result
    tree, flattened with dots (``specialization.retraining.F``). Array leaves stay numpy arrays in
    object columns; a field that a run lacks is NaN in its row.
    """
    store = store if isinstance(store, ResultStore) else ResultStore(store)
    if not store.root.is_dir():
        raise FileNotFoundError(f"results store {store.root} does not exist; run a sweep into it first")
    records = []
    for key in sorted(store.completed()):
        run = store.read(key)
        config = run.pop("config")
        records.append({"run_id": run.pop("run_id"), "seed": config.seed, "config": config.to_dict(), **run})
    if not records:
        return pd.DataFrame(columns=["run_id", "seed"])
    return pd.json_normalize(records, sep=".")


def table_differences(a: pd.DataFrame, b: pd.DataFrame, ignore: Sequence[str] = ("meta.",)) -> List[str]:
    """Human-readable differences between two results tables (empty when equal), matching rows by run id.

    Columns starting with a prefix in ``ignore`` (by default provenance and timing) are skipped;
    numbers must be exactly equal (NaN equals NaN) and arrays equal in shape and dtype too.
    """
    rows_a, rows_b = a.set_index("run_id"), b.set_index("run_id")
    keys_a, keys_b = set(rows_a.index), set(rows_b.index)
    columns_a, columns_b = (
        {name for name in rows.columns if not name.startswith(tuple(ignore))} for rows in (rows_a, rows_b)
    )
    differences = [f"run {key} only in the first table" for key in sorted(keys_a - keys_b)]
    differences += [f"run {key} only in the second table" for key in sorted(keys_b - keys_a)]
    differences += [f"column {name} only in the first table" for name in sorted(columns_a - columns_b)]
    differences += [f"column {name} only in the second table" for name in sorted(columns_b - columns_a)]
    for key in sorted(keys_a & keys_b):
        for name in sorted(columns_a & columns_b):
            x, y = rows_a.at[key, name], rows_b.at[key, name]
            if not _equal(x, y):
                differences.append(f"run {key}: {name} = {x!r} vs {y!r}")
    return differences


def _equal(x: Any, y: Any) -> bool:
    """Whether two cells are equal: arrays (and lists) in shape, dtype and values, scalars in
    value; NaN (or None) equals NaN."""
    if np.ndim(x) or np.ndim(y):
        x, y = np.asarray(x), np.asarray(y)
        return (
            x.shape == y.shape
            and x.dtype == y.dtype
            and bool(np.array_equal(x, y, equal_nan=x.dtype.kind in "fc"))
        )
    return bool(x == y) or bool(pd.isna(x) and pd.isna(y))
