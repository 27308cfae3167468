"""Credit assignment: the maelstrom never learns, the rules compute what they claim."""

from __future__ import annotations

import pytest
import torch

from spiking_maelstrom import learning
from spiking_maelstrom.backends import fused_cpu
from spiking_maelstrom.learning import make_rule, penalty_on_currents, predict, sequence_loss, step_weights, train_batch

from .conftest import tiny_network


def _batch(task, n=8):
    x = torch.stack([task.train[i][0] for i in range(n)])
    y = torch.stack([task.train[i][1] for i in range(n)])
    return x, y


@pytest.mark.parametrize("rule_name", ["frozen", "dfa", "local"])
def test_maelstrom_is_bit_identical_after_training_and_never_gets_a_gradient(tiny_task, rule_name):
    net = tiny_network(tiny_task)
    before = {k: v.clone() for k, v in net.maelstrom.state_dict().items()}
    encoder_before = [p.clone() for p in net.encoder.parameters()]
    rule = make_rule(rule_name, net.n_classes, net.maelstrom.n_neurons)
    params = list(net.readout.parameters()) + (list(net.encoder.parameters()) if rule.trains_encoder else [])
    optimizer = torch.optim.Adam(params, lr=1e-2)
    x, y = _batch(tiny_task)
    for _ in range(3):
        train_batch(net, rule, optimizer, x, y, tiny_task.mask, window=7)
    for name, value in net.maelstrom.state_dict().items():
        assert torch.equal(value, before[name]), name
    assert all(buf.grad is None and not buf.requires_grad for buf in net.maelstrom.buffers())
    encoder_changed = any(not torch.equal(a, b) for a, b in zip(encoder_before, net.encoder.parameters(), strict=True))
    assert encoder_changed == rule.trains_encoder


def _zero_lr_grads(net, rule_name, task, window, penalty=0.0):
    """Gradients left by one train_batch with a zero learning rate (so nothing moves)."""
    net.eval()  # fixed feature normalisation, so the reference below sees the same map
    rule = make_rule(rule_name, net.n_classes, net.maelstrom.n_neurons, seed=3)
    optimizer = torch.optim.SGD(list(net.readout.parameters()) + list(net.encoder.parameters()), lr=0.0)
    x, y = _batch(task)
    x = x.to(net.maelstrom.weight.dtype)
    _, logits = train_batch(net, rule, optimizer, x, y, task.mask, window=window, current_penalty=penalty)
    return rule, x, y, logits


@pytest.mark.parametrize(
    ("window", "features", "readout"),
    [(30, ("current",), "linear"), (7, ("current",), "linear"), (7, ("trace", "current"), "mlp")],
)
def test_local_rule_is_the_exact_gradient_through_the_synaptic_filter(tiny_task, window, features, readout):
    net = tiny_network(tiny_task, rule_feedback=False, features=features, readout=readout)
    net = net.double()
    _zero_lr_grads(net, "local", tiny_task, window)
    got = [p.grad.clone() for p in net.encoder.parameters()]

    # Reference: unroll i_t = alpha*i_{t-1} + u_t + W z_{t-1} with the recorded spikes as constants,
    # cutting the graph at the start of every window, and differentiate the whole loss.
    x, y = _batch(tiny_task)
    x = x.double()
    spikes = net(x, record=True).spikes
    net.zero_grad()
    u = net.encoder(x.flatten(0, 1)).unflatten(0, x.shape[:2])
    m = net.maelstrom
    i, trace = torch.zeros_like(u[:, 0]), torch.zeros_like(u[:, 0])
    steps = []
    for t in range(x.shape[1]):
        if t % window == 0:
            i = i.detach()
        recurrent = spikes[:, t - 1] @ m.weight.T if t > 0 else 0.0
        i = m.alpha * i + u[:, t] + recurrent
        trace = net.trace_decay * trace + spikes[:, t]  # spikes are constants: so is the trace
        steps.append(torch.cat([{"trace": trace, "current": i}[name] for name in features], -1))
    logits = net.readout(torch.stack(steps, 1))
    sequence_loss(logits, y, step_weights(tiny_task.mask, len(y))).backward()
    want = [p.grad for p in net.encoder.parameters()]
    for a, b in zip(got, want, strict=True):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-12)
    assert any(a.abs().sum() > 0 for a in got)


