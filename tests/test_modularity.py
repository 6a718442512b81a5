"""Structural modularity: the closed forms against Newman's Q computed on actual graphs."""

import math

import numpy as np
import pytest
import torch

from spikemod.config import ModelConfig
from spikemod.connectivity import recurrent_mask
from spikemod.modularity import module_labels, network_modularity, newman_q, q_exact, q_paper
from spikemod.network import ModularNetwork


def synapse_counts_from_one_to_all(n: int) -> list[int]:
    """One synapse, then p = 0.01, 0.05, 0.1, 0.5 and 1 as exact counts int(p·n²)."""
    return sorted({1} | {int(p * n * n) for p in (0.01, 0.05, 0.1, 0.5, 1.0)} - {0})


@pytest.mark.parametrize("p", [0.0, 0.01, 0.1, 0.5, 1.0])
def test_paper_formula(p):
    assert q_paper(p) == pytest.approx((1 - p) / (2 * (1 + p)), abs=1e-15)


def test_paper_formula_extremes_and_errors():
    assert q_paper(0.0) == 0.5 and q_paper(1.0) == 0.0
    with pytest.raises(ValueError, match="fraction"):
        q_paper(1.5)
    with pytest.raises(ValueError, match="at least 2 modules"):
        q_paper(0.1, n_modules=1)


def test_exact_formula_is_the_papers_at_the_effective_p():
    for n in (10, 25):
        for c in synapse_counts_from_one_to_all(n):
            expected = (n * (n - 1) - c) / (2 * (n * (n - 1) + c))
            assert q_exact(n, c) == pytest.approx(expected, abs=1e-15)
            p_prime = c / (n * (n - 1))  # exceeds 1 near p = 1; the formula still holds
            assert q_exact(n, c) == pytest.approx((1 - p_prime) / (2 * (1 + p_prime)), abs=1e-15)


def test_gap_to_the_papers_q_at_n10():
    """Our modules have no self-connections, so Q differs from the papers' by up to about 0.026 at n = 10."""
    n = 10
    gaps = [q_exact(n, c) - q_paper(c / n**2) for c in range(0, n * n + 1)]
    assert max(abs(g) for g in gaps) == pytest.approx(0.026, abs=0.001)
    assert min(gaps) < 0  # the exact Q is below the papers' at every p > 0
    assert gaps[0] == 0


@pytest.mark.parametrize("n", [10, 25, 50])
def test_graph_q_matches_exact_expression(n):
    """Newman's Q of built masks equals the exact closed form to float precision, one synapse to p = 1."""
    labels = module_labels(2, n)
    generator = torch.Generator().manual_seed(n)
    for c in synapse_counts_from_one_to_all(n):
        mask = recurrent_mask(2, n, c, generator)
        assert int(mask.sum()) == 2 * n * (n - 1) + 2 * c  # the construction is exact
        assert newman_q(mask, labels) == pytest.approx(q_exact(n, c), abs=1e-12)
        assert newman_q(mask.T, labels) == pytest.approx(q_exact(n, c), abs=1e-12)


def test_graph_q_with_more_modules():
    n, m, c = 8, 3, 5
    mask = recurrent_mask(m, n, c, torch.Generator().manual_seed(0))
    assert newman_q(mask, module_labels(m, n)) == pytest.approx(q_exact(n, c, n_modules=m), abs=1e-12)


def test_newman_q_hand_computed_graphs():
    # Two disconnected complete graphs with self-loops: Q = 1/2 (the papers' p = 0).
    block = torch.ones(3, 3)
    separated = torch.block_diag(block, block)
    assert newman_q(separated, [0, 0, 0, 1, 1, 1]) == pytest.approx(0.5, abs=1e-15)
    # Everything connected to everything: Q = 0 (the papers' p = 1).
    assert newman_q(torch.ones(6, 6), [0, 0, 0, 1, 1, 1]) == pytest.approx(0.0, abs=1e-15)
    # A directed 2-cycle across groups only: Q = 0 - (1/2·1/2 + 1/2·1/2) = -1/2.
    cross = np.array([[0, 1], [1, 0]])
    assert newman_q(cross, np.array([0, 1])) == pytest.approx(-0.5, abs=1e-15)


def test_newman_q_rejects_bad_input():
    with pytest.raises(ValueError, match="square"):
        newman_q(torch.ones(2, 3), [0, 1])
    with pytest.raises(ValueError, match="one group per node"):
        newman_q(torch.ones(2, 2), [0, 1, 1])
    with pytest.raises(ValueError, match="no edges"):
        newman_q(torch.zeros(2, 2), [0, 1])
    with pytest.raises(ValueError, match="negative"):
        newman_q(-torch.ones(2, 2), [0, 1])


@pytest.mark.parametrize("deep_r", [False, True])
@pytest.mark.parametrize("synapses", [1, 6, 100])
def test_network_modularity_of_built_networks(deep_r, synapses):
    cfg = ModelConfig(n_neurons=10, synapses=synapses, deep_r=deep_r)
    torch.manual_seed(1)
    q = network_modularity(ModularNetwork(cfg))
    assert q.n_synapses == synapses and q.p == synapses / 100
    assert q.graph == pytest.approx(q.exact, abs=1e-12)
    assert q.exact == pytest.approx(q_exact(10, synapses), abs=1e-15)
    assert q.paper == pytest.approx((1 - q.p) / (2 * (1 + q.p)), abs=1e-15)
    assert math.isclose(q.exact, q.paper, abs_tol=0.03) and q.exact < q.paper
