"""Training K networks of one shape as one batched computation.

The networks of a sweep are tiny (two modules of 25 neurons), so one network at a time leaves the
CPU idle in Python overhead. :class:`ModularEnsemble` stacks the parameters of K
:class:`~spikemod.network.ModularNetwork` s along a leading network dimension and runs the same
equations with batched matmuls over per-network masked weights; :func:`train_ensemble` trains
them exactly as :func:`spikemod.training.train` trains each one alone: the same initialisation
(:func:`~spikemod.training.build_model` with each network's seed), each network's own pairs,
shuffle and input-noise generators, the same loss, optimiser, per-epoch evaluation, best state
and early stop. Adam(W) and Adadelta are elementwise, so one optimiser over the stacked
parameters updates each network as its own optimiser would; results agree with one-by-one
training to float tolerance (the batched matmuls sum in a different order).

Networks of one ensemble may differ in ``seed``, ``model.p`` / ``model.synapses`` (their masks)
and ``task.covariance`` (their pairs); everything else must be equal (:func:`ensemble_key`).
Not supported, and refused with :class:`EnsembleError` (train those runs one by one): Deep-R,
a bandwidth cap, an interconnect onset after step 1, learnable beta or threshold, per-network
learning rates or weight decay.
"""

from __future__ import annotations

import copy
import json
import time
from typing import Dict, List, Optional, Sequence

import snntorch as snn
import torch
import torch.nn.functional as F
from torch import nn

from .config import ConfigError, RunConfig
from .network import ModularNetwork, competitive_max
from .task import PairDataset
from .training import (
    _EVAL_STREAM,
    _INPUT_STREAM,
    _SHUFFLE_STREAM,
    TrainingDivergedError,
    TrainResult,
    _describe,
    _generator,
    _noise_fits,
    build_model,
    make_optimizer,
    network_input,
)

__all__ = ["EnsembleError", "ensemble_key", "unsupported_reason", "ModularEnsemble", "train_ensemble"]


class EnsembleError(ConfigError):
    """These configs cannot train together as one ensemble."""


def ensemble_key(config: RunConfig) -> str:
    """Configs with equal keys can train as one ensemble: the config without the per-network fields
    (seed, p, synapses, covariance) and without the data root."""
    values = config.to_dict()
    values.pop("seed")
    values["data"].pop("data_root")
    values["model"].pop("p")
    values["model"].pop("synapses")
    values["task"].pop("covariance")
    return json.dumps(values, sort_keys=True)


def unsupported_reason(config: RunConfig) -> Optional[str]:
    """Why ``config`` cannot be trained in an ensemble, or None when it can."""
    m = config.model
    if m.deep_r:
        return "Deep-R rewires each network's interconnect on its own"
    if m.bandwidth_cap is not None:
        return "a bandwidth cap routes spikes per network"
    if m.interconnect_onset != 1:
        return f"the interconnect switches on at step {m.interconnect_onset} (a per-network switch)"
    if m.variant == "spiking" and (m.learn_beta or m.learn_threshold):
        return "learnable beta or threshold"
    return None


def _check(configs: Sequence[RunConfig]) -> None:
    if not configs:
        raise EnsembleError("an ensemble needs at least one config")
    for config in configs:
        reason = unsupported_reason(config)
        if reason is not None:
            raise EnsembleError(
                f"run with seed {config.seed} cannot train in an ensemble ({reason}); "
                "train it alone with spikemod.training.train"
            )
    keys = {ensemble_key(c) for c in configs}
    if len(keys) > 1:
        raise EnsembleError(
            "ensemble configs may differ only in seed, model.p/synapses and task.covariance; "
            "group them with spikemod.ensemble.ensemble_key"
        )


