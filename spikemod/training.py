"""Training networks on the two-digit parity task: one trainer for one network or K at once.

``train(config)`` trains one network; ``train([configs])`` trains K networks as one batched
computation (:class:`~spikemod.stack.NetworkStack`) and returns one result per config, each equal
to what ``train(config)`` gives to float rounding (the batched matmuls sum in another order).
Networks trained together must share what shapes the tensors (:func:`batch_key`); they may differ
in seed, p or synapse count, covariance, interconnect onset, bandwidth cap and target accuracy.

The loss is the cross-entropy of the logits at the last step, averaged over the heads; with
separate readouts ``TrainConfig.loss`` chooses which logits (:func:`loss_logits`): the deciding
module's, as in the reference code, or all modules' marginalised over the deciding module. Module
parameters train with Adadelta or AdamW; Deep-R connections with their own Adam
(:class:`~spikemod.deepr.DeepR`, random-walk temperature deep_r_noise·(1 - p)). After every epoch
each network is evaluated on its test pairs (the ``inputs/test`` stream of :mod:`spikemod.seeding`,
the inputs its metrics and resource counts see too); the state with the best mean test accuracy is
kept (or the final one, ``TrainConfig.keep``), and a network stops early once every head reaches
``target_accuracy``. With ``drop_last`` a last training batch smaller than the batch size is skipped. Same config and seed
give the same numbers on the same machine and library build. With structured input noise, a final
batch smaller than the noise's ``noise_samples`` is skipped (the noise averages that many samples).

Networks with the same seed and covariance draw the same pairs, shuffles and input noise; when
every such group has the same size (a sweep over p with a few seeds), each group's images are
gathered once and projected with one larger matmul for all its networks.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union, overload

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import seeding
from .config import ConfigError, RunConfig, TrainConfig
from .data import ImageSet
from .deepr import DeepR
from .network import ModularNetwork
from .stack import NetworkStack
from .task import PairDataset, network_input, noise_fits

__all__ = [
    "TrainResult",
    "TrainingDivergedError",
    "batch_key",
    "build_model",
    "check_device",
    "make_optimizer",
    "loss_logits",
    "task_loss",
    "task_losses",
    "evaluate",
    "gather_images",
    "train",
]


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass
class TrainResult:
    """The trained model (the kept state), its history and its test accuracy per head [H].

    ``history`` holds one entry per epoch of ``train_loss``, ``train_accuracy`` [H], ``test_loss``,
    ``test_accuracy`` [H], ``samples_per_second`` (this network's training samples per second of
    wall time; K networks trained together advance together) and, spiking only,
    ``test_cross_spikes`` [M, M] (spikes crossing from module j to i per test sample and step);
    ``best_epoch`` is [index of the kept epoch] (the best one, or the last with ``keep="final"``).
    """

    model: ModularNetwork
    history: Dict[str, list]
    test_accuracy: torch.Tensor


def batch_key(config: RunConfig) -> str:
    """Configs with equal keys can train together: the config without the fields a network of a
    stack may have of its own (seed, p, synapses, covariance, interconnect onset, bandwidth cap,
    target accuracy) and without the data root."""
    values = config.to_dict()
    values.pop("seed")
    values["data"].pop("data_root")
    for name in ("p", "synapses", "interconnect_onset", "bandwidth_cap"):
        values["model"].pop(name)
    values["task"].pop("covariance")
    values["train"].pop("target_accuracy")
    return json.dumps(values, sort_keys=True)


def build_model(config: RunConfig, n_inputs: int = 784, n_classes: int = 10) -> ModularNetwork:
    """The network for ``config``, initialised from the ``init`` stream of ``config.seed`` without
    touching the global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seeding.stream_seed(config.seed, "init"))
        return ModularNetwork(
            config.model,
            n_inputs=n_inputs,
            n_slots=2,
            n_heads=config.task.n_heads,
            n_classes=n_classes,
            router_seed=seeding.stream_seed(config.seed, "router"),
        )


