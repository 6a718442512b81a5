"""Training a :class:`~spikemod.network.ModularNetwork` on the two-digit parity task.

The loss is the cross-entropy of the logits at the last step, averaged over the heads; with separate
readouts ``TrainConfig.loss`` chooses which logits (:func:`loss_logits`): the deciding module's, as
in the reference code, or all modules' marginalised over the deciding module. Module parameters
train with Adadelta or AdamW; Deep-R connections with their own Adam (:class:`~spikemod.deepr.DeepR`,
random-walk temperature deep_r_noise·(1 - p)). After every epoch the model is evaluated on the test
pairs, as in the papers' code; the state with the best mean test accuracy is kept, and training
stops early once every head reaches ``target_accuracy``. Same config and seed give the same
numbers on the same machine and library build (random streams: :mod:`spikemod.seeding`). With structured input noise, a final batch smaller than the noise's
``noise_samples`` is skipped (the noise averages that many batch samples).
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import snntorch as snn
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import seeding
from .config import ConfigError, RunConfig, TrainConfig
from .deepr import DeepR
from .encoding import encode
from .network import ModularNetwork, NetworkOutput
from .task import PairDataset, temporal_input

__all__ = [
    "TrainResult",
    "TrainingDivergedError",
    "build_model",
    "make_optimizer",
    "make_deep_r",
    "network_input",
    "loss_logits",
    "task_loss",
    "accuracy",
    "evaluate",
    "train",
]

class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass
class TrainResult:
    """The trained model (best state), its history and its test accuracy per head [H].

    ``history`` holds one entry per epoch of ``train_loss``, ``train_accuracy`` [H], ``test_loss``,
    ``test_accuracy`` [H], ``samples_per_second`` (training) and, spiking only,
    ``test_cross_spikes`` [M, M] (spikes crossing from module j to i per test sample and step);
    ``best_epoch`` is [index of the kept epoch].
    """

    model: ModularNetwork
    history: Dict[str, list]
    test_accuracy: torch.Tensor


def build_model(config: RunConfig, n_inputs: int = 784, n_classes: int = 10) -> ModularNetwork:
    """The network for ``config``, initialised from the ``init`` stream of ``config.seed`` without
    touching the global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seeding.stream_seed(config.seed, "init"))
        return ModularNetwork(
            config.model, n_inputs=n_inputs, n_slots=2, n_heads=config.task.n_heads, n_classes=n_classes
        )


def make_optimizer(model: ModularNetwork, train_cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adadelta (default lr 0.5) or AdamW (default lr 1e-3) over the module parameters.

    AdamW uses PyTorch's fused CPU kernel and Adadelta its multi-tensor one: several times faster
    than the per-parameter loop for these small networks, with the same update.
    """
    params = model.module_parameters()
    if train_cfg.optimizer == "adadelta":
        return torch.optim.Adadelta(
            params, lr=train_cfg.learning_rate, weight_decay=train_cfg.weight_decay, foreach=True
        )
    return torch.optim.AdamW(
        params, lr=train_cfg.learning_rate, weight_decay=train_cfg.weight_decay, fused=True
    )


def make_deep_r(model: ModularNetwork, config: RunConfig, generator: torch.Generator) -> Optional[DeepR]:
    """Deep-R for the interconnect, or None with a fixed mask. The noise is annealed by (1 - p)."""
    if model.interconnect is None:
        return None
    t = config.train
    noise = t.deep_r_noise * (1.0 - config.model.p_effective)
    return DeepR(model.interconnect, lr=t.deep_r_lr, l1=t.deep_r_l1, noise=noise, generator=generator)


def network_input(
    images: torch.Tensor, config: RunConfig, generator: torch.Generator
) -> Tuple[torch.Tensor, bool]:
    """Images [B, 2, D] -> network input [T, B, 2, D] and whether it is static."""
    x, static = temporal_input(images, config.task, config.n_steps, generator)
    if config.task.encoding != "direct":
        return encode(x, config.task.encoding, generator), False
    return x, static


def _noise_fits(batch_size: int, config: RunConfig) -> bool:
    """Structured noise averages ``noise_samples`` batch samples: a smaller final batch is skipped."""
    noisy = config.task.noise_ratio > 0 or config.task.random_onset
    return not noisy or batch_size >= config.task.noise_samples


def loss_logits(logits: torch.Tensor, module_logits: Optional[torch.Tensor], loss: str) -> torch.Tensor:
    """The logits [..., H, C] that the task loss reads (``TrainConfig.loss``).

    ``deciding``: ``logits``, the deciding module's. ``marginal``: log sum_m exp(``module_logits``
    [..., H, M, C]), whose softmax is a softmax over all modules' logits summed over modules per
    class. Without module logits (a shared readout) both are ``logits``.
    """
    if loss == "marginal" and module_logits is not None:
        return module_logits.logsumexp(dim=-2)
    return logits


def task_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the last-step logits [T, B, H, C] against targets [B, H], mean over heads."""
    last = logits[-1]
    return F.cross_entropy(last.flatten(0, 1), targets.flatten())


