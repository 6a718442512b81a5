"""The results store of a sweep: one HDF5 file per run, an index derived from them, and a table.

Layout of a store directory::

    runs/<run_id>.h5         one finished run: its config (JSON) and its result tree
    checkpoints/<run_id>.h5  the run's trained network (spikemod.checkpoint), when the sweep keeps them
    failures/<run_id>.json   the last failure of a run not (yet) finished: config, error, log path
    index.json               summary derived from runs/ (a cache: delete it at will)

A run file is written under a temporary name in ``runs/`` and moved into place with
:func:`os.replace`, which is atomic on POSIX file systems: a killed writer leaves either no file
or a complete one, never a partial one. A checkpoint is written the same way, before its run's
result. Writers never share a file, so any number of processes (local workers, SLURM jobs on a
shared file system) can write into one store. Temporary files left by killed writers are ignored
and removed by :meth:`ResultStore.remove_stale_temporaries`.

Result trees are nested dicts whose leaves are numbers, strings, None, or numeric arrays
(lists, numpy arrays, tensors), stored with :mod:`spikemod.h5tree`; they round-trip exactly.
:func:`load_results` flattens each run into one row of a :class:`ResultTable` with dotted column
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
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional, Sequence

import h5py
import numpy as np

from .config import RunConfig
from .h5tree import read_tree, write_tree
from .identity import config_overrides, run_id

if TYPE_CHECKING:
    from .network import ModularNetwork

__all__ = [
    "FORMAT",
    "RunFailure",
    "ResultStore",
    "ResultTable",
    "load_results",
    "table_differences",
    "pid_alive",
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
def _atomic(path: Path) -> Iterator[Path]:
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
        with _atomic(self.path(key)) as temporary:
            # No HDF5 file locking: every file has one writer, and locks fail on some cluster file systems.
            with h5py.File(temporary, "w", locking=False) as f:
                f.attrs["format"] = FORMAT
                f.attrs["run_id"] = key
                f.attrs["config"] = json.dumps(config.to_dict(), sort_keys=True)
                write_tree(f, result)
        self.failure_path(key).unlink(missing_ok=True)
        return self.path(key)

    def write_checkpoint(self, config: RunConfig, model: "ModularNetwork", history: Dict[str, Any]) -> Path:
        """Store a run's trained network atomically, as :func:`~spikemod.checkpoint.save_checkpoint`
        writes it; returns the file."""
        from .checkpoint import save_checkpoint  # here, so that reading a store does not import torch

        path = self.checkpoint_path(run_id(config))
        with _atomic(path) as temporary:
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


def _flatten(tree: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    flat: Dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


class ResultTable:
    """Runs as rows of flat dicts (``run_id``, ``seed``, ``config.model.p``, ``accuracy``, ...).

    A plain structure for analysis without pandas: :meth:`column` gives a numpy array,
    :meth:`filter` keeps matching rows, and :meth:`to_pandas` converts when pandas is installed.
    """

    def __init__(self, rows: Sequence[Dict[str, Any]]) -> None:
        self.rows: List[Dict[str, Any]] = list(rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        return iter(self.rows)

    def __getitem__(self, index: int) -> Dict[str, Any]:
        return self.rows[index]

    @property
    def columns(self) -> List[str]:
        """Every column name that occurs in some row, sorted."""
        return sorted({key for row in self.rows for key in row})

    def column(self, name: str) -> np.ndarray:
        """One column as an array: stacked [rows, ...] when all values have one shape, else dtype object."""
        missing = [row["run_id"] for row in self.rows if name not in row]
        if missing:
            raise KeyError(f"column {name!r} is missing in {len(missing)} run(s), e.g. {missing[0]}")
        values = [row[name] for row in self.rows]
        if (
            values
            and len({np.shape(v) for v in values}) == 1
            and not any(isinstance(v, str) or v is None for v in values)
        ):
            return np.stack([np.asarray(v) for v in values])
        array = np.empty(len(values), dtype=object)
        array[:] = values
        return array

    def filter(
        self, predicate: Optional[Callable[[Dict[str, Any]], bool]] = None, **equal: Any
    ) -> "ResultTable":
        """Rows where ``predicate(row)`` holds and every ``column=value`` matches (dots as ``__``).

        Example: ``table.filter(config__model__variant="spiking", seed=0)``.
        """
        conditions = {name.replace("__", "."): value for name, value in equal.items()}

        def keep(row: Dict[str, Any]) -> bool:
            matches = all(name in row and row[name] == value for name, value in conditions.items())
            return matches and (predicate is None or predicate(row))

        return ResultTable([row for row in self.rows if keep(row)])

    def to_pandas(self):
        """A pandas DataFrame (array-valued cells stay arrays). Needs pandas, which spikemod does not require."""
        try:
            import pandas
        except ImportError:
            raise ImportError(
                "to_pandas needs pandas (pip install pandas); ResultTable works without it"
            ) from None
        return pandas.DataFrame(self.rows)


def load_results(store: "str | Path | ResultStore") -> ResultTable:
    """Every finished run of a store as a :class:`ResultTable`, sorted by run id.

    Each row holds ``run_id``, ``seed``, the flattened config (``config.<section>.<field>``) and
    the flattened result tree of the run.
    """
    store = store if isinstance(store, ResultStore) else ResultStore(store)
    if not store.root.is_dir():
        raise FileNotFoundError(f"results store {store.root} does not exist; run a sweep into it first")
    rows = []
    for key in sorted(store.completed()):
        run = store.read(key)
        config = run.pop("config")
        row = {"run_id": run.pop("run_id"), "seed": config.seed}
        row.update(_flatten(config.to_dict(), "config."))
        row.update(_flatten(run))
        rows.append(row)
    return ResultTable(rows)


def table_differences(a: ResultTable, b: ResultTable, ignore: Sequence[str] = ("meta.",)) -> List[str]:
    """Human-readable differences between two tables (empty when equal), matching rows by run id.

    Columns starting with a prefix in ``ignore`` (by default provenance and timing) are skipped;
    numbers must be exactly equal (NaN equals NaN).
    """
    rows_a = {row["run_id"]: row for row in a}
    rows_b = {row["run_id"]: row for row in b}
    differences = [f"run {key} only in the first table" for key in sorted(set(rows_a) - set(rows_b))]
    differences += [f"run {key} only in the second table" for key in sorted(set(rows_b) - set(rows_a))]
    for key in sorted(set(rows_a) & set(rows_b)):
        row_a, row_b = rows_a[key], rows_b[key]
        for name in sorted(set(row_a) | set(row_b)):
            if any(name.startswith(prefix) for prefix in ignore):
                continue
            if name not in row_a or name not in row_b:
                differences.append(f"run {key}: column {name} only in one table")
            elif not _equal(row_a[name], row_b[name]):
                differences.append(f"run {key}: {name} = {row_a[name]!r} vs {row_b[name]!r}")
    return differences


def _equal(x: Any, y: Any) -> bool:
    if isinstance(x, (str, type(None))) or isinstance(y, (str, type(None))):
        return x == y
    x, y = np.asarray(x), np.asarray(y)
    return (
        x.shape == y.shape
        and x.dtype == y.dtype
        and bool(np.array_equal(x, y, equal_nan=x.dtype.kind in "fc"))
    )
