import torch

from spikemod.config import ModelConfig
from spikemod.connectivity import blocks, synapse_counts
from spikemod.deepr import REACTIVATION_THETA, DeepR, DeepRInterconnect
from spikemod.network import ModularNetwork
from spikemod.training import task_loss


def _interconnect(n_modules=2, n=8, k=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    initial = torch.empty(n_modules * n, n_modules * n).uniform_(-0.1, 0.1, generator=g)
    return DeepRInterconnect(n_modules, n, k, initial, generator=g)


def _counts(interconnect):
    return interconnect.active().flatten(1).sum(1)


def test_initial_state_is_exact_and_only_between_modules():
    ic = _interconnect(n_modules=3, k=5)
    assert _counts(ic).tolist() == [5] * 6
    w = ic.weight()
    assert (blocks(w, 3).diagonal(dim1=0, dim2=1) == 0).all()
    counts = synapse_counts(ic.mask(), 3)
    assert counts.tolist() == [[0, 5, 5], [5, 0, 5], [5, 5, 0]]
    assert torch.equal(ic.mask(), w != 0)
    assert (w.abs() <= 0.1).all()


def test_count_stays_exact_over_many_steps_and_connections_rewire():
    torch.manual_seed(0)
    ic = _interconnect(n_modules=3, n=8, k=5)
    first = ic.active().clone()
    sign = ic.sign.clone()
    deep_r = DeepR(ic.theta, [5], lr=0.05, l1=1e-3, noise=[0.5], generators=[torch.Generator().manual_seed(1)])
    ever_active = first.clone()
    for _ in range(150):
        deep_r.zero_grad()
        (ic.weight() * torch.randn(24, 24)).sum().backward()
        deep_r.step()
        assert _counts(ic).tolist() == [5] * 6
        assert synapse_counts(ic.mask(), 3).sum() == 30
        ever_active |= ic.active()
    assert torch.equal(ic.sign, sign)  # signs are fixed
    assert not torch.equal(ic.active(), first)  # connections rewired
    assert ever_active.flatten(1).sum(1).min() > 5  # every direction explored new synapses
    w = ic.weight().detach()
    active_signs = blocks(torch.sign(w), 3)[ic.pairs[:, 0], ic.pairs[:, 1]][ic.active()]
    assert torch.equal(active_signs, ic.sign[ic.active()])  # weight = sign * theta


def test_dormant_connections_do_not_move_and_revived_ones_start_fresh():
    ic = _interconnect(k=3)
    deep_r = DeepR(ic.theta, [3], lr=0.1, l1=0.0, noise=[0.0], generators=[None])
    with torch.no_grad():
        ic.theta[0, 0, 0] = -0.2  # dormant
    dormant_before = ic.theta.detach().clone()
    # Push one active connection far below zero with a large gradient.
    victim = tuple(ic.active()[1].nonzero()[0].tolist())
    deep_r.zero_grad()
    ic.theta.grad = torch.zeros_like(ic.theta)
    ic.theta.grad[(1,) + victim] = 1.0
    # A first step creates Adam state; reset theta so the victim dies in the second one.
    deep_r.step()
    with torch.no_grad():
        ic.theta[(1,) + victim] = 0.01
    ic.theta.grad = torch.zeros_like(ic.theta)
    ic.theta.grad[(1,) + victim] = 1.0
    deep_r.step()
    assert ic.theta[(1,) + victim] <= 0
    assert _counts(ic).tolist() == [3, 3]
    revived = (ic.theta == REACTIVATION_THETA).nonzero()
    assert len(revived) >= 1 and (revived[:, 0] == 1).all()
    state = deep_r.adam.state[ic.theta]
    for row in revived.tolist():
        assert state["exp_avg"][tuple(row)] == 0 and state["exp_avg_sq"][tuple(row)] == 0
    still_dormant = (dormant_before <= 0) & (ic.theta <= 0)
    assert torch.equal(ic.theta[still_dormant], dormant_before[still_dormant])
    assert ic.theta[0, 0, 0] == -0.2 or ic.theta[0, 0, 0] == REACTIVATION_THETA


def test_deep_r_in_a_network_trains_and_keeps_counts():
    torch.manual_seed(0)
    cfg = ModelConfig(variant="spiking", n_neurons=6, synapses=4, deep_r=True, init="pytorch")
    net = ModularNetwork(cfg, n_inputs=10)
    module_opt = torch.optim.AdamW(net.module_parameters(), lr=1e-2)
    deep_r = DeepR(net.interconnect.theta, [4], lr=0.1, l1=1e-4, noise=[1e-2], generators=[torch.Generator().manual_seed(0)])
    assert {id(p) for p in net.module_parameters()}.isdisjoint({id(net.interconnect.theta)})
    before = net.recurrent_mask().clone()
    x = torch.randn(4, 8, 2, 10)
    y = torch.randint(0, 10, (8, 2))
    changed = False
    for _ in range(15):
        loss = task_loss(net(x).logits, y)
        module_opt.zero_grad()
        deep_r.zero_grad()
        loss.backward()
        module_opt.step()
        deep_r.step()
        counts = synapse_counts(net.recurrent_mask(), 2)
        assert counts.tolist() == [[30, 4], [4, 30]]
        changed |= not torch.equal(net.recurrent_mask(), before)
    assert changed


def test_three_networks_rewire_together_exactly_as_each_alone():
    # different synapse counts, temperatures and generators; the same gradients
    counts, noises = [2, 5, 9], [0.5, 0.1, 0.0]
    alone = [_interconnect(n_modules=3, n=8, k=k, seed=k) for k in counts]
    stacked = torch.nn.Parameter(torch.stack([ic.theta.detach().clone() for ic in alone]))
    together = DeepR(stacked, counts, lr=0.05, l1=1e-3, noise=noises, generators=[torch.Generator().manual_seed(k) for k in counts])
    each = [
        DeepR(ic.theta, [k], lr=0.05, l1=1e-3, noise=[noise], generators=[torch.Generator().manual_seed(k)])
        for ic, k, noise in zip(alone, counts, noises)
    ]
    g = torch.Generator().manual_seed(7)
    for _ in range(40):
        grads = torch.randn(stacked.shape, generator=g)
        together.zero_grad()
        stacked.grad = grads.clone()
        together.step()
        for i, (ic, deep_r) in enumerate(zip(alone, each)):
            deep_r.zero_grad()
            ic.theta.grad = grads[i].clone()
            deep_r.step()
    for i, (ic, k) in enumerate(zip(alone, counts)):
        assert torch.equal(stacked[i], ic.theta)  # elementwise Adam, own walk and reactivation draws
        assert (stacked[i] > 0).flatten(1).sum(1).tolist() == [k] * 6
