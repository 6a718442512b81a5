"""Run a :class:`~spikemod.hardware.mapping.LavaNetwork` in Lava's CPU simulator, batched.

The Lava CPU simulator runs every process in an OS process of its own and exchanges messages
every step, so speed depends on the number of processes, not of neurons. :func:`run_lava`
therefore replicates the network once per sample of a batch as one larger population with
block-diagonal weights: per LIF population (neurons with the same dv and vth) one ``RingBuffer``
(the input), one ``LIF`` and one ``Extractor`` (the spikes, streamed to the host each step), and
one ``Sparse`` per pair of populations joined by synapses (Lava 0.10 cannot compile concatenated
ports). With the usual single population that is 4 processes for the whole batch, and a few
networks of thousands of samples each run the 10,000 test pairs.

Delays. A ``Sparse`` sends in step t what it received in step t - 1, so a spike emitted at step
t - 1 reaches its targets at step t: exactly the model's W_rec·s_{t-1}. The external current
I_t = W_in·x_t (computed on the host, as a chip's host would feed it) is column t - 1 of the
``RingBuffer`` and goes straight into the LIF's ``a_in``, arriving in the same step t with no
delay, as in the model. Lava's time steps start at 1, the model's at t = 1 with S_0 = U_0 = 0,
the LIF's initial state.

Lava's ``Var.get``/``set`` move one number per message; the host therefore reads spikes through
``Extractor`` channels (one whole vector per step) and never a ``Monitor``.
"""

from __future__ import annotations

import multiprocessing
import time
from dataclasses import dataclass
from typing import List, Optional

import numpy as np
from scipy import sparse

from .mapping import LavaNetwork


# Lava 0.10 calls multiprocessing.set_start_method("fork") when it is imported, which raises
# "context has already been set" once anything in this Python process has used multiprocessing
# (tqdm does, even when disabled). Lava only needs its processes forked: check that, and let its
# call pass while it is imported.
_START_METHOD = multiprocessing.get_start_method(allow_none=True)
if _START_METHOD not in (None, "fork"):
    raise ImportError(
        f"Lava runs its processes with the 'fork' start method, but this Python process already uses "
        f"{_START_METHOD!r}; import spikemod.hardware.simulator before choosing another start method"
    )
_set_start_method = multiprocessing.set_start_method
if _START_METHOD == "fork":
    multiprocessing.set_start_method = lambda method, force=False: None
try:
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.extractor import Extractor, PyLoihiExtractorModel
    from lava.proc.io.source import RingBuffer
    from lava.proc.lif.process import LIF
    from lava.proc.sparse.process import Sparse
    from lava.utils.weightutils import SignMode
finally:
    multiprocessing.set_start_method = _set_start_method

__all__ = ["LavaSimulationError", "LavaTiming", "run_lava", "run_lava_per_sample", "DEFAULT_BATCH_SIZE"]

#: Samples per compiled network: the 10,000 MNIST test pairs (50 neurons, 10 steps) run as two
#: networks in about 4 s on 2 cores; larger batches gain little and cost memory.
DEFAULT_BATCH_SIZE = 5000
#: How often the host checks Lava's processes while a run is under way.
_POLL_SECONDS = 0.001


class LavaSimulationError(RuntimeError):
    """Lava failed to build, compile or run a network; the message says which and why."""


@dataclass
class LavaTiming:
    """Wall-clock seconds spent building processes, compiling, running and reading spikes."""

    build: float = 0.0
    compile: float = 0.0
    run: float = 0.0
    read: float = 0.0
    networks: int = 0
    run_calls: int = 0

    @property
    def total(self) -> float:
        return self.build + self.compile + self.run + self.read


