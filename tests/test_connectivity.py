import pytest
import torch

from spikemod.config import ModelConfig
from spikemod.connectivity import (
    blocks,
    from_blocks,
    input_mask,
    inter_module_mask,
    intra_module_mask,
    recurrent_mask,
    synapse_counts,
)


def _cases():
    for n in (1, 2, 3, 5, 10, 25, 40):
        for p in (1 / n**2, 0.01, 0.1, 0.37, 0.5, 0.99, 1.0):
            if int(p * n**2) >= 1:
                yield n, p


@pytest.mark.parametrize("n_modules", [2, 3, 4])
def test_exact_counts_for_many_n_and_p(n_modules):
    for n, p in _cases():
        k = ModelConfig(n_modules=n_modules, n_neurons=n, p=p).n_synapses
        mask = recurrent_mask(n_modules, n, k, torch.Generator().manual_seed(n))
        counts = synapse_counts(mask, n_modules)
        off = ~torch.eye(n_modules, dtype=torch.bool)
        assert (counts[off] == k).all(), (n, p)
        assert (counts.diagonal() == n * (n - 1)).all(), (n, p)
        assert int(mask.sum()) == n_modules * n * (n - 1) + n_modules * (n_modules - 1) * k


def test_reference_counts_for_n25():
    expected = {0.01: 6, 0.1: 62, 0.5: 312, 1.0: 625}
    for p, k in expected.items():
        cfg = ModelConfig(n_neurons=25, p=p)
        assert cfg.n_synapses == k
        assert (synapse_counts(recurrent_mask(2, 25, cfg.n_synapses), 2) == torch.tensor([[600, k], [k, 600]])).all()


def test_single_synapse_and_all_to_all():
    one = synapse_counts(inter_module_mask(2, 25, ModelConfig(synapses=1).n_synapses), 2)
    assert one.tolist() == [[0, 1], [1, 0]]
    full = inter_module_mask(2, 7, 49)
    assert blocks(full, 2)[0, 1].all() and blocks(full, 2)[1, 0].all()
    assert not blocks(full, 2)[0, 0].any()


def test_no_self_connections():
    for n, p in _cases():
        k = int(p * n**2)
        mask = recurrent_mask(3, n, k)
        assert not mask.diagonal().any()
    assert not intra_module_mask(2, 1).any()  # a one-neuron module has no internal synapse


def test_block_orientation_is_target_by_source():
    # Block (i, j) = from module j to module i: row index in module i, column index in module j.
    n = 4
    matrix = torch.zeros(3 * n, 3 * n)
    matrix[2 * n + 1, 0 * n + 3] = 7.0  # neuron 3 of module 0 -> neuron 1 of module 2
    b = blocks(matrix, 3)
    assert b[2, 0, 1, 3] == 7.0 and b.sum() == 7.0
    assert torch.equal(from_blocks(b), matrix)


def test_directions_are_independent_and_seeded():
    a = inter_module_mask(2, 25, 62, torch.Generator().manual_seed(1))
    b = inter_module_mask(2, 25, 62, torch.Generator().manual_seed(1))
    c = inter_module_mask(2, 25, 62, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(blocks(a, 2)[0, 1], blocks(a, 2)[1, 0])


def test_impossible_count_is_a_clear_error():
    with pytest.raises(ValueError, match="n_synapses = 26"):
        inter_module_mask(2, 5, 26)


def test_separate_input_mask_sends_slot_m_to_module_m():
    mask = input_mask("separate", 2, 3, 2, 4)
    assert mask.shape == (6, 8)
    assert mask[:3, :4].all() and not mask[:3, 4:].any()
    assert mask[3:, 4:].all() and not mask[3:, :4].any()
    assert input_mask("shared", 2, 3, 2, 4).all()
    with pytest.raises(ValueError, match="input scheme"):
        input_mask("mixed", 2, 3, 2, 4)