def test_dfa_sends_the_readout_error_through_the_fixed_matrix(tiny_task):
    net = tiny_network(tiny_task, rule_feedback=False, encoder="linear")
    rule, x, y, logits = _zero_lr_grads(net, "dfa", tiny_task, window=9)
    onehot = torch.nn.functional.one_hot(y, net.n_classes).float()
    error = (torch.softmax(logits, -1) - onehot[:, None]) * step_weights(tiny_task.mask, len(y))[..., None]
    delta = error @ rule.feedback_matrix  # [B, T, N]: the pseudo-gradient at the encoder's output
    want_weight = torch.einsum("btn,btk->nk", delta, x)
    assert torch.allclose(net.encoder.out.weight.grad, want_weight, rtol=1e-4, atol=1e-6)
    assert torch.allclose(net.encoder.out.bias.grad, delta.sum((0, 1)), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("feedback", [False, True])
@pytest.mark.parametrize(("hidden", "gram"), [((8,), True), ((200,), False)])
def test_dfa_credit_and_penalty_equal_the_full_currents_gradient(tiny_task, monkeypatch, feedback, hidden, gram):
    """The low-rank DFA objective (and the Gram form of the current penalty, taken when the encoder's
    head is narrower than the maelstrom) gives the gradients of sending ``e B`` plus the penalty's
    gradient into the currents [B, T, N] themselves."""
    calls = []
    monkeypatch.setattr(learning, "_gram_current_penalty", lambda *a: calls.append(1) or GRAM(*a))
    net = tiny_network(tiny_task, rule_feedback=feedback, encoder_hidden=hidden).double()
    penalty, window = 0.05, 30
    rule, x, y, _ = _zero_lr_grads(net, "dfa", tiny_task, window, penalty)
    got = [p.grad.clone() for p in net.encoder.parameters()]
    assert bool(calls) == gram

    net.zero_grad()
    weights = step_weights(tiny_task.mask, len(y)).double()
    state = net.init_state(len(y))
    for start in range(0, x.shape[1], window):
        sl = slice(start, start + window)
        out = net.run_window(x[:, sl], state, encoder_grad=True)
        onehot = torch.nn.functional.one_hot(y, net.n_classes).double()
        error = (torch.softmax(out.logits.detach(), -1) - onehot[:, None]) * weights[:, sl, None]
        penalty_term = penalty_on_currents(out.currents, weights[:, sl], penalty)
        torch.autograd.backward((penalty_term, out.currents), (None, error @ rule.feedback_matrix.double()))
        state = out.state
    want = [p.grad for p in net.encoder.parameters()]
    for a, b in zip(got, want, strict=True):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-12)
    assert all(a.abs().sum() > 0 for a in got)


GRAM = learning._gram_current_penalty


def test_state_between_windows_carries_no_graph(tiny_task):
    """Training memory cannot grow with T through the maelstrom: nothing carried over holds a graph."""
    net = tiny_network(tiny_task)
    x, _ = _batch(tiny_task)
    out = net.run_window(x[:, :10], net.init_state(len(x)), encoder_grad=True, feature_grad=True)
    assert out.logits.requires_grad
    neurons, trace, feedback = out.state
    assert not any(t.requires_grad for t in (*neurons, trace, feedback))


def test_predict_uses_only_masked_steps():
    logits = torch.zeros(1, 4, 3)
    logits[0, :2, 0] = 5.0
    logits[0, 2:, 2] = 5.0
    assert predict(logits, torch.tensor([True, True, False, False])).item() == 0
    assert predict(logits, torch.tensor([False, False, True, True])).item() == 2


def test_unknown_rule_and_bad_window_are_refused(tiny_task):
    with pytest.raises(ValueError, match="unknown encoder rule 'bptt'"):
        make_rule("bptt", 10, 20)
    net = tiny_network(tiny_task)
    x, y = _batch(tiny_task)
    with pytest.raises(ValueError, match="window"):
        train_batch(
            net,
            make_rule("frozen", 10, 60),
            torch.optim.SGD(net.readout.parameters(), lr=0.1),
            x,
            y,
            tiny_task.mask,
            window=0,
        )


def _train_on_backends(task, rule_name, feedback, dtype):
    """Losses and weights after three training batches on the event backend and on the fused kernel."""
    runs = {}
    for backend in ("event", "fused"):
        net = tiny_network(task, rule_feedback=feedback).to(dtype)
        net.maelstrom.backend = backend
        rule = make_rule(rule_name, net.n_classes, net.maelstrom.n_neurons)
        optimizer = torch.optim.Adam(list(net.readout.parameters()) + list(net.encoder.parameters()), lr=1e-2)
        x, y = _batch(task)
        losses = [train_batch(net, rule, optimizer, x.to(dtype), y, task.mask, window=7)[0] for _ in range(3)]
        runs[backend] = (losses, net)
    return runs["event"], runs["fused"]


