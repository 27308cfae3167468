"""Online training of a Maelstrom network: credit assignment for the encoder and the per-batch step.

The readout always gets its exact gradient (its input features are constants). The encoder's
credit comes from one of three rules, none of which differentiates spikes or the recurrence:

* ``frozen``: the encoder stays at its random initialisation (a classic liquid state machine).
* ``dfa``: direct feedback alignment; the per-step readout error ``dL/dy_t`` is sent to the
  encoder's output through a fixed random matrix ``B [classes, neurons]``. The encoder's output
  layer is linear, so this credit of rank ``classes`` is never formed as a ``[B, T, neurons]``
  tensor: it reaches the layer's input and weights through the small product ``B W``.
* ``local``: the exact gradient through the maelstrom's linear input stage, the synaptic-current
  filter ``i_t = alpha * i_{t-1} + u_t``, into the current feature the readout reads: the loss's
  gradient with respect to that feature, run backwards through the filter (its adjoint).

A sequence is processed in windows of ``window`` steps; each window's graph (the encoder's and the
readout's calls, never the maelstrom) is freed by its own backward passes, so memory does not grow
with the sequence length. Gradients add up over the windows and the optimiser steps once per batch.
For ``local`` the filter's gradient is exact inside a window and truncated at its start (exact for
``window >= T``).

Each window has two backward passes: the loss's, which trains the readout (and leaves the
features' gradient where the local rule reads it), then the rule's credit, into the encoder.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from .network import MaelstromNetwork, NetworkState, WindowOutput
from .parts import Part

RULES = ("frozen", "dfa", "local")

# What ``torch.autograd.backward`` takes: tensors and the gradients they receive (None for scalars).
Credit = tuple[list[Tensor], list[Tensor | None]]


class EncoderRule(nn.Module, Part):
    """How the encoder is credited; a module so that a rule's fixed matrices are saved with it."""

    # Whether the rule reads the loss's gradient with respect to the readout's features.
    feature_grad = False

    def __init__(self, name: str) -> None:
        super().__init__()
        if name not in RULES:
            raise ValueError(f"unknown encoder rule {name!r}: choose one of {', '.join(RULES)}")
        self.name = name

    @property
    def trains_encoder(self) -> bool:
        return self.name != "frozen"

    def check(self, network: MaelstromNetwork) -> None:
        """Refuse a network the rule cannot credit, before anything is computed."""

    def encoder_credit(
        self, network: MaelstromNetwork, out: WindowOutput, targets: Tensor, weights: Tensor, penalty: float
    ) -> Credit:
        """The encoder's credit for a window ``out`` (run with the encoder's graph, after the loss's
        backward pass), as what ``torch.autograd.backward`` takes; ``penalty`` is the weight of
        :func:`penalty_on_currents`."""
        if not self.trains_encoder or not penalty:
            return [], []
        return [penalty_on_currents(out.currents, weights, penalty)], [None]


class DFARule(EncoderRule):
    """Direct feedback alignment onto the encoder's output currents."""

    def __init__(self, n_classes: int, n_neurons: int, seed: int) -> None:
        super().__init__("dfa")
        generator = torch.Generator().manual_seed(seed)
        matrix = torch.randn(n_classes, n_neurons, generator=generator) / n_classes**0.5
        self.register_buffer("feedback_matrix", matrix)

    def encoder_credit(
        self, network: MaelstromNetwork, out: WindowOutput, targets: Tensor, weights: Tensor, penalty: float
    ) -> Credit:
        """The objective ``sum(u * (e B))`` for the currents ``u = W a + b`` and the weighted
        readout error ``e`` (its gradient with respect to ``u`` is the DFA credit ``e B``), summed
        as ``a . (e (B W))`` so that its backward pass costs ``[B, T, classes]`` products, not
        ``[B, T, neurons]``."""
        layer = network.encoder.out
        a, weight, bias = out.head_inputs, layer.weight, layer.bias
        onehot = nn.functional.one_hot(targets, out.logits.shape[-1]).to(a.dtype)
        error = (torch.softmax(out.logits.detach().to(a.dtype), -1) - onehot[:, None, :]) * weights[..., None]
        feedback = self.feedback_matrix.to(a.dtype)
        objective = (a * (error @ (feedback @ weight))).sum() + (error.sum((0, 1)) @ feedback) @ bias
        if penalty:
            steps, (n, d) = a.shape[0] * a.shape[1], weight.shape
            # The penalty's gradient is of full rank: through [D, D] Gram matrices when that is cheaper.
            if 3 * steps * d * d + 2 * n * d * d < 2 * steps * n * d:
                objective = objective + _gram_current_penalty(a, layer, weights, penalty)
            else:
                objective = objective + penalty_on_currents(out.currents, weights, penalty)
        return [objective], [None]