class ModularEnsemble(nn.Module):
    """K same-shape networks as one module with stacked parameters [K, ...].

    ``forward(x [T, K, B, S, D], static)`` -> (logits [T, K, B, H, C], cross spikes
    [T, K, B, M, M] or None). Parameters are named like the networks' own with ``.`` -> ``__``.
    The masks of each network are kept: masked weights stay exactly zero.
    """

    def __init__(self, models: Sequence[ModularNetwork]) -> None:
        super().__init__()
        first = models[0]
        self.template = copy.deepcopy(first)  # shape, config and helpers (_integrate); not trained
        self.template.requires_grad_(False)
        self.n_networks = len(models)
        self.spiking = first.spiking
        self.names = [name for name, _ in first.named_parameters()]
        self.stacked = nn.ParameterDict(
            {
                name.replace(".", "__"): nn.Parameter(
                    torch.stack([dict(m.named_parameters())[name].detach() for m in models])
                )
                for name in self.names
            }
        )
        self.register_buffer("recurrent_masks", torch.stack([m.recurrent_mask() for m in models]))
        eligible = torch.stack([m.eligible_sources() for m in models]).float()  # [K, M, M, n]
        self.register_buffer("eligible", eligible)
        self.lif: Optional[snn.Leaky] = copy.deepcopy(first.lif) if first.spiking else None

    def module_parameters(self) -> List[nn.Parameter]:
        """All stacked parameters (for :func:`spikemod.training.make_optimizer`)."""
        return list(self.stacked.values())

    def param(self, name: str) -> torch.Tensor:
        return self.stacked[name.replace(".", "__")]

    def network_state(self, k: int) -> Dict[str, torch.Tensor]:
        """Copies of network ``k``'s parameters, by the network's parameter names."""
        return {name: self.param(name)[k].detach().clone() for name in self.names}

    # ----- forward -----

    def forward(self, x: torch.Tensor, static: bool = False):
        t = self.template
        n_steps = x.shape[0]
        current = self._input_current(x[:1] if static else x)  # [T', K, B, N]
        drive = (current + self.param("b")[:, None]).expand(n_steps, *current.shape[1:])
        w_t = (self.param("w_rec") * self.recurrent_masks).transpose(1, 2)
        state = drive.new_zeros(drive.shape[1:])
        states = []
        cross = None
        if self.spiking:
            mem = drive.new_zeros(drive.shape[1:])
            for step in range(n_steps):
                state, mem = self.lif(torch.baddbmm(drive[step], state, w_t), mem)
                states.append(state)
            self.lif.reset_mem()
            states_t = torch.stack(states)
            per_module = states_t.detach().unflatten(-1, (t.n_modules, t.n_neurons))
            cross = torch.einsum("tkbjc,kijc->tkbij", per_module, self.eligible)
            features = states_t if t.config.spike_readout == "membrane" else states_t.cumsum(dim=0)
        else:
            for step in range(n_steps):
                state = torch.tanh(torch.baddbmm(drive[step], state, w_t))
                states.append(state)
            features = torch.stack(states)
        return self._read_out(features), cross

    def _input_current(self, x: torch.Tensor) -> torch.Tensor:
        """W_in·x per network: [T, K, B, S, D] -> [T, K, B, N].

        Separate input multiplies each module's block of W_in by its own slot only (the other
        blocks are masked to zero), half the arithmetic of the full masked product.
        """
        t = self.template
        w_in = self.param("w_in")
        scheme = t.config.input_scheme
        if scheme == "fused":
            return torch.einsum("tkbd,knd->tkbn", x.sum(dim=3), w_in)
        if scheme == "shared":
            return torch.einsum("tkbi,kni->tkbn", x.flatten(3), w_in * t.input_mask)
        modules = torch.arange(t.n_modules)
        slots = modules % t.n_slots
        w = w_in.unflatten(1, (t.n_modules, t.n_neurons)).unflatten(3, (t.n_slots, t.n_inputs))
        w_own = w[:, modules, :, slots]  # [M, K, n, D]: module m's weights from its slot
        return torch.einsum("tkbmd,mknd->tkbmn", x[..., slots, :], w_own).flatten(-2)

    def _read_out(self, features: torch.Tensor) -> torch.Tensor:
        t = self.template
        z = features.unflatten(-1, (t.n_modules, t.n_neurons))  # [T, K, B, M, n]
        if t.bottleneck is not None:
            z = self._module_linear("bottleneck", z)
        heads = (t.n_heads, t.n_classes)
        if t.config.readout_scheme == "separate":
            out = self._module_linear("readout", z).unflatten(-1, heads).transpose(3, 4)
            logits, _ = competitive_max(t._integrate(out))
            return logits
        w, b = self.param("readout.weight"), self.param("readout.bias")
        out = torch.einsum("tkbi,koi->tkbo", z.flatten(-2), w) + b[:, None]
        return t._integrate(out.unflatten(-1, heads))

    def _module_linear(self, name: str, z: torch.Tensor) -> torch.Tensor:
        w, b = self.param(f"{name}.weight"), self.param(f"{name}.bias")  # [K, M, o, i], [K, M, o]
        return torch.einsum("tkbmi,kmoi->tkbmo", z, w) + b[:, None]