def accuracy(output: NetworkOutput, targets: torch.Tensor) -> torch.Tensor:
    """Fraction of correct decisions per head [H]."""
    return (output.predictions() == targets).float().mean(dim=0)


@torch.no_grad()
def evaluate(
    model: ModularNetwork, dataset: PairDataset, config: RunConfig
) -> Dict[str, torch.Tensor]:
    """Test loss, accuracy per head [H] and (spiking) mean cross spikes per sample and step [M, M].

    The input noise is the split's measured input (:mod:`~spikemod.seeding`), drawn afresh: repeated
    evaluations give the same numbers, on the inputs that the metrics and resource counts see too.
    """
    was_training = model.training
    model.eval()
    generator = seeding.generator(config.seed, seeding.inputs_purpose(dataset.train))
    loss_sum, correct, cross, count = 0.0, 0.0, 0.0, 0
    for batch in dataset.batches(config.train.batch_size):
        if not _noise_fits(len(batch.targets), config):
            continue
        x, static = network_input(batch.images, config, generator)
        output = model(x, static)
        size = len(batch.targets)
        logits = loss_logits(output.logits, output.module_logits, config.train.loss)
        loss_sum += task_loss(logits, batch.targets).item() * size
        correct = correct + accuracy(output, batch.targets) * size
        if output.cross_spikes is not None:
            cross = cross + output.cross_spikes.mean(dim=0).sum(dim=0)
        count += size
    model.train(was_training)
    result = {"loss": torch.tensor(loss_sum / count), "accuracy": correct / count}
    if model.spiking:
        result["cross_spikes"] = cross / count
    return result


def _describe(config: RunConfig) -> str:
    m = config.model
    return (
        f"variant={m.variant} n={m.n_neurons} modules={m.n_modules} synapses={m.n_synapses} "
        f"T={config.n_steps} optimizer={config.train.optimizer} lr={config.train.learning_rate} "
        f"seed={config.seed}; full config: {json.dumps(config.to_dict(), sort_keys=True)}"
    )


