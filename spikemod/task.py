"""The two-digit parity task: seeded digit pairs, targets and temporal input.

Module m sees digit m of a pair (D0, D1). The partner digit is drawn with
P(D0 = D1) = 1/10 + 9c/10: with probability c the partner has D0's class, otherwise its class is
uniform over the ten classes. Targets ("Dynamics", eq. 2):
T' = D0 if the parities of D0 and D1 differ, else D1; T'' = D1 if they differ, else D0.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Iterator, List, Optional, Sequence, Tuple

import torch

from . import seeding
from .config import DataConfig, RunConfig, TaskConfig
from .data import ImageSet, load_image_sets
from .encoding import encode

__all__ = [
    "PairBatch",
    "PairDataset",
    "draw_partner_classes",
    "task_targets",
    "structured_noise",
    "temporal_input",
    "onset_pair_inputs",
    "network_input",
    "onset_pair_network_inputs",
    "noise_fits",
]

N_CLASSES = 10


@dataclass(frozen=True)
class PairBatch:
    """A batch of pairs: ``images`` [B, 2, D] normalised, ``digits`` [B, 2], ``targets`` [B, H]."""

    images: torch.Tensor
    digits: torch.Tensor
    targets: torch.Tensor


def draw_partner_classes(
    first: torch.Tensor, covariance: float, exclude_adjacent: bool, generator: torch.Generator
) -> torch.Tensor:
    """Classes of the second digit given the first: P(same) = 1/10 + 9c/10, or the exclusion rule."""
    n = len(first)
    if exclude_adjacent:
        # (D1 - D0) mod 10 must avoid {0, 1}: shift by one of the 8 allowed offsets 2..9.
        offsets = torch.randint(2, N_CLASSES, (n,), generator=generator)
        return (first + offsets) % N_CLASSES
    uniform = torch.randint(0, N_CLASSES, (n,), generator=generator)
    same = torch.rand(n, generator=generator) < covariance
    return torch.where(same, first, uniform)


def task_targets(digits: torch.Tensor, targets: str) -> torch.Tensor:
    """Targets [P, H] from digits [P, 2]: columns T' and/or T'' as chosen by ``targets``."""
    d0, d1 = digits[:, 0], digits[:, 1]
    differ = (d0 + d1) % 2 == 1
    parity = torch.where(differ, d0, d1)
    inverse = torch.where(differ, d1, d0)
    columns = {"parity": [parity], "inverse": [inverse], "both": [parity, inverse]}[targets]
    return torch.stack(columns, dim=1)


