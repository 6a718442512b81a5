import dataclasses

import pytest
import torch

from numerics import assert_same_up_to_order, assert_spikes_decided

from spikemod.config import ModelConfig
from spikemod.connectivity import blocks, intra_module_mask
from spikemod.network import ModularNetwork, NetworkOutput, competitive_max
from spikemod.stack import NetworkStack
from spikemod.training import task_loss

pytestmark = pytest.mark.numerics  # float comparisons between computation orders

D = 16  # pixels per slot in these synthetic tests
N_TERMS = 2 * D + 12 + 12  # summed terms along a step: input pixels, recurrent sources, readout inputs


def _net(**fields) -> ModularNetwork:
    dims = {k: fields.pop(k) for k in ("n_inputs", "n_slots", "n_heads", "n_classes") if k in fields}
    # PyTorch's init for every variant here: its large currents make the LIF modules spike a lot.
    cfg = ModelConfig(**{"n_neurons": 6, "p": 0.2, "init": "pytorch", **fields})
    return ModularNetwork(cfg, **{"n_inputs": D, **dims})


def _input(steps=4, batch=5, slots=2, pixels=D, seed=0):
    g = torch.Generator().manual_seed(seed)
    image = torch.randn(batch, slots, pixels, generator=g) * 2
    return image.expand(steps, batch, slots, pixels)


def _run(net: ModularNetwork, x: torch.Tensor, static: bool = False, k: int = 1) -> NetworkOutput:
    """The network's output alone (k = 1), or, asserted equal for each, that of k copies of it run
    together in one :class:`NetworkStack` (the trainer's path)."""
    if k == 1:
        return net(x, static=static)
    stack = NetworkStack([net] * k)
    out = stack(x[:, None], static=static)
    cross = stack.cross_spikes(out.states) if net.spiking else None
    for name, value in (("states", out.states), ("logits", out.logits), ("membrane", out.membrane), ("cross", cross)):
        if value is None:
            continue
        for j in range(1, k):  # spikes and their counts exactly; floats up to the order of a batched matmul
            if name == "cross" or (name == "states" and net.spiking):
                assert torch.equal(value[:, j], value[:, 0]), name
            else:
                assert_same_up_to_order(value[:, j], value[:, 0], N_TERMS, msg=name)
    first = lambda t: None if t is None else t[:, 0]  # noqa: E731
    return NetworkOutput(out.logits[:, 0], first(out.module_logits), out.states[:, 0], first(out.membrane), None, first(cross))


def test_output_shapes():
    x = _input()
    out = _net(variant="spiking")(x, static=True)
    assert out.logits.shape == (4, 5, 2, 10)
    assert out.module_logits.shape == (4, 5, 2, 2, 10)
    assert out.states.shape == out.membrane.shape == (4, 5, 12)
    assert out.cross_spikes.shape == (4, 5, 2, 2)
    assert out.predictions().shape == (5, 2)
    out = _net(variant="rate", readout_scheme="shared", bottleneck=3)(x)
    assert out.module_logits is None and out.membrane is None and out.cross_spikes is None
    assert out.bottleneck.shape == (4, 5, 2, 3)


