import pytest
import torch

from spikemod import seeding


def test_every_purpose_and_seed_has_its_own_reproducible_stream():
    words = {(seed, purpose): seeding.stream_seed(seed, purpose) for seed in range(20) for purpose in seeding.PURPOSES}
    assert len(set(words.values())) == len(words)  # no two (seed, purpose) pairs share a stream
    assert all(0 <= word < 2**63 for word in words.values())
    first = torch.rand(5, generator=seeding.generator(3, "shuffle"))
    assert torch.equal(first, torch.rand(5, generator=seeding.generator(3, "shuffle")))
    assert not torch.equal(first, torch.rand(5, generator=seeding.generator(3, "init")))
    assert seeding.inputs_purpose(True) == "inputs/train" and seeding.pairs_purpose(False) == "pairs/test"


def test_unknown_purpose_and_negative_seed_are_refused():
    with pytest.raises(ValueError, match="unknown random stream 'noise'.*training-noise"):
        seeding.stream_seed(0, "noise")
    with pytest.raises(ValueError, match="non-negative"):
        seeding.stream_seed(-1, "init")
