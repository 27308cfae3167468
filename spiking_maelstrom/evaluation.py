"""Scoring trained networks: the network a checkpoint holds (``load_network``, what ``evaluate``
and ``export`` load) and its accuracy, loss, confusion and decision over time on a data set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from .checkpoint import check_checkpoint, load_checkpoint
from .ensemble import Ensemble
from .learning import masked_log_probs, sequence_loss, step_weights
from .network import MaelstromNetwork, NetworkConfig, build_network


@torch.no_grad()
def evaluate_network(
    network: MaelstromNetwork | Ensemble,
    dataset: Dataset,
    mask: torch.Tensor,
    batch_size: int = 64,
    keep_scores: bool = False,
) -> dict[str, Any]:
    """Accuracy, mean loss and sample count over ``dataset`` (decision: ``learning.predict``),
    the ``confusion`` matrix (rows: true class, columns: decided class) and the
    ``accuracy_over_time``: at each step, the accuracy of the decision as it stands then (None
    before the first step the mask scores). With ``keep_scores`` also each sample's ``scores``
    ``[n, C]`` (``learning.decision_scores``) and ``labels``."""
    network.eval()
    device = next(network.buffers()).device
    mask = mask.to(device)
    correct, loss, samples, scores, labels = 0, 0.0, 0, [], []
    confusion = torch.zeros(network.n_classes, network.n_classes, dtype=torch.long)
    correct_over_time = None
    for x, y in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        x, y = x.to(device), y.to(device)
        logits = network(x).logits
        loss += float(sequence_loss(logits, y, step_weights(mask, x.shape[0]))) * x.shape[0]
        log_probs = masked_log_probs(logits, mask)
        batch_scores = log_probs.sum(1)  # learning.decision_scores
        decided = batch_scores.argmax(-1)
        correct += int((decided == y).sum())
        samples += x.shape[0]
        confusion += (
            torch.bincount(y * network.n_classes + decided, minlength=confusion.numel()).view_as(confusion).cpu()
        )
        right = (log_probs.cumsum(1).argmax(-1) == y[:, None]).sum(0).cpu()
        correct_over_time = right if correct_over_time is None else correct_over_time + right
        if keep_scores:
            scores.append(batch_scores.cpu())
            labels.append(y.cpu())
    if samples == 0:
        raise ValueError("cannot evaluate on an empty data set")
    scored = mask.reshape(-1, mask.shape[-1]).any(0).cumsum(0).cpu() > 0
    over_time = [c / samples if s else None for c, s in zip(correct_over_time.tolist(), scored.tolist(), strict=True)]
    result: dict[str, Any] = {
        "accuracy": correct / samples,
        "loss": loss / samples,
        "samples": samples,
        "confusion": confusion.tolist(),
        "accuracy_over_time": over_time,
    }
    if keep_scores:
        result.update(scores=torch.cat(scores), labels=torch.cat(labels))
    return result


def _check_size(payload: dict[str, Any], source: str | Path) -> None:
    """Refuse an ``n_neurons`` that the stored weights do not have before building anything: a
    tampered one would otherwise draw (and eigen-decompose) a reservoir of any size."""
    n = payload["network_config"]["maelstrom"].get("n_neurons")
    weight = payload["model"].get("maelstrom.weight")
    if weight is None or tuple(weight.shape) != (n, n):
        shape = None if weight is None else tuple(weight.shape)
        raise ValueError(f"{source}: model 'maelstrom.weight' {shape} is not [n_neurons, n_neurons], n_neurons {n!r}")


def load_network(
    checkpoint: str | Path | dict[str, Any], device: str | torch.device = "cpu", source: str | Path = "checkpoint"
) -> MaelstromNetwork:
    """The trained network stored in a checkpoint (a path or an already loaded payload, named
    ``source`` in errors); a one-line ``ValueError`` if its config or weights do not make one."""
    if isinstance(checkpoint, dict):
        payload = check_checkpoint(checkpoint, source)
    else:
        payload, source = load_checkpoint(checkpoint), checkpoint
    _check_size(payload, source)
    try:
        network = build_network(NetworkConfig.from_dict(payload["network_config"]), device=device)
    except (KeyError, TypeError, ValueError) as err:
        reason = f"{type(err).__name__}: {err}"
        raise ValueError(f"{source}: its network_config does not build a network ({reason})") from err
    for name, n_classes in payload.get("continual", {}).get("heads", {}).items():
        network.add_head(name, n_classes)
    try:
        network.load_state_dict(payload["model"])
    except RuntimeError as err:  # torch lists every missing, unexpected or misshapen entry, one per line
        first = next(line.strip() for line in str(err).splitlines()[1:] + [str(err)] if line.strip())
        raise ValueError(f"{source}: its model weights do not fit its network_config ({first})") from err
    return network.eval()