def _losses(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-network :func:`~spikemod.training.task_loss`: logits [T, K, B, H, C], targets [K, B, H] -> [K]."""
    last = logits[-1]
    k = last.shape[0]
    each = F.cross_entropy(last.flatten(0, 2), targets.flatten(), reduction="none")
    return each.view(k, -1).mean(dim=1)


def _accuracies(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-network accuracy per head [K, H]."""
    return (logits[-1].argmax(dim=-1) == targets).float().mean(dim=1)


def _stacked_input(batches, configs: Sequence[RunConfig], generators: Sequence[torch.Generator]):
    """Each network's input through :func:`~spikemod.training.network_input`, stacked to [T, K, B, S, D]."""
    inputs = [network_input(b.images, c, g) for b, c, g in zip(batches, configs, generators)]
    static = all(s for _, s in inputs)
    if static:  # the same image at every step, an expanded view: the model projects it once
        images = torch.stack([b.images for b in batches])
        return images.expand(configs[0].n_steps, *images.shape), True
    return torch.stack([x for x, _ in inputs], dim=1), False


@torch.no_grad()
def _evaluate(
    ensemble: ModularEnsemble, test_sets: Sequence[PairDataset], configs: Sequence[RunConfig]
) -> Dict[str, torch.Tensor]:
    """:func:`spikemod.training.evaluate` for every network: loss [K], accuracy [K, H], cross spikes [K, M, M]."""
    was_training = ensemble.training
    ensemble.eval()
    generators = [_generator(c.seed, _EVAL_STREAM) for c in configs]
    batch_size = configs[0].train.batch_size
    loss_sum, correct, cross, count = 0.0, 0.0, 0.0, 0
    for batches in zip(*(s.batches(batch_size) for s in test_sets)):
        size = len(batches[0].targets)
        if not _noise_fits(size, configs[0]):
            continue
        x, static = _stacked_input(batches, configs, generators)
        targets = torch.stack([b.targets for b in batches])
        logits, cross_spikes = ensemble(x, static)
        loss_sum = loss_sum + _losses(logits, targets).double() * size
        correct = correct + _accuracies(logits, targets) * size
        if cross_spikes is not None:
            cross = cross + cross_spikes.mean(dim=0).sum(dim=1)
        count += size
    ensemble.train(was_training)
    result = {"loss": loss_sum / count, "accuracy": correct / count}
    if ensemble.spiking:
        result["cross_spikes"] = cross / count
    return result


def train_ensemble(configs: Sequence[RunConfig]) -> List[TrainResult]:
    """Train the networks of ``configs`` together; each result equals ``train(config)``'s (float tolerance).

    ``history["samples_per_second"]`` is each network's training samples per second of wall
    time (all K networks advance together: the ensemble's throughput is K times that).
    """
    _check(configs)
    snn.SpikingNeuron.instances.clear()  # snnTorch's registry only grows (snntorch#328)
    first = configs[0]
    train_sets = [PairDataset(c.data, c.task, train=True, seed=c.seed) for c in configs]
    test_sets = [PairDataset(c.data, c.task, train=False, seed=c.seed) for c in configs]
    for split in (train_sets[0], test_sets[0]):
        if not _noise_fits(min(first.train.batch_size, len(split)), first):
            raise ConfigError(
                f"structured noise averages {first.task.noise_samples} samples of a batch, but a batch "
                f"holds at most {min(first.train.batch_size, len(split))}; use more pairs or a larger batch"
            )
    n_inputs = train_sets[0].image_sets[0].images.shape[1]
    models = [build_model(c, n_inputs=n_inputs, n_classes=train_sets[0].n_classes) for c in configs]
    ensemble = ModularEnsemble(models)
    optimizer = make_optimizer(ensemble, first.train)
    shuffles = [_generator(c.seed, _SHUFFLE_STREAM) for c in configs]
    noises = [_generator(c.seed, _INPUT_STREAM) for c in configs]

    k = len(configs)
    keys = ["train_loss", "train_accuracy", "test_loss", "test_accuracy", "samples_per_second"]
    keys += ["test_cross_spikes"] if ensemble.spiking else []
    histories = [{key: [] for key in keys} for _ in range(k)]
    best = [(-1.0, None, 0)] * k  # (accuracy, state, epoch)
    running = list(range(k))  # networks not stopped early
    batch_size = first.train.batch_size
    for epoch in range(first.train.epochs):
        ensemble.train()
        loss_sum, correct, seen = torch.zeros(k, dtype=torch.float64), 0.0, 0
        start = time.perf_counter()
        epoch_batches = zip(*(s.batches(batch_size, shuffle=True, generator=g) for s, g in zip(train_sets, shuffles)))
        for index, batches in enumerate(epoch_batches):
            size = len(batches[0].targets)
            if not _noise_fits(size, first):
                continue
            x, static = _stacked_input(batches, configs, noises)
            targets = torch.stack([b.targets for b in batches])
            logits, _ = ensemble(x, static)
            losses = _losses(logits, targets)
            finite = torch.isfinite(losses)
            if not bool(finite[running].all()):
                bad = configs[[i for i in running if not finite[i]][0]]
                raise TrainingDivergedError(
                    f"loss is not finite at epoch {epoch + 1}, batch {index + 1}: training diverged. "
                    f"Lower TrainConfig.lr or the init scale. Run: {_describe(bad)}"
                )
            optimizer.zero_grad(set_to_none=True)
            losses.sum().backward()
            optimizer.step()
            loss_sum += losses.detach().double() * size
            correct = correct + _accuracies(logits.detach(), targets) * size
            seen += size
        speed = seen / (time.perf_counter() - start)
        test = _evaluate(ensemble, test_sets, configs)
        for i in list(running):
            h = histories[i]
            h["train_loss"].append(loss_sum[i].item() / seen)
            h["train_accuracy"].append((correct[i] / seen).tolist())
            h["test_loss"].append(test["loss"][i].item())
            h["test_accuracy"].append(test["accuracy"][i].tolist())
            h["samples_per_second"].append(speed)
            if ensemble.spiking:
                h["test_cross_spikes"].append(test["cross_spikes"][i].tolist())
            mean_accuracy = test["accuracy"][i].mean().item()
            if mean_accuracy > best[i][0]:
                best[i] = (mean_accuracy, ensemble.network_state(i), epoch)
            target = configs[i].train.target_accuracy
            if target is not None and bool((test["accuracy"][i] >= target).all()):
                running.remove(i)
        if not running:
            break

    results = []
    for model, history, (_, state, best_epoch) in zip(models, histories, best):
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                parameter.copy_(state[name])
        history["best_epoch"] = [best_epoch]
        results.append(TrainResult(model, history, torch.tensor(history["test_accuracy"][best_epoch])))
    return results
