"""Task statistics on real MNIST: covariance, targets, exclusion rule, noise mixing and onsets."""

from __future__ import annotations

import pytest
import torch

from spikemod.config import ConfigError, DataConfig, RunConfig, TaskConfig
from spikemod.encoding import encode, intensities
from spikemod.task import (
    PairDataset,
    draw_partner_classes,
    network_input,
    onset_pair_network_inputs,
    structured_noise,
    task_targets,
    temporal_input,
)


@pytest.mark.parametrize("covariance", [0.0, 0.5, 1.0])
def test_covariance_mapping_on_60k_mnist_pairs(mnist_test_sets, covariance):
    ds = PairDataset(DataConfig(dataset="mnist"), TaskConfig(covariance=covariance), train=True, seed=3)
    assert len(ds) == 60_000
    same = (ds.digits[:, 0] == ds.digits[:, 1]).float().mean().item()
    assert abs(same - (0.1 + 0.9 * covariance)) < 0.01
    # the partner image really has the partner digit's class
    assert torch.equal(ds.image_sets[1].labels[ds.indices[:, 1]], ds.digits[:, 1])


def test_pairs_are_reproducible_per_seed(mnist_test_sets):
    make = lambda seed: PairDataset(DataConfig(dataset="mnist"), TaskConfig(), train=False, seed=seed)
    assert torch.equal(make(1).indices, make(1).indices)
    assert not torch.equal(make(1).indices, make(2).indices)


def test_target_definitions_by_hand():
    digits = torch.tensor([[3, 4], [3, 5], [2, 4], [7, 2], [6, 6]])
    both = task_targets(digits, "both")
    # parities differ -> T' = D0, T'' = D1; same parity -> T' = D1, T'' = D0
    assert both[:, 0].tolist() == [3, 5, 4, 7, 6]
    assert both[:, 1].tolist() == [4, 3, 2, 2, 6]
    assert torch.equal(task_targets(digits, "parity")[:, 0], both[:, 0])
    assert torch.equal(task_targets(digits, "inverse")[:, 0], both[:, 1])


def test_targets_on_mnist_pairs(mnist_test_sets):
    ds = PairDataset(DataConfig(dataset="mnist"), TaskConfig(), train=False, seed=0)
    d0, d1 = ds.digits.T
    differ = (d0 % 2) != (d1 % 2)
    assert torch.equal(ds.targets[:, 0][differ], d0[differ])
    assert torch.equal(ds.targets[:, 0][~differ], d1[~differ])
    assert torch.equal(ds.targets[:, 1][differ], d1[differ])


def test_exclusion_rule(mnist_test_sets):
    ds = PairDataset(DataConfig(dataset="mnist"), TaskConfig(exclude_adjacent=True), train=False, seed=0)
    offsets = (ds.digits[:, 1] - ds.digits[:, 0]) % 10
    assert not ((offsets == 0) | (offsets == 1)).any()
    assert set(offsets.tolist()) == set(range(2, 10))
    with pytest.raises(ConfigError, match="exclude_adjacent"):
        TaskConfig(exclude_adjacent=True, covariance=0.2)


def test_partner_classes_uniform_when_independent():
    g = torch.Generator().manual_seed(0)
    first = torch.randint(0, 10, (100_000,), generator=g)
    counts = torch.bincount(draw_partner_classes(first, 0.0, False, g), minlength=10).float() / 100_000
    assert (counts - 0.1).abs().max() < 0.01


def test_noise_mixing_follows_the_formula():
    images = torch.randn(16, 2, 784)
    task = TaskConfig(noise_ratio=0.4, noise_samples=5)
    x, static = temporal_input(images, task, 4, torch.Generator().manual_seed(7))
    noise = structured_noise(images, 4, 5, torch.Generator().manual_seed(7))
    assert not static and x.shape == (4, 16, 2, 784)
    assert torch.equal(x, 0.6 * images.expand(4, 16, 2, 784) + 0.4 * noise)  # the formula, number for number


def test_structured_noise_averages_masked_batch_samples():
    # images whose every pixel equals the sample index: the noise is then an average of
    # masked indices, so each noise pixel is (sum of kept sample indices) / k
    batch, k = 32, 5
    images = torch.arange(batch, dtype=torch.float32)[:, None, None].expand(batch, 2, 784).contiguous()
    noise = structured_noise(images, 3, k, torch.Generator().manual_seed(0))
    keep_fraction = (noise > 0).float().mean().item()
    assert abs(keep_fraction - (1 - (1 - 1 / k) ** k)) < 0.03  # at least one kept, non-zero sample
    assert torch.all(noise * k <= (batch - 1) * k)
    with pytest.raises(ValueError, match="noise_samples"):
        structured_noise(images[:3], 1, 5, torch.Generator())


def test_static_input_is_a_view():
    images = torch.randn(8, 2, 784)
    x, static = temporal_input(images, TaskConfig(), 5, torch.Generator())
    assert static and x.shape == (5, 8, 2, 784) and x.data_ptr() == images.data_ptr()


def test_onset_times_are_in_range_and_the_digit_stays_on():
    steps, batch = 6, 4000
    images = torch.rand(batch, 2, 16) + 10.0  # far from any average of masked samples
    task = TaskConfig(noise_ratio=0.0, random_onset=True, n_steps=steps)
    x, static = temporal_input(images, task, steps, torch.Generator().manual_seed(1))
    on = (x == images).all(-1)  # [T, B, 2]
    onset = on.float().argmax(0)
    assert not static
    assert onset.min() == 1 and onset.max() == steps - 2
    # once on, always on
    assert torch.equal(on, torch.arange(steps)[:, None, None] >= onset[None])
    counts = torch.bincount(onset.flatten(), minlength=steps)[1 : steps - 1].float()
    assert (counts / counts.sum() - 1 / (steps - 2)).abs().max() < 0.02