class LocalRule(EncoderRule):
    """The exact gradient through the synaptic-current filter into the current feature."""

    feature_grad = True

    def __init__(self) -> None:
        super().__init__("local")

    def check(self, network: MaelstromNetwork) -> None:
        if "current" not in network.features:
            raise ValueError(f"the local rule needs 'current' among the readout features, got {network.features}")

    def encoder_credit(
        self, network: MaelstromNetwork, out: WindowOutput, targets: Tensor, weights: Tensor, penalty: float
    ) -> Credit:
        """The currents' gradient: the loss's gradient with respect to the current feature (left
        by its backward pass in ``out.features.grad``) through the filter's adjoint, started
        afresh at the window; plus the penalty's."""
        self.check(network)
        n, k = network.maelstrom.n_neurons, network.features.index("current")
        credit = filter_adjoint(out.features.grad[..., k * n : (k + 1) * n], network.maelstrom.alpha)
        tensors, grads = super().encoder_credit(network, out, targets, weights, penalty)
        return [out.currents, *tensors], [credit, *grads]


def filter_adjoint(grad: Tensor, alpha: Tensor) -> Tensor:
    """The gradient with respect to ``u [B, K, N]`` of the filter ``c_t = alpha c_{t-1} + u_t``
    (from zero) given the gradient ``grad`` with respect to its outputs ``c``:
    ``g_t = grad_t + alpha g_{t+1}``, run backwards through the window."""
    out = torch.empty(grad.shape, dtype=grad.dtype, device=grad.device)
    acc = out[:, -1] = grad[:, -1]
    for t in range(grad.shape[1] - 2, -1, -1):
        acc = out[:, t] = grad[:, t] + alpha * acc
    return out


def penalty_on_currents(currents: Tensor, weights: Tensor, penalty: float) -> Tensor:
    """``penalty * sum_t w_t mean(u_t^2)`` over a window's currents ``u [B, K, N]`` and step weights
    ``w [B, K]``: it keeps a trained encoder from driving the maelstrom into saturation."""
    return penalty * (currents.pow(2).mean(-1) * weights.to(currents.dtype)).sum()


class CurrentHomeostasis(nn.Module, Part):
    """Holds a trained encoder's drive at ``target`` times its initial level.

    The current penalty's weight becomes ``penalty * (E / E_0 - target)``: ``E`` is a running
    average (``momentum``) of the batches' current energy (:func:`penalty_on_currents` with weight
    1, the mask-weighted mean of ``u^2``), ``E_0`` the first batch's. Above the target the
    penalty shrinks the currents as the plain one does; below it, it grows them. So the encoder
    can neither run the maelstrom away nor starve it: with the plain penalty (0.001) the ``local``
    rule drove fsdd-shd's maelstrom from 8 to 1 Hz, as its credit never sees the spikes.
    Its state is buffers, saved with a checkpoint, so a resumed run goes on as one would have.
    """

    def __init__(self, target: float, momentum: float = 0.1) -> None:
        super().__init__()
        if not target > 0 or not 0 < momentum <= 1:
            raise ValueError(f"homeostasis needs target > 0 and momentum in (0, 1], got {target}, {momentum}")
        self.target = target
        self.momentum = momentum
        self.register_buffer("initial", torch.tensor(float("nan"), dtype=torch.float64))
        self.register_buffer("energy", torch.tensor(float("nan"), dtype=torch.float64))

    def ratio(self) -> float:
        """The running current energy over the first batch's (NaN before the first batch)."""
        return float(self.energy / self.initial)

    def record(self) -> dict[str, float]:
        return {"current_energy": self.ratio()}

    def weight(self, penalty: float) -> float:
        """The current penalty's weight for the next batch (0 before the first batch is seen)."""
        if torch.isnan(self.initial):
            return 0.0
        return penalty * (self.ratio() - self.target)

    def observe(self, energy: float) -> None:
        """Take a batch's current energy into the running average."""
        if torch.isnan(self.initial):
            self.initial.fill_(energy)
            self.energy.fill_(energy)
        else:
            self.energy.lerp_(torch.tensor(energy, dtype=torch.float64), self.momentum)


