"""The bandwidth cap's router: exactly k spikes per step and direction cross (all of them when
fewer arrive) under both policies, the traffic equals the hand count, and the gradient reaches the
open sources only."""

from __future__ import annotations

import pytest
import torch

from spikemod import dynamics
from spikemod.config import RunConfig
from spikemod.training import build_model


def test_router_keeps_the_lowest_addresses_or_the_smallest_priorities():
    candidates = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    priority = torch.tensor([0.5, 0.1, 0.9, 0.2, 0.0, 0.3])
    assert dynamics.router_pass(candidates, 2).tolist() == [1, 0, 1, 0, 0, 0]
    assert dynamics.router_pass(candidates, 2, priority).tolist() == [0, 0, 0, 1, 0, 1]  # keys 0.2, 0.3
    for priorities in (None, priority):
        assert dynamics.router_pass(candidates, 4, priorities).tolist() == candidates.tolist()  # fewer than k: all
        assert dynamics.router_pass(candidates, 0, priorities).sum() == 0


def test_the_gradient_reaches_the_sources_the_router_keeps_open():
    """The open positions are a mask computed from the spikes (no gradient through the choice):
    spikes that cross get the gradient, and so do silent sources whose spike would have crossed
    (address order: ahead of the k-th crossing spike); dropped spikes get none."""
    weights = torch.arange(1.0, 7.0)
    cases = (
        (None, [1, 2, 3, 0, 0, 0]),  # cumulative spikes 1, 1, 2, 3, 3, 4 ≤ 2: the first three open
        (torch.tensor([0.5, 0.1, 0.9, 0.2, 0.0, 0.3]), [0, 0, 0, 4, 0, 6]),  # the two smallest keys of the spikes
    )
    for priority, expected in cases:
        candidates = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 1.0], requires_grad=True)
        (dynamics.router_pass(candidates, 2, priority) * weights).sum().backward()
        assert candidates.grad.tolist() == expected


@pytest.mark.parametrize("router", ["address", "random"])
@pytest.mark.parametrize("cap", [0, 1, 3])
def test_exactly_k_spikes_cross_per_step_and_direction(router, cap):
    """Cross weights all 1 and no recurrence inside a module: the current a neuron receives from the
    other module is the number of spikes that crossed, which must be min(spikes that had a synapse
    to cross, k); the recorded traffic is the same number."""
    config = RunConfig().replace(
        model=dict(variant="spiking", n_neurons=6, p=1.0, bandwidth_cap=cap, router=router, threshold=0.5, init_scale=0.5),
        task=dict(n_steps=6),
    )
    model = build_model(config, n_inputs=10)
    n = 6
    with torch.no_grad():
        model.w_rec.zero_()
        model.w_rec[:n, n:] = 1.0
        model.w_rec[n:, :n] = 1.0
        model.b.zero_()
    x = torch.rand(6, 8, 2, 10, generator=torch.Generator().manual_seed(1)) * 3
    with torch.no_grad():
        out = model(x)
        drive = model.input_current(x)
    spikes, membrane = out.states, out.membrane
    beta = model.beta()
    previous = torch.cat([torch.zeros_like(membrane[:1]), membrane[:-1]])
    fired = torch.cat([torch.zeros_like(spikes[:1]), spikes[:-1]])
    received = membrane - beta * (1 - fired) * previous - drive  # [T, B, N]: current from the other module
    arrived = fired.unflatten(-1, (2, n)).sum(-1)  # spikes of each module at t − 1
    expected = torch.minimum(arrived, torch.tensor(float(cap)))  # [T, B, M]
    torch.testing.assert_close(received[..., :n], expected[..., 1:2].expand(-1, -1, n), rtol=0, atol=1e-5)
    torch.testing.assert_close(received[..., n:], expected[..., 0:1].expand(-1, -1, n), rtol=0, atol=1e-5)
    assert arrived.max() > cap  # the cap binds somewhere
    # the recorded traffic: spikes of step t crossing (they arrive at t + 1)
    crossing = out.cross_spikes  # [T, B, i, j]
    torch.testing.assert_close(crossing[:, :, 0, 1], torch.minimum(spikes[..., n:].sum(-1), torch.tensor(float(cap))))


def test_the_random_router_passes_other_spikes_than_the_address_router_and_repeats_itself():
    def spikes(router):
        config = RunConfig().replace(
            model=dict(variant="spiking", n_neurons=6, p=1.0, bandwidth_cap=1, router=router, threshold=0.5, init_scale=0.5),
            task=dict(n_steps=6),
        )
        model = build_model(config, n_inputs=10)
        x = torch.rand(6, 8, 2, 10, generator=torch.Generator().manual_seed(1)) * 3
        with torch.no_grad():
            return model(x).states, model(x).states

    address, _ = spikes("address")
    first, second = spikes("random")
    assert torch.equal(first, second)  # the same draws on every pass of the same batch size
    assert not torch.equal(first, address)  # another subset crossed, so the states differ