def test_fixed_onsets_switch_each_digit_on_at_its_step():
    steps = 6
    images = torch.rand(50, 2, 16) + 10.0
    task = TaskConfig(noise_ratio=0.0, random_onset=True, onsets=(4, 2), n_steps=steps)
    x, _ = temporal_input(images, task, steps, torch.Generator().manual_seed(1))
    on = (x == images).all(-1)  # [T, B, 2]
    step = torch.arange(1, steps + 1)[:, None]  # 1-based
    assert torch.equal(on[..., 0], (step >= 4).expand(steps, 50))
    assert torch.equal(on[..., 1], (step >= 2).expand(steps, 50))


@pytest.mark.parametrize("encoding", ["direct", "rate"])
def test_onset_pair_inputs_draw_the_noise_once_for_every_pair(encoding):
    """One noise draw serves every onset pair: each pair's input is number for number the one
    temporal input and encoding give with that pair's onsets from the same generator state, and
    the generator ends where one pair's input leaves it."""
    steps, pairs = 6, [(2, 2), (4, 2), (2, 5), (5, 4)]
    images = torch.rand(40, 2, 16)
    config = RunConfig.from_dict(
        {"model": {"variant": "spiking"}, "task": {"random_onset": True, "noise_ratio": 0.4, "n_steps": steps, "encoding": encoding}}
    )
    generator = torch.Generator().manual_seed(3)
    shared = onset_pair_network_inputs(images, config, pairs, generator)
    after = generator.get_state()
    for pair, x in zip(pairs, shared):
        alone = torch.Generator().manual_seed(3)
        expected, _ = network_input(images, config.replace(task={"onsets": pair}), alone)
        assert torch.equal(x, expected)
        assert torch.equal(alone.get_state(), after)
    # the onsets shape the inputs: pairs differ where one digit is on and the other pure noise
    assert not torch.equal(shared[0], shared[1])
    with pytest.raises(ValueError, match="random_onset"):
        onset_pair_network_inputs(images, RunConfig.from_dict({"task": {"n_steps": steps}}), pairs, generator)


@pytest.mark.parametrize(
    "sections,match",
    [
        ({"task": {"onsets": [2, 3]}}, "None unless random_onset"),
        ({"task": {"random_onset": True, "onsets": [1, 3]}}, "integer steps >= 2"),
        ({"task": {"random_onset": True, "onsets": [2, 5], "n_steps": 5}}, r"onset steps in 2\.\.4"),
        ({"metrics": {"onset_pairs": [[2, 3]]}}, "empty unless task.random_onset"),
        ({"task": {"random_onset": True}, "metrics": {"onset_pairs": [[2]]}}, "onset of digit 0"),
        ({"task": {"random_onset": True}, "metrics": {"onset_pairs": "2-3"}}, "list of"),
    ],
)
def test_onset_settings_are_validated(sections, match):
    with pytest.raises(ConfigError, match=match):
        RunConfig.from_dict({"model": {"variant": "rate"}, **sections})


def test_onset_pairs_round_trip_through_json():
    config = RunConfig.from_dict(
        {"task": {"random_onset": True, "onsets": [2, 4]}, "metrics": {"onset_pairs": [[2, 3], [4, 2]]}}
    )
    assert config.task.onsets == (2, 4) and config.metrics.onset_pairs == ((2, 3), (4, 2))
    assert RunConfig.from_json(config.to_json()) == config


def test_encodings():
    images = torch.randn(64, 2, 784)
    x, _ = temporal_input(images, TaskConfig(), 8, torch.Generator())
    assert encode(x, "direct") is x
    spikes = encode(x, "rate", torch.Generator().manual_seed(0))
    assert set(spikes.unique().tolist()) <= {0.0, 1.0}
    assert abs(spikes.mean().item() - intensities(x).mean().item()) < 0.01
    latency = encode(x, "latency")
    assert latency.shape == x.shape and torch.all(latency.sum(0) == 1)  # one spike per pixel
    noisy, _ = temporal_input(images, TaskConfig(noise_ratio=0.3), 8, torch.Generator())
    with pytest.raises(ValueError, match="static"):
        encode(noisy, "latency")


def test_structured_noise_is_the_definition_number_for_number():
    """The row-gather implementation gives the same numbers as the definition written with advanced
    indexing (the same products and sums in the same order), for any batch, T and k."""
    for batch, steps, k, pixels in ((256, 5, 5, 784), (37, 10, 3, 784), (8, 3, 8, 10)):
        images = torch.randn(batch, 2, pixels, generator=torch.Generator().manual_seed(batch))
        g = torch.Generator().manual_seed(1)
        picks = torch.rand(steps, batch, batch, generator=g).topk(k, dim=-1, largest=False).indices
        masks = (torch.rand((steps, k, 2, pixels), generator=g) < 1.0 / k).float()
        expected = images[picks[..., 0]] * masks[:, 0, None]
        for j in range(1, k):
            expected.addcmul_(images[picks[..., j]], masks[:, j, None])  # the implementation's operation
        assert torch.equal(structured_noise(images, steps, k, torch.Generator().manual_seed(1)), expected / k)