class _Replica:
    """The Lava processes of ``copies`` copies of ``network`` (block-diagonal), fed from buffers."""

    def __init__(self, network: LavaNetwork, activation: np.ndarray) -> None:
        n_steps, copies, _ = activation.shape
        self.network, self.n_steps, self.copies = network, n_steps, copies
        self.populations = network.populations()
        precision = np.int32 if network.fixed_point else np.float64
        self.sources, self.neurons, self.outputs = [], [], []
        for index in self.populations:
            data = activation[..., index].reshape(n_steps, -1).T.astype(precision)  # [copies·n_p, T]
            source = RingBuffer(data=np.ascontiguousarray(data))
            lif = LIF(
                shape=(copies * len(index),),
                du=network.du,
                dv=network.dv[index[0]].item(),
                vth=network.vth[index[0]].item(),
                bias_mant=np.tile(network.bias_mant[index], copies),
                bias_exp=np.tile(network.bias_exp[index], copies),
            )
            output = Extractor(shape=(copies * len(index),), buffer_size=n_steps)
            source.s_out.connect(lif.a_in)
            lif.s_out.connect(output.in_port)
            self.sources.append(source)
            self.neurons.append(lif)
            self.outputs.append(output)
        eye = sparse.identity(copies, format="csr", dtype=network.weights.dtype)
        kwargs = dict(sign_mode=SignMode.MIXED, num_weight_bits=8, weight_exp=0) if network.fixed_point else {}
        self.synapses = []
        for target, lif in zip(self.populations, self.neurons):
            for source, presynaptic in zip(self.populations, self.neurons):
                block = network.weights[target][:, source]
                if block.nnz == 0:
                    continue
                synapses = Sparse(weights=sparse.kron(eye, block, format="csr"), **kwargs)
                presynaptic.s_out.connect(synapses.s_in)
                synapses.a_out.connect(lif.a_in)
                self.synapses.append(synapses)

    @property
    def anchor(self) -> LIF:
        """The process that runs and stops the whole connected network."""
        return self.neurons[0]

    def run_config(self) -> Loihi2SimCfg:
        return Loihi2SimCfg(
            select_tag="fixed_pt" if self.network.fixed_point else "floating_pt",
            exception_proc_model_map={Extractor: PyLoihiExtractorModel},
        )

    def read(self, out: np.ndarray) -> None:
        """Receive the spikes of the last run into ``out`` [T, copies, N]."""
        for index, output in zip(self.populations, self.outputs):
            received = np.stack([output.receive() for _ in range(self.n_steps)])
            out[..., index] = received.reshape(self.n_steps, self.copies, len(index)) != 0

    def describe(self) -> str:
        n = self.network.n_neurons
        precision = "fixed-point" if self.network.fixed_point else "floating-point"
        return (
            f"{precision} network of {self.copies} cop{'y' if self.copies == 1 else 'ies'} x {n} neurons "
            f"({len(self.populations)} LIF process(es)), {self.n_steps} steps"
        )


def _actors(replica: _Replica) -> list:
    """The OS processes of the running network (Lava's runtime services and process models)."""
    infrastructure = getattr(replica.anchor.runtime, "_messaging_infrastructure", None)
    return list(getattr(infrastructure, "actors", []))


def _failure(stage: str, replica: _Replica, err: Optional[Exception] = None) -> LavaSimulationError:
    """A readable error from a Lava failure (Lava itself only says "N Exception(s) occurred")."""
    details: List[str] = []
    for actor in _actors(replica):
        exception = actor.exception
        if exception:
            lines = [line for line in str(exception[1]).strip().splitlines() if line.strip()]
            details.append(lines[-1] if lines else repr(exception[0]))
    reason = "; ".join(dict.fromkeys(details))
    if not reason:
        reason = f"{type(err).__name__}: {err}" if err is not None else "a Lava process died"
    return LavaSimulationError(f"Lava failed to {stage} the {replica.describe()}: {reason}")


def _compile(replica: _Replica) -> None:
    try:
        replica.anchor.create_runtime(run_cfg=replica.run_config())
    except Exception as err:  # Lava raises bare AssertionErrors, RuntimeErrors, ...
        raise _failure("compile", replica, err) from err