def _train_epoch(
    model: ModularNetwork,
    train_set: PairDataset,
    config: RunConfig,
    optimizer: torch.optim.Optimizer,
    deep_r: Optional[DeepR],
    generators: Tuple[torch.Generator, torch.Generator],
    epoch: int,
    progress: bool,
) -> Tuple[float, torch.Tensor, float]:
    """One pass over the training pairs: (mean loss, accuracy per head [H], samples per second)."""
    shuffle, noise = generators
    batch_size = config.train.batch_size
    model.train()
    loss_sum, correct, seen = 0.0, 0.0, 0
    start = time.perf_counter()
    bar = tqdm(
        total=-(-len(train_set) // batch_size),
        desc=f"epoch {epoch + 1}/{config.train.epochs}",
        disable=not progress,
        leave=False,
    )
    for index, batch in enumerate(train_set.batches(batch_size, shuffle=True, generator=shuffle)):
        if not _noise_fits(len(batch.targets), config):
            continue
        x, static = network_input(batch.images, config, noise)
        output = model(x, static)
        loss = task_loss(loss_logits(output.logits, output.module_logits, config.train.loss), batch.targets)
        if not torch.isfinite(loss):
            bar.close()
            raise TrainingDivergedError(
                f"loss is {loss.item()} at epoch {epoch + 1}, batch {index + 1}: training diverged. "
                f"Lower TrainConfig.lr or the init scale. Run: {_describe(config)}"
            )
        optimizer.zero_grad(set_to_none=True)
        if deep_r is not None:
            deep_r.zero_grad()
        loss.backward()
        optimizer.step()
        if deep_r is not None:
            deep_r.step()
        size = len(batch.targets)
        loss_sum += loss.item() * size
        correct = correct + accuracy(output, batch.targets) * size
        seen += size
        bar.update()
        running = (correct / seen).mean().item()
        bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{running:.3f}", refresh=False)
    bar.close()
    return loss_sum / seen, correct / seen, seen / (time.perf_counter() - start)


def train(config: RunConfig, progress: bool = True) -> TrainResult:
    """Train a network for ``config``; return the best state, its history and test accuracy."""
    snn.SpikingNeuron.instances.clear()  # snnTorch's registry only grows (snntorch#328)
    train_set = PairDataset(config.data, config.task, train=True, seed=config.seed)
    test_set = PairDataset(config.data, config.task, train=False, seed=config.seed)
    for split in (train_set, test_set):
        if not _noise_fits(min(config.train.batch_size, len(split)), config):
            raise ConfigError(
                f"structured noise averages {config.task.noise_samples} samples of a batch, but a batch "
                f"holds at most {min(config.train.batch_size, len(split))}; use more pairs or a larger batch"
            )
    n_inputs = train_set.image_sets[0].images.shape[1]
    model = build_model(config, n_inputs=n_inputs, n_classes=train_set.n_classes)
    optimizer = make_optimizer(model, config.train)
    deep_r = make_deep_r(model, config, seeding.generator(config.seed, "deep-r"))
    generators = (seeding.generator(config.seed, "shuffle"), seeding.generator(config.seed, "training-noise"))

    keys = ["train_loss", "train_accuracy", "test_loss", "test_accuracy", "samples_per_second"]
    history: Dict[str, list] = {key: [] for key in keys + (["test_cross_spikes"] if model.spiking else [])}
    best_accuracy, best_state, best_epoch = -1.0, None, 0
    for epoch in range(config.train.epochs):
        loss, train_accuracy, speed = _train_epoch(
            model, train_set, config, optimizer, deep_r, generators, epoch, progress
        )
        test = evaluate(model, test_set, config)
        history["train_loss"].append(loss)
        history["train_accuracy"].append(train_accuracy.tolist())
        history["test_loss"].append(test["loss"].item())
        history["test_accuracy"].append(test["accuracy"].tolist())
        history["samples_per_second"].append(speed)
        if model.spiking:
            history["test_cross_spikes"].append(test["cross_spikes"].tolist())
        if progress:
            tqdm.write(
                f"epoch {epoch + 1}: train loss {loss:.4f}, test loss {test['loss'].item():.4f}, "
                f"test accuracy {_format(test['accuracy'])}"
            )
        if test["accuracy"].mean().item() > best_accuracy:
            best_accuracy, best_epoch = test["accuracy"].mean().item(), epoch
            best_state = copy.deepcopy(model.state_dict())
        target = config.train.target_accuracy
        if target is not None and bool((test["accuracy"] >= target).all()):
            break
    model.load_state_dict(best_state)
    history["best_epoch"] = [best_epoch]
    return TrainResult(model, history, torch.tensor(history["test_accuracy"][best_epoch]))


def _format(values: torch.Tensor) -> str:
    return " / ".join(f"{v:.4f}" for v in values.tolist())
