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
training to float tolerance (the batched matmuls sum in a different order). Networks with the same
seed and covariance draw the same pairs, shuffles and input noise; when every such group has the
same size (a sweep over p with a few seeds), each group's images are gathered once and projected
with one larger matmul for all its networks.

Networks of one ensemble may differ in ``seed``, ``model.p`` / ``model.synapses`` (their masks)
and ``task.covariance`` (their pairs); everything else must be equal (:func:`ensemble_key`).
Not supported, and refused with :class:`EnsembleError` (train those runs one by one): Deep-R,
a bandwidth cap, an interconnect onset after step 1, learnable beta or threshold, per-network
learning rates or weight decay.
"""

from __future__ import annotations

import copy
import json
import math
import time
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import snntorch as snn
import torch
import torch.nn.functional as F
from torch import nn

from .config import ConfigError, RunConfig
from .data import ImageSet
from .network import ModularNetwork, competitive_max
from .task import PairDataset
from . import seeding
from .training import (
    TrainingDivergedError,
    TrainResult,
    _describe,
    _noise_fits,
    build_model,
    loss_logits,
    make_optimizer,
    network_input,
)

__all__ = [
    "EnsembleError",
    "ensemble_key",
    "unsupported_reason",
    "ModularEnsemble",
    "gather_images",
    "train_ensemble",
]


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

    ``forward(x [T, G, B, S, D], static, last_only)`` -> (logits [T, K, B, H, C], module logits
    [T, K, B, H, M, C] or None, spikes [T, K, B, N] or None). G divides K: each input is read by
    K/G adjacent networks (G = K: one input per network). Parameters are named like the
    networks' own with ``.`` -> ``__``; with separate input, ``w_in`` holds only each module's own
    block (see :meth:`_own_blocks`). The masks of each network are kept: masked weights stay
    exactly zero.
    """

    def __init__(self, models: Sequence[ModularNetwork]) -> None:
        super().__init__()
        first = models[0]
        self.template = copy.deepcopy(first)  # shape, config and helpers (_integrate); not trained
        self.template.requires_grad_(False)
        self.n_networks = len(models)
        self.spiking = first.spiking
        self.names = [name for name, _ in first.named_parameters()]
        self.separate_input = first.config.input_scheme == "separate"
        # separate input: module m reads only slot m mod S
        slot_of_module = torch.arange(first.n_modules) % first.n_slots
        self.register_buffer("slot_of_module", slot_of_module, persistent=False)
        stacked = {}
        for name in self.names:
            value = torch.stack([dict(m.named_parameters())[name].detach() for m in models])
            if name == "w_in" and self.separate_input:
                value = self._own_blocks(value)
            stacked[name.replace(".", "__")] = nn.Parameter(value)
        self.stacked = nn.ParameterDict(stacked)
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
        state = {name: self.param(name)[k].detach().clone() for name in self.names if name != "w_in"}
        if self.separate_input:
            t = self.template
            w_in = torch.zeros(t.n_modules, t.n_neurons, t.n_slots, t.n_inputs)
            own = self.param("w_in").detach()  # [M, K, n, D]
            for m, slot in enumerate(self.slot_of_module.tolist()):
                w_in[m, :, slot] = own[m, k]
            state["w_in"] = w_in.view(t.n_total, t.n_slots * t.n_inputs)
        else:
            state["w_in"] = self.param("w_in")[k].detach().clone()
        return state

    def _own_blocks(self, w_in: torch.Tensor) -> torch.Tensor:
        """Separate input: the unmasked blocks of W_in [K, N, S·D] as [M, K, n, D] (module m from its slot).

        Only these blocks are trained: the masked rest is zero, gets zero gradients and stays zero
        under Adam(W) and Adadelta, so leaving it out changes no number and halves the work.
        """
        t = self.template
        blocks = w_in.view(len(w_in), t.n_modules, t.n_neurons, t.n_slots, t.n_inputs)
        return torch.stack([blocks[:, m, :, slot] for m, slot in enumerate(self.slot_of_module.tolist())])

    # ----- forward -----

    def forward(self, x: torch.Tensor, static: bool = False, last_only: bool = False):
        """Logits [T, K, B, H, C] (``last_only``: only the last step's, [1, K, B, H, C], all that the
        loss and the accuracy use), module logits [T, K, B, H, M, C] (separate readout) or None,
        and the spikes [T, K, B, N] (spiking) or None."""
        t = self.template
        n_steps = x.shape[0]
        current = self._input_current(x[:1] if static else x)  # [T', K, B, N]
        drive = current + self.param("b")[:, None]
        # static input: one drive tensor reused at every step (its gradients add up)
        drives = [drive[0]] * n_steps if static else drive.unbind(0)
        w_t = (self.param("w_rec") * self.recurrent_masks).transpose(1, 2)
        state = drive.new_zeros(drive.shape[1:])
        states = []
        if self.spiking:
            mem = drive.new_zeros(drive.shape[1:])
            for step_drive in drives:
                state, mem = self.lif(torch.baddbmm(step_drive, state, w_t), mem)
                states.append(state)
            self.lif.reset_mem()
            spikes = torch.stack(states)
            features = spikes if t.config.spike_readout == "membrane" else spikes.cumsum(dim=0)
            return (*self._read_out(features, last_only), spikes.detach())
        for step_drive in drives:
            state = torch.tanh(torch.baddbmm(step_drive, state, w_t))
            states.append(state)
        features = state[None] if last_only else torch.stack(states)
        return (*self._read_out(features, last_only), None)

    def cross_spikes(self, spikes: torch.Tensor) -> torch.Tensor:
        """Spikes sent across the interconnect [T, K, B, M, M] ([i, j]: from module j into module i)."""
        t = self.template
        per_module = spikes.unflatten(-1, (t.n_modules, t.n_neurons))
        return torch.einsum("tkbjc,kijc->tkbij", per_module, self.eligible)

    def _input_current(self, x: torch.Tensor) -> torch.Tensor:
        """W_in·x per network: [T, G, B, S, D] -> [T, K, B, N].

        Separate input is one batched matmul over (module, input) of the own blocks of the input's
        K/G networks with the module's slot: half the arithmetic of the masked product, and no copy
        of x when x is laid out slot-major ([T, S, G, B, D] in memory, as :func:`gather_images`
        makes it).
        """
        t = self.template
        w_in = self.param("w_in")
        scheme = t.config.input_scheme
        if scheme != "separate" and x.shape[1] != self.n_networks:  # one input per network
            x = x.repeat_interleave(self.n_networks // x.shape[1], dim=1)
        if scheme == "fused":
            return torch.einsum("tkbd,knd->tkbn", x.sum(dim=3), w_in)
        if scheme == "shared":
            return torch.einsum("tkbi,kni->tkbn", x.flatten(3), w_in * t.input_mask)
        n_steps, g, b, n_slots, d = x.shape
        m, n, k = t.n_modules, t.n_neurons, self.n_networks
        per_slot = x.permute(0, 3, 1, 2, 4)  # [T, S, G, B, D]
        per_module = per_slot if m == n_slots else per_slot[:, self.slot_of_module]
        rows = per_module.permute(1, 2, 0, 3, 4).reshape(m * g, n_steps * b, d)
        # W·xᵀ ([K/G·n, T·B] per module and input): on the CPU faster than x·Wᵀ, as is its gradient
        current = torch.bmm(w_in.view(m * g, k // g * n, d), rows.transpose(1, 2))  # [M·G, K/G·n, T·B]
        return current.view(m, k, n, n_steps, b).permute(3, 1, 4, 0, 2).reshape(n_steps, k, b, m * n)

    def _read_out(
        self, features: torch.Tensor, last_only: bool
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Logits and module logits (separate readout) or None from the features [T, K, B, N];
        ``last_only``: of the last step only.

        The membrane readout's last step is V_T = Σ_t beta^(T-1-t)·f(z_t), and the readout f
        (bottleneck included) is affine, so it equals f applied to Σ_t beta^(T-1-t)·z_t with its
        biases scaled by Σ_t beta^(T-1-t): one readout instead of T.
        """
        t = self.template
        integrates = t.spiking and t.config.spike_readout == "membrane"
        bias_scale: Union[float, torch.Tensor] = 1.0
        if last_only and integrates:
            decay = t.config.beta ** torch.arange(len(features) - 1, -1, -1, dtype=features.dtype)
            features, bias_scale = torch.tensordot(decay, features, dims=1)[None], decay.sum()
        elif last_only:
            features = features[-1:]
        z = features.unflatten(-1, (t.n_modules, t.n_neurons))  # [T, K, B, M, n]
        if t.bottleneck is not None:
            z = self._module_linear("bottleneck", z, bias_scale)
        heads = (t.n_heads, t.n_classes)
        if t.config.readout_scheme == "separate":
            out = self._module_linear("readout", z, bias_scale)  # [T, K, B, M, H·C]
            out = out if last_only else t._integrate(out)
            module_logits = out.unflatten(-1, heads).transpose(3, 4)  # [T, K, B, H, M, C]
            return competitive_max(module_logits)[0], module_logits
        w, b = self.param("readout.weight"), self.param("readout.bias")
        out = torch.einsum("tkbi,koi->tkbo", z.flatten(-2), w) + b[:, None] * bias_scale
        out = out if last_only else t._integrate(out)
        return out.unflatten(-1, heads), None

    def _module_linear(
        self, name: str, z: torch.Tensor, bias_scale: Union[float, torch.Tensor] = 1.0
    ) -> torch.Tensor:
        w, b = self.param(f"{name}.weight"), self.param(f"{name}.bias")  # [K, M, o, i], [K, M, o]
        return torch.einsum("tkbmi,kmoi->tkbmo", z, w) + b[:, None] * bias_scale


def _losses(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-network :func:`~spikemod.training.task_loss`: logits [T, K, B, H, C], targets [K, B, H] -> [K]."""
    last = logits[-1]
    k = last.shape[0]
    each = F.cross_entropy(last.flatten(0, 2), targets.flatten(), reduction="none")
    return each.view(k, -1).mean(dim=1)


def _accuracies(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-network accuracy per head [K, H]."""
    return (logits[-1].argmax(dim=-1) == targets).float().mean(dim=1)


def gather_images(
    image_sets: Sequence[ImageSet], indices: torch.Tensor, buffer: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """Images of the pairs ``indices`` [K, B, S] (rows of each slot's image set) -> [K, B, S, D].

    One gather per slot straight into a slot-major buffer: the layout the separate input's
    batched matmul reads without a copy. ``buffer`` (a previous result) is overwritten when
    its size fits, which saves a fresh large allocation per batch.
    """
    k, b, n_slots = indices.shape
    shape = (n_slots, k * b, image_sets[0].images.shape[1])
    fits = buffer is not None and buffer.numel() == math.prod(shape)
    out = buffer.permute(2, 0, 1, 3).view(shape) if fits else torch.empty(shape)
    for slot, image_set in enumerate(image_sets):
        torch.index_select(image_set.images, 0, indices[..., slot].reshape(-1), out=out[slot])
    return out.view(n_slots, k, b, -1).permute(1, 2, 0, 3)


def _batches(
    sets: Sequence[PairDataset], batch_size: int, shuffles: Optional[Sequence[torch.Generator]] = None
) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
    """(images [K, B, S, D], targets [K, B, H]) per batch of K data sets that advance together.

    Each set keeps its own pairs and (with ``shuffles``) its own shuffle, as in
    :meth:`~spikemod.task.PairDataset.batches`; the sets share their image sets (equal data configs).
    """
    indices = torch.stack([s.indices for s in sets])  # [K, P, S]
    targets = torch.stack([s.targets for s in sets])  # [K, P, H]
    nets = torch.arange(len(sets))[:, None]
    rows = [
        s.batch_rows(batch_size, shuffles is not None, shuffles[i] if shuffles else None)
        for i, s in enumerate(sets)
    ]
    images = None
    for batch_rows in zip(*rows):  # each batch's images are overwritten by the next batch's
        picked = torch.stack(batch_rows)
        images = gather_images(sets[0].image_sets, indices[nets, picked], images)
        yield images, targets[nets, picked]


def _stacked_input(images: torch.Tensor, configs: Sequence[RunConfig], generators: Sequence[torch.Generator]):
    """Each input's :func:`~spikemod.training.network_input`: images [G, B, S, D] -> [T, G, B, S, D]."""
    inputs = [network_input(x, c, g) for x, c, g in zip(images, configs, generators)]
    if all(static for _, static in inputs):  # the same image at every step, an expanded view: projected once
        return images.expand(configs[0].n_steps, *images.shape), True
    return torch.stack([x for x, _ in inputs], dim=1), False


def _input_groups(configs: Sequence[RunConfig]) -> Tuple[List[int], int]:
    """(an order of the networks, number of inputs G): networks with the same seed and covariance
    draw the same pairs, shuffles and input noise, so when all such groups have the same size they
    share one input each, and the order puts each group's networks next to each other. Otherwise
    every network has its own input (G = K, the given order)."""
    groups: Dict[Tuple[int, float], List[int]] = {}
    for i, config in enumerate(configs):
        groups.setdefault((config.seed, config.task.covariance), []).append(i)
    if len({len(members) for members in groups.values()}) > 1:
        return list(range(len(configs))), len(configs)
    return [i for members in groups.values() for i in members], len(groups)


@torch.no_grad()
def _evaluate(
    ensemble: ModularEnsemble, test_sets: Sequence[PairDataset], inputs: Sequence[RunConfig]
) -> Dict[str, torch.Tensor]:
    """:func:`spikemod.training.evaluate` for every network: loss [K], accuracy [K, H], cross spikes
    [K, M, M]; ``test_sets`` and ``inputs`` (configs) are those of the G inputs."""
    was_training = ensemble.training
    ensemble.eval()
    generators = [seeding.generator(c.seed, seeding.inputs_purpose(test_sets[0].train)) for c in inputs]
    batch_size = inputs[0].train.batch_size
    per_input = ensemble.n_networks // len(inputs)
    loss_sum, correct, cross, count = 0.0, 0.0, 0.0, 0
    for images, targets in _batches(test_sets, batch_size):
        size = targets.shape[1]
        if not _noise_fits(size, inputs[0]):
            continue
        x, static = _stacked_input(images, inputs, generators)
        targets = targets.repeat_interleave(per_input, dim=0)
        logits, module_logits, spikes = ensemble(x, static, last_only=True)
        losses = _losses(loss_logits(logits, module_logits, inputs[0].train.loss), targets)
        loss_sum = loss_sum + losses.double() * size
        correct = correct + _accuracies(logits, targets) * size
        if spikes is not None:
            cross = cross + ensemble.cross_spikes(spikes).mean(dim=0).sum(dim=1)
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
    order, n_inputs = _input_groups(configs)
    configs = [configs[i] for i in order]
    inputs = configs[:: len(configs) // n_inputs]  # one config per input
    first = configs[0]
    train_sets = [PairDataset(c.data, c.task, train=True, seed=c.seed) for c in inputs]
    test_sets = [PairDataset(c.data, c.task, train=False, seed=c.seed) for c in inputs]
    for split in (train_sets[0], test_sets[0]):
        if not _noise_fits(min(first.train.batch_size, len(split)), first):
            raise ConfigError(
                f"structured noise averages {first.task.noise_samples} samples of a batch, but a batch "
                f"holds at most {min(first.train.batch_size, len(split))}; use more pairs or a larger batch"
            )
    n_pixels = train_sets[0].image_sets[0].images.shape[1]
    models = [build_model(c, n_inputs=n_pixels, n_classes=train_sets[0].n_classes) for c in configs]
    ensemble = ModularEnsemble(models)
    optimizer = make_optimizer(ensemble, first.train)
    shuffles = [seeding.generator(c.seed, "shuffle") for c in inputs]
    noises = [seeding.generator(c.seed, "training-noise") for c in inputs]
    per_input = len(configs) // n_inputs

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
        for index, (images, targets) in enumerate(_batches(train_sets, batch_size, shuffles)):
            size = targets.shape[1]
            if not _noise_fits(size, first):
                continue
            x, static = _stacked_input(images, inputs, noises)
            targets = targets.repeat_interleave(per_input, dim=0)
            logits, module_logits, _ = ensemble(x, static, last_only=True)
            losses = _losses(loss_logits(logits, module_logits, first.train.loss), targets)
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
        test = _evaluate(ensemble, test_sets, inputs)
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

    results = {}  # by position in the given configs
    for i, model, history, (_, state, best_epoch) in zip(order, models, histories, best):
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                parameter.copy_(state[name])
        history["best_epoch"] = [best_epoch]
        results[i] = TrainResult(model, history, torch.tensor(history["test_accuracy"][best_epoch]))
    return [results[i] for i in range(len(configs))]