class WeightAverage(nn.Module, Part):
    """An exponential moving average of a network's trained weights: the network to evaluate.

    The average starts as the weights after the first batch; after the ``n``-th batch beyond it,
    every tracked tensor ``w`` moves its average by ``a <- a + (1 - d_n)(w - a)`` with
    ``d_n = min(decay, (1 + n) / (10 + n))`` (the warm-up of TensorFlow's
    ``ExponentialMovingAverage``: until ``d_n`` reaches ``decay`` the average spans about the last
    tenth of the batches so far).
    Tracked are the parameters that train (the readout's, and the encoder's when its rule trains
    it) and the readout's floating-point buffers (its feature statistics), so the averaged
    readout and its normalisation stay a pair. Training itself never sees the average: a run
    with it makes the same updates as one without. Its state is buffers, saved with a checkpoint.
    """

    def __init__(self, network: MaelstromNetwork, decay: float) -> None:
        super().__init__()
        if not 0 < decay < 1:
            raise ValueError(f"the weight average's decay must lie in (0, 1), got {decay}")
        self.decay = decay
        tracked = self.tracked(network)
        self.names = list(tracked)
        for i, tensor in enumerate(tracked.values()):
            self.register_buffer(f"average_{i}", tensor.detach().clone())
        self.register_buffer("updates", torch.tensor(0, dtype=torch.int64))

    @staticmethod
    def tracked(network: MaelstromNetwork) -> dict[str, Tensor]:
        """The network's tensors that are averaged, by their names in its ``state_dict``."""
        tracked = {name: p for name, p in network.named_parameters() if p.requires_grad}
        buffers = network.readout.named_buffers(prefix="readout")
        tracked.update({name: b for name, b in buffers if b.is_floating_point()})
        return tracked

    def averages(self) -> dict[str, Tensor]:
        """The averaged tensors by their names in the network's ``state_dict``."""
        return {name: getattr(self, f"average_{i}") for i, name in enumerate(self.names)}

    @torch.no_grad()
    def after_batch(self, network: MaelstromNetwork) -> None:
        """Move the averages towards the network's tensors as they are now (call after each step)."""
        n = int(self.updates)
        weight = 1.0 - min(self.decay, (1 + n) / (10 + n)) if n else 1.0
        tracked = self.tracked(network)
        for name, average in self.averages().items():
            average.lerp_(tracked[name].detach(), weight)
        self.updates += 1

    def state_of(self, network: MaelstromNetwork) -> dict[str, Tensor]:
        """``network.state_dict()`` with the averages in place of the tracked tensors."""
        return {**network.state_dict(), **self.averages()}

    @contextmanager
    def applied(self, network: MaelstromNetwork) -> Iterator[MaelstromNetwork]:
        """``network`` with the averages in place of its tracked tensors, and its own restored afterwards."""
        live = {name: t.detach().clone() for name, t in self.tracked(network).items()}
        network.load_state_dict(self.averages(), strict=False)
        try:
            yield network
        finally:
            network.load_state_dict(live, strict=False)


def _gram_current_penalty(a: Tensor, layer: nn.Linear, weights: Tensor, penalty: float) -> Tensor:
    """:func:`penalty_on_currents` of ``u = layer(a)`` for head inputs ``a [B, K, D]``, expanded as
    ``sum_t w_t (a_t' W'W a_t + 2 b'W a_t + b'b)``: no ``[B, K, N]`` tensor in its graph."""
    weight, bias = layer.weight, layer.bias
    flat = a.flatten(0, 1)
    weighted = flat * weights.reshape(-1, 1).to(a.dtype)
    quadratic = ((weighted.T @ flat) * (weight.T @ weight)).sum()
    linear = 2 * (weighted.sum(0) @ (weight.T @ bias))
    constant = weights.sum().to(a.dtype) * (bias @ bias)
    return penalty / weight.shape[0] * (quadratic + linear + constant)


def make_rule(name: str, n_classes: int, n_neurons: int, seed: int = 0) -> EncoderRule:
    """The rule called ``name`` (one of :data:`RULES`)."""
    if name == "dfa":
        return DFARule(n_classes, n_neurons, seed)
    if name == "local":
        return LocalRule()
    return EncoderRule(name)