def _run_steps(replica: _Replica, n_steps: int) -> None:
    """``run(RunSteps(n_steps))`` while watching Lava's processes.

    When a process model raises while others wait for its messages, Lava 0.10 deadlocks instead
    of reporting the error. The run therefore starts without blocking; if a process dies, every
    process of the network is terminated and :class:`LavaSimulationError` says what failed.
    """
    anchor = replica.anchor
    anchor.run(condition=RunSteps(num_steps=n_steps, blocking=False))
    runtime = anchor.runtime
    actors = _actors(replica)
    while not any(port.probe() for port in runtime.service_to_runtime):
        if any(actor.exception or not actor.is_alive() for actor in actors):
            error = _failure("run", replica)
            for actor in actors:
                if actor.is_alive():
                    actor.terminate()
            runtime._is_started = False  # nothing left to stop: stop() then only frees shared memory
            raise error
        time.sleep(_POLL_SECONDS)
    try:
        anchor.wait()
    except Exception as err:
        raise _failure("run", replica, err) from err


def _check_current(activation: np.ndarray) -> None:
    if activation.ndim != 3:
        raise ValueError(f"current must be [T, B, N], got shape {activation.shape}")


def run_lava(
    network: LavaNetwork,
    current: np.ndarray,
    batch_size: int = DEFAULT_BATCH_SIZE,
    timing: Optional[LavaTiming] = None,
) -> np.ndarray:
    """Spikes [T, B, N] (bool) of ``network`` driven by the external current [T, B, N].

    The current is the float W_in·x_t of the torch model (no bias); in fixed point it is
    quantised by :meth:`LavaNetwork.activation`. Samples run ``batch_size`` at a time, each batch
    as one compiled network of that many copies and one ``run()``. ``timing`` accumulates where
    the time went.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    activation = network.activation(current)
    _check_current(activation)
    timing = timing if timing is not None else LavaTiming()
    spikes = np.zeros(activation.shape, dtype=bool)
    for start in range(0, activation.shape[1], batch_size):
        began = time.perf_counter()
        replica = _Replica(network, activation[:, start : start + batch_size])
        timing.build += time.perf_counter() - began
        try:
            began = time.perf_counter()
            _compile(replica)
            compiled = time.perf_counter()
            _run_steps(replica, replica.n_steps)
            ran = time.perf_counter()
            replica.read(spikes[:, start : start + batch_size])
            timing.compile += compiled - began
            timing.run += ran - compiled
            timing.read += time.perf_counter() - ran
            timing.networks += 1
            timing.run_calls += 1
        finally:
            replica.anchor.stop()
    return spikes


def run_lava_per_sample(
    network: LavaNetwork, current: np.ndarray, timing: Optional[LavaTiming] = None
) -> np.ndarray:
    """Like :func:`run_lava`, but the naive way: one compiled copy and one ``run()`` per sample.

    Before each sample the host resets the state (u, v and the synaptic buffers) and writes the
    sample's input into the ``RingBuffer`` through ``Var.set``. For comparisons of throughput.
    """
    activation = network.activation(current)
    _check_current(activation)
    timing = timing if timing is not None else LavaTiming()
    n_steps, n_samples, _ = activation.shape
    spikes = np.zeros(activation.shape, dtype=bool)
    if n_samples == 0:
        return spikes
    began = time.perf_counter()
    replica = _Replica(network, activation[:, :1])
    timing.build += time.perf_counter() - began
    try:
        began = time.perf_counter()
        _compile(replica)
        timing.compile += time.perf_counter() - began
        timing.networks += 1
        for b in range(n_samples):
            began = time.perf_counter()
            if b > 0:  # Lava cannot set Vars before the first run
                for index, source, lif in zip(replica.populations, replica.sources, replica.neurons):
                    source.data.set(np.ascontiguousarray(activation[:, b, index].T))
                    lif.u.set(np.zeros(len(index)))
                    lif.v.set(np.zeros(len(index)))
                for synapses in replica.synapses:
                    synapses.a_buff.set(np.zeros(synapses.a_buff.shape))
            _run_steps(replica, n_steps)
            ran = time.perf_counter()
            replica.read(spikes[:, b : b + 1])
            timing.run += ran - began
            timing.read += time.perf_counter() - ran
            timing.run_calls += 1
    finally:
        replica.anchor.stop()
    return spikes