@pytest.mark.parametrize("variant", ["rate", "spiking"])
@pytest.mark.parametrize("optimizer", ["adamw", "adadelta"])
@pytest.mark.parametrize("deep_r", [False, True])
def test_masked_weights_stay_zero_after_training_steps(variant, optimizer, deep_r):
    net = _net(variant=variant, deep_r=deep_r)
    params = net.module_parameters()
    opt = (
        torch.optim.AdamW(params, lr=0.05, weight_decay=0.1)
        if optimizer == "adamw"
        else torch.optim.Adadelta(params, lr=0.5, weight_decay=0.1)
    )
    targets = torch.randint(0, 10, (5, 2))
    for seed in range(5):
        loss = task_loss(net(_input(seed=seed)).logits, targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
    mask = net.recurrent_mask()
    w_rec = net.recurrent_weight().detach()
    assert (w_rec[~mask] == 0).all()
    assert (net.w_rec.detach()[~mask] == 0).all()  # the raw parameter too
    assert (w_rec[mask] != 0).float().mean() > 0.9  # the connections themselves did train
    in_mask = net.input_mask
    assert (net.input_weight().detach()[~in_mask] == 0).all()
    assert (net.w_in.detach()[~in_mask] == 0).all()
    assert int(blocks(mask, 2)[0, 1].sum()) == int(blocks(mask, 2)[1, 0].sum()) == 7


def test_competitive_max_on_a_hand_made_example():
    # [B=3, M=2, C=3]: the module with the highest single logit decides, even if its sum is lower.
    logits = torch.tensor(
        [
            [[0.1, 0.9, 0.0], [0.8, 0.7, 0.6]],  # module 0 has the maximum 0.9 -> class 1
            [[0.5, 0.2, 0.1], [-1.0, -2.0, 3.0]],  # module 1 has the maximum 3.0 -> class 2
            [[2.0, 0.0, 0.0], [0.0, 0.0, 2.0]],  # tie -> the first module
        ]
    )
    decided, deciding = competitive_max(logits)
    assert deciding.tolist() == [0, 1, 0]
    assert torch.equal(decided, logits[torch.arange(3), deciding])
    # K = 3 networks at once (a leading network axis; network k sees the example rolled by k)
    stacked = torch.stack([logits.roll(k, dims=0) for k in range(3)])
    decided_k, deciding_k = competitive_max(stacked)
    for k in range(3):
        assert torch.equal(deciding_k[k], deciding.roll(k)) and torch.equal(decided_k[k], decided.roll(k, dims=0))
    assert decided.argmax(-1).tolist() == [1, 2, 0]


def test_separate_readout_decides_by_competitive_max():
    out = _net(variant="rate")(_input())
    expected, _ = competitive_max(out.module_logits)
    assert torch.equal(out.logits, expected)


def test_shared_readout_reads_every_module():
    # At the first step a module's state depends only on its own digit slot (h_0 = 0), so
    # changing slot m reaches the readout only through module m.
    x = _input(steps=1)
    for scheme, both_heads_move in (("shared", True), ("separate", False)):
        net = _net(variant="rate", readout_scheme=scheme, p=1.0)
        base = net(x)
        for slot in (0, 1):
            changed = x.clone()
            changed[:, :, slot] += 1.0
            out = net(changed)
            states_moved = (out.states - base.states).abs().view(1, 5, 2, 6).sum(dim=(0, 1, 3))
            assert states_moved[slot] > 0 and states_moved[1 - slot] == 0
            if scheme == "shared":
                assert ((out.logits - base.logits).abs() > 0).all()
            else:  # each module's own readout only moves with its own slot
                moved = (out.module_logits - base.module_logits).abs().sum(dim=(0, 1, 2, 4))
                assert moved[slot] > 0 and moved[1 - slot] == 0
        assert both_heads_move == (scheme == "shared")
    # The shared layer is dense: every output unit has weights on every module's neurons.
    net = _net(variant="rate", readout_scheme="shared")
    x = torch.zeros(1, 3, 12, requires_grad=True)
    net.readout(x).sum().backward()
    grad = x.grad.view(3, 2, 6)
    assert (grad.abs().sum(dim=(0, 2)) > 0).all()
    assert (net.readout.weight.view(20, 2, 6).abs().sum(-1) > 0).all()


def _three_neuron_net() -> ModularNetwork:
    # Three modules of one neuron, each seeing its own one-pixel slot; all 6 inter-module synapses exist.
    cfg = ModelConfig(variant="spiking", n_modules=3, n_neurons=1, p=1.0, beta=0.5, threshold=1.0)
    net = ModularNetwork(cfg, n_inputs=1, n_slots=3, n_heads=1, n_classes=2)
    with torch.no_grad():
        net.w_in.copy_(torch.eye(3))
        net.w_rec.zero_()
        net.w_rec[1, 0] = 0.5  # 0 -> 1
        net.w_rec[2, 1] = 1.5  # 1 -> 2
        net.w_rec[0, 2] = -2.0  # 2 -> 0
        net.b.zero_()
    return net


@pytest.mark.parametrize("k", [1, 3])
def test_spiking_forward_on_a_hand_built_three_neuron_network(k):
    net = _three_neuron_net()
    x = torch.tensor([1.2, 0.6, 0.0]).view(1, 1, 3, 1).expand(7, 1, 3, 1)
    out = _run(net, x, static=True, k=k)
    # By hand: I_t = x + W s_{t-1}; U_t = 0.5 (1 - S_{t-1}) U_{t-1} + I_t; S_t = U_t > 1.
    spikes = [[1, 0, 0], [1, 1, 0], [1, 1, 1], [0, 1, 1], [0, 0, 1], [0, 0, 0], [0, 1, 0]]
    membrane = [
        [1.2, 0.6, 0.0],
        [1.2, 1.4, 0.0],
        [1.2, 1.1, 1.5],
        [-0.8, 1.1, 1.5],
        [-1.2, 0.6, 1.5],
        [-1.4, 0.9, 0.0],
        [0.5, 1.05, 0.0],
    ]
    assert out.states[:, 0].tolist() == spikes
    assert torch.allclose(out.membrane[:, 0], torch.tensor(membrane), atol=1e-6)
    # Every neuron has a synapse into both other modules: each spike crosses to both.
    s = torch.tensor(spikes, dtype=torch.float)
    expected_cross = s[:, None, :].expand(7, 3, 3) * (1 - torch.eye(3))
    assert torch.equal(out.cross_spikes[:, 0], expected_cross)


def test_spiking_forward_is_the_lava_lif_recurrence():
    # U_t = beta (1 - S_{t-1}) U_{t-1} + W_in x_t + W_rec S_{t-1} + b; S_t = U_t > threshold,
    # with per-neuron beta and threshold (learnable ones), as Lava's LIF(du=1, dv=1-beta).
    net = _net(variant="spiking", learn_beta=True, learn_threshold=True)
    with torch.no_grad():
        net.lif.beta.uniform_(0.5, 0.95)
        net.lif.threshold.uniform_(0.5, 1.5)
    x = torch.randn(6, 3, 2, D)
    out = net(x)
    w_in, w_rec, b = net.input_weight(), net.recurrent_weight(), net.bias()
    beta, threshold = net.beta(), net.threshold()
    assert_spikes_decided(out.membrane, threshold, N_TERMS)
    u, s = torch.zeros(3, 12), torch.zeros(3, 12)
    for t in range(6):
        u = beta * (1 - s) * u + x[t].flatten(1) @ w_in.T + s @ w_rec.T + b
        s = (u > threshold).float()
        assert_same_up_to_order(out.membrane[t], u, N_TERMS)
        assert torch.equal(out.states[t], s)
    assert out.states.sum() > 0


@pytest.mark.parametrize("k", [1, 3])
def test_bias_enters_every_step(k):
    net = _three_neuron_net()
    with torch.no_grad():
        net.b.fill_(0.3)
    x = torch.zeros(3, 1, 3, 1)
    out = _run(net, x, k=k)
    # U = 0.3, 0.45, 0.525 (no spikes, no recurrence).
    assert torch.allclose(out.membrane[:, 0, 0], torch.tensor([0.3, 0.45, 0.525]))


@pytest.mark.parametrize("k", [1, 3])
def test_bandwidth_cap_of_zero_or_above_n(k):
    net = _three_neuron_net()
    x = torch.tensor([1.2, 0.6, 0.0]).view(1, 1, 3, 1).expand(7, 1, 3, 1)
    free = _run(net, x, static=True, k=k)
    net.config = dataclasses.replace(net.config, bandwidth_cap=5)
    assert torch.equal(_run(net, x, static=True, k=k).states, free.states)  # a cap above n changes nothing
    net.config = dataclasses.replace(net.config, bandwidth_cap=0)
    blocked = _run(net, x, static=True, k=k)
    assert blocked.cross_spikes.sum() == 0
    # No spike crosses: neuron 0 (input 1.2) fires every step; neuron 1 (0.6) reaches
    # 0.6, 0.9, 1.05 and fires at steps 3 and 6; neuron 2 (no input) never fires.
    assert blocked.states[:, 0].T.tolist() == [[1] * 7, [0, 0, 1, 0, 0, 1, 0], [0] * 7]


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("cap, expected", [(None, 111.0), (2, 11.0), (1, 1.0)])
def test_bandwidth_cap_passes_the_lowest_indices_first(cap, expected, k):
    cfg = ModelConfig(variant="spiking", n_neurons=3, p=1.0, beta=0.5, threshold=1000.0, bandwidth_cap=cap)
    net = ModularNetwork(cfg, n_inputs=1, n_slots=2, n_heads=1, n_classes=2)
    with torch.no_grad():
        net.w_in.zero_()
        net.w_in[:3, 0] = 2000.0  # module 0 fires every step
        net.w_rec.zero_()
        net.w_rec[3, :3] = torch.tensor([1.0, 10.0, 100.0])  # module 0 -> neuron 3 of module 1
        net.b.zero_()
    x = torch.tensor([1.0, 0.0]).view(1, 1, 2, 1).expand(2, 1, 2, 1)
    out = _run(net, x, static=True, k=k)
    assert out.states[:, 0, :3].sum() == 6 and out.states[:, 0, 3:].sum() == 0
    assert out.membrane[1, 0, 3].item() == expected  # neurons 0, 1, 2 spiked: the first `cap` pass
    assert out.cross_spikes[1, 0, 1, 0].item() == (3 if cap is None else cap)


def test_bandwidth_cap_limits_crossing_spikes():
    torch.manual_seed(3)
    net = _net(variant="spiking", p=1.0, bandwidth_cap=2)
    out = net(_input(steps=6))
    assert out.cross_spikes.max() <= 2 and out.cross_spikes.sum() > 0
    eligible = net.eligible_sources()
    spikes = out.states.unflatten(-1, (2, 6))
    per_direction = torch.einsum("tbjc,ijc->tbij", spikes, eligible.float())
    assert torch.equal(out.cross_spikes, per_direction.clamp(max=2))
    assert (per_direction > 2).any()  # the cap did bind


def test_rate_forward_matches_the_recurrence():
    net = _net(variant="rate")
    x = torch.randn(3, 2, 2, D)
    out = net(x)
    w_in, w_rec, b = net.input_weight(), net.recurrent_weight(), net.bias()
    h = torch.zeros(2, 12)
    for t in range(3):
        h = torch.tanh(x[t].flatten(1) @ w_in.T + h @ w_rec.T + b)
        assert_same_up_to_order(out.states[t], h, N_TERMS)


def test_static_input_projects_once_with_the_same_result():
    net = _net(variant="spiking")
    x = _input()
    static, moving = net(x, static=True), net(x.contiguous(), static=False)
    assert_spikes_decided(static.membrane, net.config.threshold, N_TERMS)
    assert torch.equal(static.states, moving.states)
    assert_same_up_to_order(static.membrane, moving.membrane, N_TERMS)


def test_input_current_and_fused_input():
    x = torch.randn(2, 3, 2, D)
    net = _net(input_scheme="shared")
    assert_same_up_to_order(net.input_current(x), x.flatten(2) @ net.input_weight().T, 2 * D)
    fused = _net(input_scheme="fused")
    w = fused.input_weight()
    assert w.shape == (12, 2 * D) and torch.equal(w[:, :D], w[:, D:])
    assert_same_up_to_order(fused.input_current(x), (x[:, :, 0] + x[:, :, 1]) @ fused.w_in.T, 2 * D)


def test_membrane_and_count_readouts():
    x = _input(steps=5)
    torch.manual_seed(1)
    membrane = _net(variant="spiking", readout_scheme="shared", spike_readout="membrane")
    out = membrane(x)
    current = membrane.readout(out.states.unflatten(-1, (2, 6)).flatten(-2)).unflatten(-1, (2, 10))
    v = torch.zeros_like(current[0])
    for t in range(5):
        v = 0.9 * v + current[t]
        assert_same_up_to_order(out.logits[t], v, 12 + 5)  # readout inputs, then 5 leaky steps
    torch.manual_seed(1)
    count = _net(variant="spiking", readout_scheme="shared", spike_readout="count")
    out = count(x)
    counts = out.states.cumsum(0)
    assert_same_up_to_order(out.logits, count.readout(counts).unflatten(-1, (2, 10)), 12)


@pytest.mark.parametrize("surrogate", ["atan", "fast_sigmoid"])
def test_gradient_reaches_inter_module_weights_through_the_surrogate(surrogate):
    torch.manual_seed(2)
    net = _net(variant="spiking", p=0.5, surrogate=surrogate)
    out = net(_input(steps=5))
    # Module 0's own readout: module 1 reaches it only through spikes over the interconnect.
    out.module_logits[-1, :, :, 0].sum().backward()
    mask = blocks(net.recurrent_mask(), 2)
    grad = blocks(net.w_rec.grad, 2)
    assert grad[0, 1][mask[0, 1]].abs().sum() > 0  # module 1 -> module 0 synapses
    assert net.w_in.grad[6:, D:].abs().sum() > 0  # module 1's input weights, via its spikes
    assert net.readout.weight.grad[1].abs().sum() == 0  # module 1's own readout is not involved


def test_deep_r_interconnect_gets_gradient():
    torch.manual_seed(2)
    net = _net(variant="spiking", p=0.5, deep_r=True)
    out = net(_input(steps=5))
    out.module_logits[-1, :, :, 0].sum().backward()
    assert net.interconnect.theta.grad.abs().sum() > 0


def test_learnable_beta_and_threshold_are_per_neuron():
    net = _net(variant="spiking", learn_beta=True, learn_threshold=True, beta=0.8)
    assert net.beta().shape == net.threshold().shape == (12,)
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    task_loss(net(_input()).logits, torch.randint(0, 10, (5, 2))).backward()
    opt.step()
    assert net.beta().unique().numel() > 1 and net.threshold().unique().numel() > 1
    fixed = _net(variant="spiking", beta=0.8)
    assert torch.equal(fixed.beta(), torch.full((12,), 0.8))
    with pytest.raises(ValueError, match="rate variant"):
        _net(variant="rate").beta()


def test_default_init_per_variant():
    rate = ModularNetwork(ModelConfig(variant="rate", n_neurons=6, p=1.0), n_inputs=D)
    bound = 1 / 12**0.5  # PyTorch's RNN init over all N = 12 neurons
    assert rate.w_rec.abs().max() <= bound and rate.w_rec.abs().max() > 0.8 * bound
    assert rate.readout.weight.abs().max() <= 1 / 6**0.5  # nn.Linear's init, fan-in n = 6
    spiking = ModularNetwork(ModelConfig(variant="spiking", n_neurons=6, p=1.0), n_inputs=D)
    for tensor in (spiking.w_in, spiking.w_rec, spiking.b, spiking.readout.weight):
        assert tensor.abs().max() <= 0.01 and tensor.abs().max() > 0.007
    wide = ModularNetwork(ModelConfig(variant="spiking", n_neurons=6, init_scale=0.5), n_inputs=D)
    assert wide.w_in.abs().max() > 0.4


def test_bad_input_is_a_clear_error():
    net = _net()
    with pytest.raises(ValueError, match=r"\[T, B, 2, 16\]"):
        net(torch.zeros(3, 4, 32))
    with pytest.raises(ValueError, match="float"):
        net(torch.zeros(3, 4, 2, D, dtype=torch.long))


def test_network_does_not_leak_into_snntorch_registry():
    import snntorch

    before = len(snntorch.SpikingNeuron.instances)
    for _ in range(3):
        _net(variant="spiking")
    assert len(snntorch.SpikingNeuron.instances) == before


# ----- interconnect onset -----

ONSET_VARIANTS = [dict(variant="rate"), dict(variant="spiking"), dict(variant="spiking", bandwidth_cap=2)]


def _onset_net(onset: int, **fields) -> ModularNetwork:
    torch.manual_seed(11)  # the same weights for every onset
    return _net(p=1.0, interconnect_onset=onset, **fields)


def _without_interconnect(net: ModularNetwork) -> ModularNetwork:
    """The same network with its off-diagonal blocks zeroed and the interconnect always on."""
    plain = _onset_net(1, **{k: getattr(net.config, k) for k in ("variant", "bandwidth_cap")})
    plain.load_state_dict(net.state_dict())
    with torch.no_grad():
        plain.w_rec.mul_(intra_module_mask(2, 6))
    return plain


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("fields", ONSET_VARIANTS)
def test_interconnect_onset_one_or_two_is_the_plain_network(fields, k):
    x = _input(steps=6)
    plain = _onset_net(1, **fields)
    reference = _run(plain, x, k=k)
    assert reference.states.unflatten(-1, (2, 6)).sum() > 0
    for onset in (1, 2):  # states start at zero: nothing crosses at step 1 either way
        net = _onset_net(onset, **fields)
        out = _run(net, x, k=k)
        assert torch.equal(out.states, reference.states) and torch.equal(out.logits, reference.logits)
        if net.spiking:
            assert torch.equal(out.cross_spikes, reference.cross_spikes)
            assert torch.equal(out.membrane, reference.membrane)


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("fields", ONSET_VARIANTS)
def test_interconnect_onset_after_the_run_is_no_interconnect(fields, k):
    x = _input(steps=5)
    net = _onset_net(7, **fields)  # step 6 would be the first to receive the interconnect
    out = _run(net, x, k=k)
    isolated = _run(_without_interconnect(net), x, k=k)
    assert torch.equal(out.states, isolated.states) and torch.equal(out.logits, isolated.logits)
    if net.spiking:
        assert out.states.sum() > 0 and out.cross_spikes.sum() == 0


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("fields", ONSET_VARIANTS)
def test_interconnect_switches_on_at_the_onset_step(fields, k):
    onset, steps = 4, 7
    x = _input(steps=steps)
    net = _onset_net(onset, **fields)
    out = _run(net, x, k=k)
    isolated = _run(_without_interconnect(net), x, k=k)
    full = _run(_onset_net(1, **fields), x, k=k)
    # Steps 1 .. onset - 1 (0-based 0 .. onset - 2) see only the modules' own recurrence ...
    assert torch.equal(out.states[: onset - 1], isolated.states[: onset - 1])
    # ... and from the onset step on the interconnect acts: the states leave the isolated ones.
    assert not torch.equal(out.states[onset - 1 :], isolated.states[onset - 1 :])
    assert not torch.equal(out.states, full.states)
    # Reference: the recurrence with the interconnect switched on at step `onset`.
    w_in, b = net.input_weight(), net.bias()
    w_full = net.recurrent_weight()
    w_intra = w_full * intra_module_mask(2, 6)
    if not net.spiking:
        h = torch.zeros(5, 12)
        for t in range(steps):
            w = w_full if t + 1 >= onset else w_intra
            h = torch.tanh(x[t].flatten(1) @ w_in.T + h @ w.T + b)
            assert_same_up_to_order(out.states[t], h, N_TERMS)
        return
    # Spikes of step t arrive at step t + 1: those of steps t < onset - 1 never cross.
    assert out.cross_spikes[: onset - 2].sum() == 0
    eligible = net.eligible_sources().float()
    per_direction = torch.einsum("tbjc,ijc->tbij", out.states.unflatten(-1, (2, 6)), eligible)
    if net.config.bandwidth_cap is not None:
        per_direction = per_direction.clamp(max=net.config.bandwidth_cap)
    assert torch.equal(out.cross_spikes[onset - 2 :], per_direction[onset - 2 :])
    assert out.cross_spikes[onset - 2 :].sum() > 0