def step_weights(mask: Tensor, batch_size: int) -> Tensor:
    """Per-step loss weights ``[B, T]`` from a readout mask ``[T]`` or ``[B, T]``, summing to 1."""
    weights = mask.to(torch.float32).expand(batch_size, mask.shape[-1])
    total = weights.sum()
    if total <= 0:
        raise ValueError("the readout mask selects no time step")
    return weights / total


def sequence_loss(logits: Tensor, targets: Tensor, weights: Tensor) -> Tensor:
    """Cross-entropy at every step, weighted by ``weights [B, K]``."""
    batch, steps, classes = logits.shape
    ce = nn.functional.cross_entropy(
        logits.reshape(-1, classes), targets.repeat_interleave(steps), reduction="none"
    ).view(batch, steps)
    return (ce * weights.to(ce.dtype)).sum()


def masked_log_probs(logits: Tensor, mask: Tensor) -> Tensor:
    """Per-step log-probabilities ``[B, T, C]`` weighted by the readout mask: their sum over time
    is the decision (:func:`decision_scores`), their running sum the decision so far."""
    weights = mask.to(logits.dtype).expand(logits.shape[:2])
    return torch.log_softmax(logits, -1) * weights[..., None]


def decision_scores(logits: Tensor, mask: Tensor) -> Tensor:
    """Class scores per sample ``[B, C]``: the mask-weighted sum of per-step log-probabilities.
    An ensemble's decision is the argmax of its members' scores added."""
    return masked_log_probs(logits, mask).sum(1)


def predict(logits: Tensor, mask: Tensor) -> Tensor:
    """Class per sample: the mask-weighted sum of per-step log-probabilities, maximised."""
    return decision_scores(logits, mask).argmax(-1)


def train_batch(
    network: MaelstromNetwork,
    rule: EncoderRule,
    optimizer: torch.optim.Optimizer,
    x: Tensor,
    targets: Tensor,
    mask: Tensor,
    window: int = 25,
    current_penalty: float = 0.0,
    homeostasis: CurrentHomeostasis | None = None,
) -> tuple[float, Tensor]:
    """One online pass over a batch ``x [B, T, ...]``; returns the loss and the logits ``[B, T, C]``.

    ``current_penalty`` adds ``penalty * mean(u^2)`` over a trained encoder's currents ``u``: the
    classification loss alone keeps growing the currents (the readout's feature normalisation
    absorbs the scale), which drives the maelstrom into saturation; measured on N-MNIST, ``|u|``
    grew 8x in 5 epochs and test accuracy fell from 70% to 22% without it. With ``homeostasis``
    the penalty's weight is set by it, and the batch's current energy is given to it.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    rule.check(network)
    batch, steps = x.shape[:2]
    weights = step_weights(mask, batch).to(x.device)
    state = network.init_state(batch)
    optimizer.zero_grad(set_to_none=True)
    penalty = current_penalty if homeostasis is None else homeostasis.weight(current_penalty)
    total, energy, all_logits = 0.0, 0.0, []
    for start in range(0, steps, window):
        sl = slice(start, start + window)
        loss, logits, state, window_energy = _train_window(
            network, rule, x[:, sl], state, targets, weights[:, sl], penalty, homeostasis is not None
        )
        total += loss
        energy += window_energy
        all_logits.append(logits)
    optimizer.step()
    if homeostasis is not None:
        homeostasis.observe(energy)
    return total, torch.cat(all_logits, 1)


def _train_window(
    network: MaelstromNetwork,
    rule: EncoderRule,
    x: Tensor,
    state: NetworkState,
    targets: Tensor,
    weights: Tensor,
    penalty: float,
    measure: bool = False,
) -> tuple[float, Tensor, NetworkState, float]:
    """One window's forward and backward passes: its loss, detached logits, final state and (with
    ``measure``, else 0) the currents' energy. A function of its own so that nothing else of the
    window (currents, features, their gradients) is still held while the next one runs."""
    out = network.run_window(x, state, encoder_grad=rule.trains_encoder, feature_grad=rule.feature_grad)
    loss = sequence_loss(out.logits, targets, weights)
    loss.backward()
    tensors, grads = rule.encoder_credit(network, out, targets, weights, penalty)
    if tensors:
        torch.autograd.backward(tensors, grads)
    energy = float(penalty_on_currents(out.currents.detach(), weights, 1.0)) if measure else 0.0
    return float(loss.detach()), out.logits.detach(), out.state, energy