def _sample_of_class(labels: torch.Tensor, classes: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """For each requested class, the index of a uniformly drawn sample of that class."""
    order = torch.argsort(labels, stable=True)
    counts = torch.bincount(labels, minlength=N_CLASSES)
    if (counts == 0).any():
        missing = torch.nonzero(counts == 0).flatten().tolist()
        raise ValueError(f"the image set has no samples of class(es) {missing}; use a larger dataset")
    starts = torch.cumsum(counts, 0) - counts
    pick = (torch.rand(len(classes), generator=generator) * counts[classes]).long()
    return order[starts[classes] + pick]


class PairDataset:
    """Seeded digit pairs for one split. The pairs are drawn once, at construction.

    Each image of slot 0's set (in a seeded order, limited to ``n_train``/``n_test``) is paired with
    a partner drawn from slot 1's set by :func:`draw_partner_classes`.
    """

    def __init__(self, data: DataConfig, task: TaskConfig, train: bool, seed: int) -> None:
        self.data_config = data
        self.task_config = task
        self.train = train
        self.image_sets: List[ImageSet] = load_image_sets(data, train)
        generator = seeding.generator(seed, seeding.pairs_purpose(train))
        first_set, second_set = self.image_sets
        first = torch.randperm(len(first_set.labels), generator=generator)
        limit = data.n_train if train else data.n_test
        if limit is not None:
            first = first[:limit]
        classes = draw_partner_classes(
            first_set.labels[first], task.covariance, task.exclude_adjacent, generator
        )
        second = _sample_of_class(second_set.labels, classes, generator)
        self.indices = torch.stack([first, second], dim=1)
        self.digits = torch.stack([first_set.labels[first], second_set.labels[second]], dim=1)
        self.targets = task_targets(self.digits, task.targets)

    n_classes = N_CLASSES

    def __len__(self) -> int:
        return len(self.digits)

    def head(self, n: int) -> "PairDataset":
        """The first ``n`` pairs (all of them when there are fewer), sharing the images."""
        head = copy.copy(self)
        head.indices, head.digits, head.targets = self.indices[:n], self.digits[:n], self.targets[:n]
        return head

    def images(self, rows: torch.Tensor) -> torch.Tensor:
        """Images [len(rows), 2, D] of the given pairs."""
        return torch.stack(
            [s.images[self.indices[rows, slot]] for slot, s in enumerate(self.image_sets)], dim=1
        )

    def batch(self, rows: torch.Tensor) -> PairBatch:
        """The pairs at ``rows`` as a batch."""
        return PairBatch(self.images(rows), self.digits[rows], self.targets[rows])

    def batch_rows(
        self, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None
    ) -> Iterator[torch.Tensor]:
        """The pair indices of each batch (a seeded shuffle when ``shuffle``)."""
        order = torch.randperm(len(self), generator=generator) if shuffle else torch.arange(len(self))
        for start in range(0, len(self), batch_size):
            yield order[start : start + batch_size]

    def batches(
        self, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None
    ) -> Iterator[PairBatch]:
        """Iterate over the pairs in batches (a seeded shuffle when ``shuffle``)."""
        for rows in self.batch_rows(batch_size, shuffle, generator):
            yield self.batch(rows)


def structured_noise(
    images: torch.Tensor, n_steps: int, n_samples: int, generator: torch.Generator
) -> torch.Tensor:
    """Structured noise [T, B, ...] ("Dynamics" 5.3.1).

    At each step and for each sample, ``n_samples`` batch samples are drawn without replacement
    (the sample itself may be among them), each multiplied by a pixel mask with keep-probability
    1/``n_samples`` that is shared across the batch, and averaged.
    """
    batch = images.shape[0]
    if n_samples > batch:
        raise ValueError(
            f"structured noise averages {n_samples} batch samples but the batch has only {batch}; "
            "use a larger batch or a smaller TaskConfig.noise_samples"
        )
    # the n_samples smallest of B uniform draws: a uniform choice without replacement
    picks = torch.rand(n_steps, batch, batch, generator=generator).topk(n_samples, dim=-1, largest=False).indices
    masks = torch.rand((n_steps, n_samples) + images.shape[1:], generator=generator) < 1.0 / n_samples
    # per step, accumulate one drawn sample at a time with row gathers (index_select), four times
    # faster than advanced indexing over all steps at once and the same operations in the same order
    masks = masks.to(images.dtype).flatten(2)  # [T, k, D']
    flat = images.reshape(batch, -1)
    noise = torch.empty((n_steps, batch, flat.shape[1]), dtype=images.dtype)
    for t in range(n_steps):
        torch.mul(flat.index_select(0, picks[t, :, 0]), masks[t, 0], out=noise[t])
        for j in range(1, n_samples):
            noise[t].addcmul_(flat.index_select(0, picks[t, :, j]), masks[t, j])
    return noise.div_(n_samples).view((n_steps,) + images.shape)


def temporal_input(
    images: torch.Tensor, task: TaskConfig, n_steps: int, generator: torch.Generator
) -> Tuple[torch.Tensor, bool]:
    """Input over time [T, B, 2, D] and whether it is static (the same image at every step).

    Static input is returned as an expanded view. With noise, x_t = (1 - r)·x + r·noise_t. With a
    random onset, digit slot s of sample b is pure noise (r = 1, an independent draw) before a step
    drawn uniformly from {1, ..., T - 2} (0-based), or before ``task.onsets`` (1-based) when given.
    """
    static = images.expand((n_steps,) + images.shape)
    if task.noise_ratio == 0 and not task.random_onset:
        return static, True
    x = _noisy(images, task, n_steps, generator)
    if task.random_onset:
        _check_onsets(task.onsets, n_steps)
        if task.onsets is not None:
            onset = _fixed_onset(task.onsets, images.shape[:2])
        else:
            onset = torch.randint(1, n_steps - 1, images.shape[:2], generator=generator)
        x = _switch_on(x, structured_noise(images, n_steps, task.noise_samples, generator), onset)
    return x, False


def onset_pair_inputs(
    images: torch.Tensor, task: TaskConfig, n_steps: int, pairs: Sequence[Tuple[int, int]], generator: torch.Generator
) -> List[torch.Tensor]:
    """The random-onset input [T, B, 2, D] with both onsets fixed, for each pair (t0, t1).

    Equal to ``temporal_input`` with ``task.onsets = pair`` from a generator in the same state, for
    every pair; the noise does not depend on the onsets, so it is drawn once for all pairs.
    """
    if not task.random_onset:
        raise ValueError("onset pairs fix the digit onsets of a random-onset task: set TaskConfig.random_onset")
    for pair in pairs:
        _check_onsets(pair, n_steps)
    x = _noisy(images, task, n_steps, generator)
    pure = structured_noise(images, n_steps, task.noise_samples, generator)
    return [_switch_on(x, pure, _fixed_onset(pair, images.shape[:2])) for pair in pairs]


def _noisy(images: torch.Tensor, task: TaskConfig, n_steps: int, generator: torch.Generator) -> torch.Tensor:
    """x_t = (1 - r)·x + r·noise_t, [T, B, 2, D]: number for number the same sum, with (1 - r)·x
    formed once rather than at every step and r·noise_t computed in place (three times faster)."""
    r = task.noise_ratio
    return structured_noise(images, n_steps, task.noise_samples, generator).mul_(r).add_((1 - r) * images)


def _check_onsets(onsets: Optional[Sequence[int]], n_steps: int) -> None:
    if n_steps < 3:
        raise ValueError(f"random onset needs at least 3 time steps, got {n_steps}")
    if onsets is not None and max(onsets) > n_steps - 1:
        raise ValueError(f"onsets {list(onsets)} must be at most T - 1 = {n_steps - 1}")


def _fixed_onset(onsets: Sequence[int], shape: torch.Size) -> torch.Tensor:
    """0-based onset steps [B, 2] of the 1-based ``onsets`` of the two slots."""
    return (torch.tensor(onsets) - 1).expand(shape)


def _switch_on(x: torch.Tensor, pure: torch.Tensor, onset: torch.Tensor) -> torch.Tensor:
    """``pure`` before each slot's onset step, ``x`` from it on."""
    on = torch.arange(len(x))[:, None, None] >= onset[None]
    return torch.where(on[..., None], x, pure)


def network_input(images: torch.Tensor, config: RunConfig, generator: torch.Generator) -> Tuple[torch.Tensor, bool]:
    """Images [B, 2, D] -> network input [T, B, 2, D] and whether it is static: the temporal input
    (:func:`temporal_input`), then the spike encoding."""
    x, static = temporal_input(images, config.task, config.n_steps, generator)
    if config.task.encoding != "direct":
        return encode(x, config.task.encoding, generator), False
    return x, static


def onset_pair_network_inputs(
    images: torch.Tensor, config: RunConfig, pairs: Sequence[Tuple[int, int]], generator: torch.Generator
) -> List[torch.Tensor]:
    """:func:`network_input` with ``task.onsets = pair`` for each pair, from one noise draw
    (:func:`onset_pair_inputs`). A spike encoding draws the same number of numbers for every
    pair, so each pair's encoding starts from the same generator state, and the generator ends
    where a single pair's :func:`network_input` leaves it."""
    inputs = onset_pair_inputs(images, config.task, config.n_steps, pairs, generator)
    if config.task.encoding == "direct":
        return inputs
    state = generator.get_state()
    encoded = []
    for x in inputs:
        generator.set_state(state)
        encoded.append(encode(x, config.task.encoding, generator))
    return encoded


def noise_fits(batch_size: int, config: RunConfig) -> bool:
    """Structured noise averages ``noise_samples`` batch samples: a smaller batch is skipped."""
    noisy = config.task.noise_ratio > 0 or config.task.random_onset
    return not noisy or batch_size >= config.task.noise_samples