@pytest.mark.skipif(not fused_cpu.available(), reason="numba is not installed")
@pytest.mark.parametrize("rule_name", ["dfa", "local"])
def test_training_with_the_fused_kernel_repeats_the_event_backend_to_the_bit(tiny_task, rule_name):
    """The default CPU backend must not change what training computes: same losses, same weights."""
    (event_losses, event_net), (fused_losses, fused_net) = _train_on_backends(tiny_task, rule_name, False, torch.float)
    assert fused_losses == event_losses
    pairs = zip(fused_net.parameters(), event_net.parameters(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)


@pytest.mark.skipif(not fused_cpu.available(), reason="numba is not installed")
@pytest.mark.parametrize("rule_name", ["dfa", "local"])
def test_training_with_feedback_in_the_fused_kernel_agrees_with_the_event_backend(tiny_task, rule_name):
    """With feedback the kernel also computes the readout's prediction and the feedback current,
    summed in its own order: the same training up to rounding (float64)."""
    (event_losses, event_net), (fused_losses, fused_net) = _train_on_backends(tiny_task, rule_name, True, torch.float64)
    assert fused_losses == pytest.approx(event_losses, rel=1e-9)
    pairs = zip(fused_net.parameters(), event_net.parameters(), strict=True)
    assert all(torch.allclose(a, b, rtol=1e-8, atol=1e-10) for a, b in pairs)
    assert fused_net.encoder.out.weight[:, -fused_net.n_classes :].abs().sum() > 0  # the feedback was used


def test_the_local_rule_without_the_current_feature_is_refused(tiny_task):
    net = tiny_network(tiny_task, rule_feedback=False, features=("trace",))
    rule = make_rule("local", net.n_classes, net.maelstrom.n_neurons)
    optimizer = torch.optim.SGD(list(net.parameters()), lr=0.1)
    x, y = _batch(tiny_task)
    message = r"the local rule needs 'current' among the readout features, got \('trace',\)"
    with pytest.raises(ValueError, match=message):
        train_batch(net, rule, optimizer, x, y, tiny_task.mask, window=7)
    assert all(p.grad is None for p in net.parameters())  # refused before anything ran
    out = net.run_window(x[:, :7], net.init_state(x.shape[0]), encoder_grad=True, feature_grad=True)
    with pytest.raises(ValueError, match=message):  # also when the credit is asked for directly
        rule.encoder_credit(net, out, y, torch.ones(x.shape[0], 7), 0.0)


def test_homeostasis_weights_the_penalty_by_the_distance_to_its_target():
    control = learning.CurrentHomeostasis(target=2.0, momentum=0.5)
    assert control.weight(0.1) == 0.0  # nothing seen yet: no penalty
    control.observe(4.0)
    assert control.weight(0.1) == pytest.approx(0.1 * (1.0 - 2.0))  # below target: the currents grow
    control.observe(20.0)  # running energy 12 = 3x the first batch's
    assert control.weight(0.1) == pytest.approx(0.1 * (3.0 - 2.0))
    for bad in (dict(target=0.0), dict(target=1.0, momentum=0.0)):
        with pytest.raises(ValueError, match="homeostasis"):
            learning.CurrentHomeostasis(**bad)


@pytest.mark.parametrize(("target", "gain", "batches"), [(0.25, 10.0, 40), (4.0, 1.0, 12)])
def test_homeostasis_drives_the_encoders_current_energy_towards_its_target(tiny_task, target, gain, batches):
    net = tiny_network(tiny_task, rule_feedback=False)
    rule = make_rule("local", net.n_classes, net.maelstrom.n_neurons)
    optimizer = torch.optim.Adam(list(net.readout.parameters()) + list(net.encoder.parameters()), lr=3e-2)
    control = learning.CurrentHomeostasis(target)
    x, y = _batch(tiny_task, 16)
    ratios = []
    for _ in range(batches):
        train_batch(net, rule, optimizer, x, y, tiny_task.mask, window=10, current_penalty=gain, homeostasis=control)
        ratios.append(float(control.energy / control.initial))
    if target < 1:
        assert ratios[-1] < 0.5, ratios  # shrunk towards a quarter of the initial energy
    else:
        assert max(ratios) > 2.0, ratios  # grown towards four times it