def make_optimizer(params: Sequence[torch.nn.Parameter], train_cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adadelta (default lr 0.5) or AdamW (default lr 1e-3) over ``params``.

    AdamW uses PyTorch's fused CPU kernel and Adadelta its multi-tensor one: several times faster
    than the per-parameter loop for these small networks, with the same update.
    """
    if train_cfg.optimizer == "adadelta":
        return torch.optim.Adadelta(
            params, lr=train_cfg.learning_rate, weight_decay=train_cfg.weight_decay, foreach=True
        )
    return torch.optim.AdamW(params, lr=train_cfg.learning_rate, weight_decay=train_cfg.weight_decay, fused=True)


def loss_logits(logits: torch.Tensor, module_logits: Optional[torch.Tensor], loss: str) -> torch.Tensor:
    """The logits that the task loss reads (``TrainConfig.loss``): [..., H, C], or [..., H, M, C]
    for a cross-entropy per module.

    ``deciding``: ``logits``, the deciding module's. ``marginal``: log sum_m exp(``module_logits``
    [..., H, M, C]), whose softmax is a softmax over all modules' logits summed over modules per
    class. ``each``: ``module_logits`` themselves, so that every module answers every sample (the
    loss sums the modules' cross-entropies). Without module logits (a shared readout) all are
    ``logits``.
    """
    if module_logits is None:
        return logits
    if loss == "marginal":
        return module_logits.logsumexp(dim=-2)
    if loss == "each":
        return module_logits
    return logits


def _cross_entropy(last: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy [*targets.shape] of logits [*targets.shape, C], or summed over modules for
    logits [*targets.shape, M, C]."""
    if last.dim() == targets.dim() + 2:  # a cross-entropy per module, summed
        modules = last.shape[-2]
        targets = targets.unsqueeze(-1).expand(*targets.shape, modules)
        each = F.cross_entropy(last.flatten(0, -2), targets.flatten(), reduction="none")
        return each.view(targets.shape).sum(dim=-1)
    return F.cross_entropy(last.flatten(0, -2), targets.flatten(), reduction="none").view(targets.shape)


def task_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the last-step logits [T, B, H, C] (or [T, B, H, M, C]: summed over modules)
    against targets [B, H], mean over samples and heads."""
    return _cross_entropy(logits[-1], targets).mean()


def task_losses(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """:func:`task_loss` per network: last-step logits [1, K, B, H, C] (or [1, K, B, H, M, C]),
    targets [K, B, H] -> [K]."""
    return _cross_entropy(logits[-1], targets).flatten(1).mean(dim=1)


def _accuracies(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Accuracy per network and head [K, H]."""
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
    """(images [G, B, S, D], targets [G, B, H]) per batch of G data sets that advance together,
    each with its own pairs and (with ``shuffles``) its own shuffle, as
    :meth:`~spikemod.task.PairDataset.batches` gives them; the sets share their image sets."""
    indices = torch.stack([s.indices for s in sets])  # [G, P, S]
    targets = torch.stack([s.targets for s in sets])  # [G, P, H]
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


def _stacked_input(
    images: torch.Tensor, configs: Sequence[RunConfig], generators: Sequence[torch.Generator], device: torch.device
):
    """Each input's :func:`~spikemod.task.network_input` (drawn on the CPU, from CPU generators, so
    every device sees the same numbers), on ``device``: images [G, B, S, D] -> [T, G, B, S, D].

    A drawn input is stored slot-major ([S, G, T, B, D] in memory), the layout the separate
    input's batched matmul reads without a copy (:func:`~spikemod.dynamics.input_current`)."""
    inputs = [network_input(x, c, g) for x, c, g in zip(images, configs, generators)]
    if all(static for _, static in inputs):  # the same image at every step, an expanded view: projected once
        return images.to(device).expand(configs[0].n_steps, *images.shape), True
    n_steps, batch, n_slots, n_inputs = inputs[0][0].shape
    stacked = torch.empty((n_slots, len(inputs), n_steps, batch, n_inputs), dtype=inputs[0][0].dtype)
    for g, (x, _) in enumerate(inputs):
        stacked[:, g].copy_(x.permute(2, 0, 1, 3))
    return stacked.permute(2, 1, 3, 0, 4).to(device), False


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
def evaluate(stack: NetworkStack, test_sets: Sequence[PairDataset], inputs: Sequence[RunConfig]) -> Dict[str, torch.Tensor]:
    """Test loss [K], accuracy [K, H] and (spiking) mean cross spikes per sample and step [K, M, M]
    of the stack's networks; ``test_sets`` and ``inputs`` (configs) are those of its G inputs. The
    input noise is each input's ``inputs/test`` stream, drawn afresh: every evaluation of a network
    sees the inputs its metrics and resource counts see."""
    was_training = stack.training
    stack.eval()
    device = stack.device
    generators = [seeding.generator(c.seed, seeding.inputs_purpose(False)) for c in inputs]
    per_input = stack.n_networks // len(inputs)
    loss_sum, correct, cross, count = 0.0, 0.0, 0.0, 0
    for images, targets in _batches(test_sets, inputs[0].train.batch_size):
        size = targets.shape[1]
        if not noise_fits(size, inputs[0]):
            continue
        x, static = _stacked_input(images, inputs, generators, device)
        targets = targets.repeat_interleave(per_input, dim=0).to(device)
        out = stack(x, static, last_only=True)
        losses = task_losses(loss_logits(out.logits, out.module_logits, inputs[0].train.loss), targets)
        loss_sum = loss_sum + losses.double() * size
        correct = correct + _accuracies(out.logits, targets) * size
        if stack.spiking:
            cross = cross + stack.cross_spikes(out.states).mean(dim=0).sum(dim=1)
        count += size
    stack.train(was_training)
    result = {"loss": loss_sum / count, "accuracy": correct / count}
    if stack.spiking:
        result["cross_spikes"] = cross / count
    return result


def _check(configs: Sequence[RunConfig]) -> None:
    if not configs:
        raise ConfigError("train needs at least one config")
    if len({batch_key(c) for c in configs}) > 1:
        raise ConfigError(
            "configs trained together may differ only in seed, model.p/synapses/interconnect_onset/"
            "bandwidth_cap, task.covariance and train.target_accuracy; group them with "
            "spikemod.training.batch_key"
        )


def _make_deep_r(stack: NetworkStack, configs: Sequence[RunConfig]) -> Optional[DeepR]:
    """Deep-R for the stacked interconnects, or None with fixed masks; noise annealed by (1 - p),
    the learning rate by p (``TrainConfig.deep_r_rate``)."""
    theta = stack.deep_r_parameter()
    if theta is None:
        return None
    t = configs[0].train
    return DeepR(
        theta,
        [c.model.n_synapses for c in configs],
        lr=[t.deep_r_rate(c.model.p_effective) for c in configs],
        l1=t.deep_r_l1,
        noise=[t.deep_r_noise * (1.0 - c.model.p_effective) for c in configs],
        generators=[seeding.generator(c.seed, "deep-r") for c in configs],
        betas=t.deep_r_betas,
    )


@overload
def train(config: RunConfig, progress: bool = ..., device: str = ...) -> TrainResult: ...
@overload
def train(config: Sequence[RunConfig], progress: bool = ..., device: str = ...) -> List[TrainResult]: ...


def train(config: Union[RunConfig, Sequence[RunConfig]], progress: bool = True, device: str = "cpu"):
    """Train the network of ``config``, or the networks of a list of configs together (one result
    per config, in the given order): the kept state, its history and test accuracy.

    ``device``: where the networks train (``cpu`` or ``cuda``); the random draws stay on the CPU
    and the returned models are on the CPU.
    """
    if isinstance(config, RunConfig):
        return _train([config], progress, check_device(device))[0]
    return _train(list(config), progress, check_device(device))


def check_device(device: str) -> torch.device:
    """The torch device named ``device`` (``cpu``, ``cuda``, ``cuda:1``), or a ConfigError with the fix."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"unknown device {device!r}: use 'cpu' or 'cuda'") from None
    if parsed.type not in ("cpu", "cuda"):
        raise ConfigError(f"device {device!r} is not supported: use 'cpu' or 'cuda'")
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} was asked for, but torch sees no CUDA GPU here; use --device cpu")
    return parsed


def _train(configs: List[RunConfig], progress: bool, device: torch.device) -> List[TrainResult]:
    _check(configs)
    order, n_inputs = _input_groups(configs)
    given = configs
    configs = [configs[i] for i in order]
    inputs = configs[:: len(configs) // n_inputs]  # one config per input
    first = configs[0]
    train_sets = [PairDataset(c.data, c.task, train=True, seed=c.seed) for c in inputs]
    test_sets = [PairDataset(c.data, c.task, train=False, seed=c.seed) for c in inputs]
    for split in (train_sets[0], test_sets[0]):
        if not noise_fits(min(first.train.batch_size, len(split)), first):
            raise ConfigError(
                f"structured noise averages {first.task.noise_samples} samples of a batch, but a batch "
                f"holds at most {min(first.train.batch_size, len(split))}; use more pairs or a larger batch"
            )
    if first.train.drop_last and len(train_sets[0]) < first.train.batch_size:
        raise ConfigError(
            f"train.drop_last skips batches smaller than {first.train.batch_size}, but there are only "
            f"{len(train_sets[0])} training pairs: use more pairs, a smaller batch, or drop_last false"
        )
    n_pixels = train_sets[0].image_sets[0].images.shape[1]
    models = [build_model(c, n_inputs=n_pixels, n_classes=train_sets[0].n_classes) for c in configs]
    stack = NetworkStack(models).to(device)
    optimizer = make_optimizer(stack.module_parameters(), first.train)
    deep_r = _make_deep_r(stack, configs)
    shuffles = [seeding.generator(c.seed, "shuffle") for c in inputs]
    noises = [seeding.generator(c.seed, "training-noise") for c in inputs]
    per_input = len(configs) // n_inputs

    k = len(configs)
    keys = ["train_loss", "train_accuracy", "test_loss", "test_accuracy", "samples_per_second"]
    keys += ["test_cross_spikes"] if stack.spiking else []
    histories = [{key: [] for key in keys} for _ in range(k)]
    kept = [(-1.0, None, 0)] * k  # (accuracy, state, epoch)
    keep_final = first.train.keep == "final"
    running = list(range(k))  # networks not stopped early
    batch_size = first.train.batch_size
    drop_last = first.train.drop_last
    n_batches = len(train_sets[0]) // batch_size if drop_last else -(-len(train_sets[0]) // batch_size)
    for epoch in range(first.train.epochs):
        stack.train()
        loss_sum, correct, seen = torch.zeros(k, dtype=torch.float64, device=device), 0.0, 0
        start = time.perf_counter()
        bar = tqdm(total=n_batches, desc=f"epoch {epoch + 1}/{first.train.epochs}", disable=not progress, leave=False)
        for index, (images, targets) in enumerate(_batches(train_sets, batch_size, shuffles)):
            size = targets.shape[1]
            if not noise_fits(size, first) or (drop_last and size < batch_size):
                continue
            x, static = _stacked_input(images, inputs, noises, device)
            targets = targets.repeat_interleave(per_input, dim=0).to(device)
            out = stack(x, static, last_only=True)
            losses = task_losses(loss_logits(out.logits, out.module_logits, first.train.loss), targets)
            finite = torch.isfinite(losses)
            if not bool(finite[running].all()):
                bar.close()
                bad = configs[[i for i in running if not finite[i]][0]]
                raise TrainingDivergedError(
                    f"loss is not finite at epoch {epoch + 1}, batch {index + 1}: training diverged. "
                    f"Lower TrainConfig.lr or the init scale. Run: {bad.describe()}"
                )
            optimizer.zero_grad(set_to_none=True)
            if deep_r is not None:
                deep_r.zero_grad()
            losses.sum().backward()
            optimizer.step()
            if deep_r is not None:
                deep_r.step()
            loss_sum += losses.detach().double() * size
            correct = correct + _accuracies(out.logits.detach(), targets) * size
            seen += size
            bar.update()
            if progress:
                mean_loss, mean_accuracy = loss_sum.mean().item() / seen, (correct / seen).mean().item()
                bar.set_postfix(loss=f"{mean_loss:.3f}", acc=f"{mean_accuracy:.3f}", refresh=False)
        bar.close()
        speed = seen / (time.perf_counter() - start)
        test = evaluate(stack, test_sets, inputs)
        for i in list(running):
            h = histories[i]
            h["train_loss"].append(loss_sum[i].item() / seen)
            h["train_accuracy"].append((correct[i] / seen).tolist())
            h["test_loss"].append(test["loss"][i].item())
            h["test_accuracy"].append(test["accuracy"][i].tolist())
            h["samples_per_second"].append(speed)
            if stack.spiking:
                h["test_cross_spikes"].append(test["cross_spikes"][i].tolist())
            mean_accuracy = test["accuracy"][i].mean().item()
            if keep_final or mean_accuracy > kept[i][0]:
                kept[i] = (mean_accuracy, stack.network_state(i), epoch)
            target = configs[i].train.target_accuracy
            if target is not None and bool((test["accuracy"][i] >= target).all()):
                running.remove(i)
        if progress:
            accuracies = " | ".join(_format(test["accuracy"][i]) for i in range(k))
            tqdm.write(f"epoch {epoch + 1}: test accuracy {accuracies}")
        if not running:
            break

    results = {}  # by position in the given configs
    for i, model, history, (_, state, best_epoch) in zip(order, models, histories, kept):
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                parameter.copy_(state[name])
        history["best_epoch"] = [best_epoch]
        results[i] = TrainResult(model, history, torch.tensor(history["test_accuracy"][best_epoch]))
    return [results[i] for i in range(len(given))]


def _format(values: torch.Tensor) -> str:
    return " / ".join(f"{v:.4f}" for v in values.tolist())
