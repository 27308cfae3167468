"""Training cost: this project's online training against snnTorch BPTT, on real spoken digits.

Data: ``load_task("shd", data_dir=...)`` on ``../shared/data/fsdd-shd`` (FSDD spoken digits turned
into spikes in the SHD file layout: a stand-in, NOT the SHD data set; 2,250 train / 250 test
samples, 10 classes, 700 channels). Each sample covers ``--duration-ms`` (default 1,000 ms) cut into
T bins of ``duration / T`` ms, so a longer T means finer bins of the same audio.

Methods (``--methods``):

- ``ours-<rule>`` (``dfa``, ``local`` or ``frozen``): the network ``build_network`` makes for the
  task (MLP encoder 700 -> 128 -> N with top-down feedback, the frozen N-neuron maelstrom, linear
  readout of spike traces and currents at every step) trained online: each batch is one
  ``learning.train_batch`` (what ``Trainer.train_epoch`` runs per batch; no gradient crosses the
  spikes or the recurrence, windows of ``--window`` steps, Adam as built by ``Trainer``).
- ``ours-<rule>-ff``: the same without top-down feedback (``--no-feedback``, the setting of the best
  real-data results). Either way the encoder and the readout's training pass see a whole window
  in one call; with feedback the maelstrom's window also closes the readout's prediction onto the
  next step's input (``probe.Feedback``; inside the fused kernel on the CPU).
- ``bptt``: an snnTorch recurrent SNN of the same size trained with backpropagation through time
  and surrogate gradients: ``nn.Linear(700, N)`` -> ``snntorch.RSynaptic`` (or ``RLeaky`` with
  ``--bptt-neuron rleaky``; all-to-all trainable ``nn.Linear(N, N)`` recurrence, snnTorch's default
  reset by subtraction, ATan surrogate, per-neuron decays equal to the maelstrom's, fixed) ->
  ``nn.Linear(N, 10)`` on the spike rate over the sequence, cross-entropy, Adam (``--bptt-lr``,
  default 3e-3). The input and recurrent layers start from PyTorch's init with the rows into neuron
  ``j`` times ``1 - beta_j`` (``--bptt-init scaled``): snnTorch's membrane adds the synaptic current
  unscaled, and with the plain init (``--bptt-init default``) the membranes sit far above the
  threshold and most neurons fire at nearly every step (measured: it learned slower). The whole
  sequence is one graph, so its memory grows with T.

Part 1, cost per epoch as T grows (``--steps``): epochs over ``--train-samples`` training samples
(the same subset and order for every method), their wall-clock seconds (data loading included; the
``data s`` column is one pass over the loader alone), and the peak memory the first epoch added to
what was resident before it (``_common.PeakMemory``; the models and data set are built before).
With ``--repeats R`` every method trains R epochs, in rounds that visit the methods in turn, and
the median counts: this machine's speed drifts by tens of percent within minutes. The
input batch ``[B, T, 700]`` float32 is part of every method's peak: ``input MB`` gives its size,
and ``data s`` / ``data MB`` the time and peak of one pass over the loader with no training. On
the CPU the RSS also counts glibc's heap, which keeps freed per-step temporaries
(``MALLOC_MMAP_THRESHOLD_=65536`` keeps less). The ``tensors MB`` column has neither: the most
bytes held at once by the tensors one training batch creates (``_common.TensorPeak``, on one
extra, untimed batch per method; the input batch is not counted), on any device.

Part 2, accuracy after a fixed budget at ``--acc-steps``: every method trains ``--acc-epochs``
epochs on ``--acc-train-samples`` samples (0: all), test accuracy after each epoch; with
``--acc-seconds S`` each method instead trains until S seconds of training time (checked after
every batch) and is then tested (same wall-clock budget).

Example (the lead runs the full one)::

    python benchmarks/bench_training.py --neurons 1000 --steps 100 250 500 1000 --train-samples 512 \\
        --acc-steps 100 --acc-epochs 3 --json results/bench_training.json
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import math
import sys
import time
import warnings
from typing import Any

import torch
from _common import MB, PeakMemory, TensorPeak, environment, markdown_report, print_environment, sync, write_json
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset

from spiking_maelstrom.backends import BACKENDS
from spiking_maelstrom.data import Task, load_task
from spiking_maelstrom.evaluation import evaluate_network
from spiking_maelstrom.learning import RULES, predict, train_batch
from spiking_maelstrom.maelstrom import Maelstrom
from spiking_maelstrom.network import build_network, network_config_for
from spiking_maelstrom.trainer import TrainConfig, Trainer

METHODS = (*(f"ours-{r}" for r in RULES), *(f"ours-{r}-ff" for r in RULES), "bptt")


class OursMethod:
    """A Maelstrom network and the optimiser and encoder rule ``Trainer`` builds for it."""

    def __init__(self, task: Task, rule: str, feedback: bool, args: argparse.Namespace, device: torch.device) -> None:
        maelstrom = {"n_neurons": args.neurons, "seed": args.seed}
        config = network_config_for(task, maelstrom=maelstrom, seed=args.seed, feedback=feedback)
        self.network = build_network(config, device)
        self.network.maelstrom.backend = args.backend
        # The first fused run of a process loads numba and the compiled kernel (about 0.5 s and
        # 80 MB, once, like an import; about 5 s to compile it where numba's cache lacks it):
        # done here, before the timed epochs.
        self.network.maelstrom.run(torch.zeros(1, 1, args.neurons, device=device))
        train = TrainConfig(
            batch_size=args.batch,
            encoder_rule=rule,
            window=args.window,
            val_fraction=0.0,
            seed=args.seed,
            **task.train_defaults,
        )
        self.trainer = Trainer(self.network, task, train)
        self.task, self.batch, self.window = task, args.batch, args.window

    def train(self) -> None:
        self.network.train()

    def step(self, x: Tensor, y: Tensor) -> tuple[float, int]:
        t = self.trainer
        loss, logits = train_batch(self.network, t.rule, t.optimizer, x, y, t.mask, self.window)
        return loss, int((predict(logits, t.mask) == y).sum())

    def accuracy(self, dataset: Dataset) -> float:
        return evaluate_network(self.network, dataset, self.task.mask, self.batch)["accuracy"]


class BPTTNet(nn.Module):
    """Linear -> snnTorch RSynaptic/RLeaky (all-to-all recurrence) -> linear on the spike rate."""

    def __init__(
        self, n_in: int, n: int, n_classes: int, alpha: Tensor, beta: Tensor, neuron: str, scaled: bool
    ) -> None:
        super().__init__()
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import snntorch as snn
        self.n, self.synaptic = n, neuron == "rsynaptic"
        self.fc_in = nn.Linear(n_in, n)
        if self.synaptic:
            self.lif = snn.RSynaptic(alpha=alpha.clone(), beta=beta.clone(), linear_features=n)
        else:
            self.lif = snn.RLeaky(beta=beta.clone(), linear_features=n)
        self.fc_out = nn.Linear(n, n_classes)
        if scaled:  # rows into neuron j times 1 - beta_j: the membrane then is ours (v), not v / (1 - beta)
            gain = (1.0 - beta)[:, None]
            with torch.no_grad():
                for layer in (self.fc_in, self.lif.recurrent):
                    layer.weight.mul_(gain)
                    layer.bias.mul_(gain[:, 0])

    def forward(self, x: Tensor) -> Tensor:
        cur = self.fc_in(x.flatten(2))
        batch, steps = x.shape[:2]
        spk = syn = mem = torch.zeros(batch, self.n, device=x.device, dtype=cur.dtype)
        count = torch.zeros_like(spk)
        # unbind: one backward node for all steps; slicing cur[:, t] per step would make the
        # backward zero-fill a [B, T, N] gradient once per step (T^2; measured 7x slower at T=500).
        for cur_t in cur.unbind(1):
            if self.synaptic:
                spk, syn, mem = self.lif(cur_t, spk, syn, mem)
            else:
                spk, mem = self.lif(cur_t, spk, mem)
            count = count + spk
        return self.fc_out(count / steps)


class BPTTMethod:
    """snnTorch recurrent SNN trained by backpropagation through time."""

    def __init__(self, task: Task, args: argparse.Namespace, device: torch.device) -> None:
        config = network_config_for(task, maelstrom={"n_neurons": args.neurons, "seed": args.seed})
        m = Maelstrom(config.maelstrom)  # the same per-neuron decays as ours
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(args.seed)
            self.model = BPTTNet(
                math.prod(task.input_shape),
                args.neurons,
                task.n_classes,
                m.alpha,
                m.beta,
                args.bptt_neuron,
                args.bptt_init == "scaled",
            ).to(device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=args.bptt_lr)
        self.batch, self.device = args.batch, device

    def train(self) -> None:
        self.model.train()

    def step(self, x: Tensor, y: Tensor) -> tuple[float, int]:
        self.optimizer.zero_grad(set_to_none=True)
        logits = self.model(x)
        loss = nn.functional.cross_entropy(logits, y)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach()), int((logits.argmax(-1) == y).sum())

    @torch.no_grad()
    def accuracy(self, dataset: Dataset) -> float:
        self.model.eval()
        correct = total = 0
        for x, y in DataLoader(dataset, batch_size=self.batch):
            x, y = x.to(self.device), y.to(self.device)
            correct += int((self.model(x).argmax(-1) == y).sum())
            total += len(y)
        return correct / max(1, total)


def make_method(name: str, task: Task, args: argparse.Namespace, device: torch.device) -> OursMethod | BPTTMethod:
    if name == "bptt":
        return BPTTMethod(task, args, device)
    rule = name.removeprefix("ours-").removesuffix("-ff")
    return OursMethod(task, rule, not name.endswith("-ff"), args, device)


def load(args: argparse.Namespace, steps: int) -> Task:
    return load_task(
        "shd",
        data_dir=args.data_dir,
        n_steps=steps,
        dt_ms=args.duration_ms / steps,
        channel_bin=args.channel_bin,
        cache_dir=args.cache_dir,
    )


def subset(dataset: Dataset, n: int, seed: int) -> Dataset:
    """``n`` samples of ``dataset`` drawn by a seeded permutation (all of it for ``n <= 0``)."""
    if n <= 0 or n >= len(dataset):
        return dataset
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    return Subset(dataset, order[:n].tolist())


def loader(dataset: Dataset, batch: int, seed: int, epoch: int) -> DataLoader:
    generator = torch.Generator().manual_seed(seed * 1000 + epoch)
    return DataLoader(dataset, batch_size=batch, shuffle=True, generator=generator)


def run_epoch(
    method: OursMethod | BPTTMethod, data: DataLoader, device: torch.device, budget_s: float | None = None
) -> dict[str, Any]:
    """Train one epoch (or until ``budget_s`` seconds of training); seconds, samples, loss, accuracy."""
    method.train()
    seconds, samples, loss, correct = 0.0, 0, 0.0, 0
    start = time.perf_counter()
    for x, y in data:
        x, y = x.to(device), y.to(device)
        batch_loss, batch_correct = method.step(x, y)
        loss += batch_loss * len(y)
        correct += batch_correct
        samples += len(y)
        if budget_s is not None:
            sync(device)
            if time.perf_counter() - start >= budget_s:
                break
    sync(device)
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "samples": samples,
        "train_loss": loss / max(1, samples),
        "train_accuracy": correct / max(1, samples),
    }


def tensor_peak(method: OursMethod | BPTTMethod, train: Dataset, args: argparse.Namespace, device: torch.device) -> int:
    """The most bytes held at once by the tensors one training batch creates (``TensorPeak``: no
    allocator, no data loader; the input batch itself is not counted), on an untimed batch."""
    method.train()
    x, y = next(iter(loader(train, args.batch, args.seed, 0)))
    x, y = x.to(device), y.to(device)
    with TensorPeak() as peak:
        method.step(x, y)
    return peak.peak


def data_pass(data: DataLoader) -> float:
    """Seconds for one pass over the loader alone (reading and batching, no training)."""
    start = time.perf_counter()
    for _ in data:
        pass
    return time.perf_counter() - start


def cost_rows(args: argparse.Namespace, device: torch.device) -> list[dict[str, Any]]:
    """Part 1: ``--repeats`` epochs per method at every T (each method goes on training)."""
    rows = []
    for steps in args.steps:
        task = load(args, steps)
        train = subset(task.train, args.train_samples, args.seed)
        task = dataclasses.replace(task, train=train)
        data_pass(loader(train, args.batch, args.seed, 0))  # warm the file cache
        with PeakMemory(device) as data_memory:
            data_s = data_pass(loader(train, args.batch, args.seed, 0))
        input_mb = args.batch * steps * math.prod(task.input_shape) * 4 / MB
        # Every method runs --repeats epochs, interleaved round by round, so that a slow spell of the
        # machine falls on all of them; the median counts. Peak memory is that of the first epoch.
        methods = {name: make_method(name, task, args, device) for name in args.methods}
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in args.methods}
        peaks: dict[str, int] = {}
        for _ in range(args.repeats):
            for name, method in methods.items():
                with PeakMemory(device) as memory:
                    runs[name].append(run_epoch(method, loader(train, args.batch, args.seed, 0), device))
                peaks.setdefault(name, memory.delta)
                print(f"T={steps} {name}: {runs[name][-1]['seconds']:.1f} s", file=sys.stderr, flush=True)
        tensor_peaks = {name: tensor_peak(method, train, args, device) for name, method in methods.items()}
        for name in args.methods:
            seconds = sorted(r["seconds"] for r in runs[name])
            result = {**runs[name][0], "seconds": seconds[len(seconds) // 2], "seconds_all": seconds}
            rows.append(
                {
                    "steps": steps,
                    "dt_ms": args.duration_ms / steps,
                    "method": name,
                    **result,
                    "seconds_per_sample": result["seconds"] / max(1, result["samples"]),
                    "peak_mb": peaks[name] / MB,
                    "tensor_peak_mb": tensor_peaks[name] / MB,
                    "input_batch_mb": input_mb,
                    "data_seconds": data_s,
                    "data_peak_mb": data_memory.delta / MB,
                }
            )
        del methods
    for r in rows:
        peer = next((p for p in rows if p["steps"] == r["steps"] and p["method"] == "bptt"), None)
        if peer is not None:
            r["x_time_vs_bptt"] = peer["seconds"] / r["seconds"]
            r["x_memory_vs_bptt"] = peer["peak_mb"] / r["peak_mb"] if r["peak_mb"] > 0 else float("nan")
    return rows


def accuracy_rows(args: argparse.Namespace, device: torch.device) -> list[dict[str, Any]]:
    """Part 2: test accuracy after the same number of epochs, or the same training seconds."""
    task = load(args, args.acc_steps)
    train = subset(task.train, args.acc_train_samples, args.seed)
    task = dataclasses.replace(task, train=train)
    rows = []
    for name in args.methods:
        method = make_method(name, task, args, device)
        spent, samples, curve = 0.0, 0, []
        epoch = 0
        while True:
            budget = None if args.acc_seconds is None else args.acc_seconds - spent
            if budget is not None and budget <= 0:
                break
            if budget is None and epoch >= args.acc_epochs:
                break
            result = run_epoch(method, loader(train, args.batch, args.seed, epoch), device, budget)
            spent += result["seconds"]
            samples += result["samples"]
            epoch += 1
            curve.append({"epoch": epoch, "train_seconds": spent, "test_accuracy": method.accuracy(task.test)})
            print(f"accuracy {name}: {curve[-1]}", file=sys.stderr, flush=True)
        rows.append(
            {
                "method": name,
                "steps": args.acc_steps,
                "epochs": samples / len(train),
                "train_seconds": spent,
                "train_samples": len(train),
                "test_samples": len(task.test),
                "test_accuracy": curve[-1]["test_accuracy"] if curve else float("nan"),
                "curve": curve,
            }
        )
        del method
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="../shared/data/fsdd-shd")
    parser.add_argument("--cache-dir", default=None, help="HDF5 frame cache (default: the project's cache folder)")
    parser.add_argument("--neurons", type=int, default=1000, help="N: maelstrom size and BPTT hidden size")
    parser.add_argument("--steps", type=int, nargs="*", default=[100, 250, 500, 1000], help="T of part 1 (none: skip)")
    parser.add_argument("--duration-ms", type=float, default=1000.0, help="time covered by the T bins")
    parser.add_argument("--channel-bin", type=int, default=1, help="sum this many adjacent channels (1: all 700)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--backend", choices=BACKENDS, default="auto", help="maelstrom backend of the ours-* methods")
    parser.add_argument("--window", type=int, default=25, help="steps per backward pass of the online training")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=["ours-dfa", "ours-local", "bptt"])
    parser.add_argument("--bptt-neuron", choices=("rsynaptic", "rleaky"), default="rsynaptic")
    parser.add_argument("--bptt-lr", type=float, default=3e-3)
    parser.add_argument(
        "--bptt-init",
        choices=("scaled", "default"),
        default="scaled",
        help="scaled: PyTorch's init times 1 - beta per neuron (our membrane units); default: PyTorch's init",
    )
    parser.add_argument("--train-samples", type=int, default=256, help="samples per timed epoch (0: all 2,250)")
    parser.add_argument("--repeats", type=int, default=1, help="timed epochs per method and T, interleaved; median")
    parser.add_argument("--acc-steps", type=int, default=100, help="T of part 2 (0: skip part 2)")
    parser.add_argument("--acc-epochs", type=int, default=3)
    parser.add_argument("--acc-seconds", type=float, default=None, help="same wall-clock budget instead of epochs")
    parser.add_argument("--acc-train-samples", type=int, default=0, help="training samples of part 2 (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--markdown", help="also write the printed tables to this Markdown file")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    env = environment(device)
    cost = cost_rows(args, device) if args.steps else []
    accuracy = accuracy_rows(args, device) if args.acc_steps else []
    memory_method = PeakMemory(device).method

    with markdown_report(args.markdown):
        print_environment(env, memory_method)
        print(
            f"- setting: fsdd-shd ({args.data_dir}; not SHD), N {args.neurons}, maelstrom backend {args.backend}, "
            f"batch {args.batch}, "
            f"{args.duration_ms:g} ms per sample in T bins, channel bin {args.channel_bin}, window {args.window}, "
            f"BPTT: snnTorch {args.bptt_neuron}, init {args.bptt_init}, Adam lr {args.bptt_lr:g}"
        )
        if cost:
            print()
            print(
                f"Cost of one epoch ({cost[0]['samples']} training samples; s/epoch: median of {args.repeats} "
                "interleaved epochs, range: their fastest and slowest; x vs bptt: BPTT's value / this row's, "
                ">1 = less than BPTT; peak MB: added by the first epoch, includes the input batch; "
                "tensors MB: the most held at once by the tensors one batch creates, input batch excluded "
                "(TensorPeak, no allocator); input MB: one input batch; data s, data MB: one pass over the "
                "loader alone, no training):"
            )
            print()
            header = ("T", "dt ms", "method", "s/epoch", "range s", "ms/sample", "peak MB", "tensors MB", "input MB")
            print("| " + " | ".join(header) + " | data s | data MB | x time vs bptt | x memory vs bptt |")
            print("|---:|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
            for r in cost:
                x_time = f"{r['x_time_vs_bptt']:.2f}" if "x_time_vs_bptt" in r else ""
                x_mem = f"{r['x_memory_vs_bptt']:.2f}" if "x_memory_vs_bptt" in r else ""
                print(
                    f"| {r['steps']} | {r['dt_ms']:g} | {r['method']} | {r['seconds']:.2f} | "
                    f"{r['seconds_all'][0]:.2f} to {r['seconds_all'][-1]:.2f} | {1000 * r['seconds_per_sample']:.1f} | "
                    f"{r['peak_mb']:.0f} | {r['tensor_peak_mb']:.1f} | {r['input_batch_mb']:.1f} | "
                    f"{r['data_seconds']:.2f} | {r['data_peak_mb']:.0f} | {x_time} | {x_mem} |"
                )
            steps = list(dict.fromkeys(r["steps"] for r in cost))
            print()
            print("Growth with T (s/epoch, peak MB, tensors MB):")
            print()
            print("| method | " + " | ".join(f"T={t}" for t in steps) + " |")
            print("|---|" + "---:|" * len(steps))
            for name in args.methods:
                cells = {
                    r["steps"]: f"{r['seconds']:.2f} s, {r['peak_mb']:.0f} MB, {r['tensor_peak_mb']:.1f} MB"
                    for r in cost
                    if r["method"] == name
                }
                print(f"| {name} | " + " | ".join(cells.get(t, "") for t in steps) + " |")
        if accuracy:
            budget = (
                f"{args.acc_seconds:g} s of training each" if args.acc_seconds else f"{args.acc_epochs} epochs each"
            )
            first = accuracy[0]
            print()
            print(
                f"Accuracy on the {first['test_samples']} test samples after a fixed budget ({budget}, "
                f"T {args.acc_steps}, {first['train_samples']} training samples):"
            )
            print()
            print("| method | epochs | train s | test accuracy | accuracy after each epoch |")
            print("|---|---:|---:|---:|---|")
            for r in accuracy:
                curve = ", ".join(f"{100 * c['test_accuracy']:.1f}" for c in r["curve"])
                print(
                    f"| {r['method']} | {r['epochs']:.2f} | {r['train_seconds']:.1f} | "
                    f"{100 * r['test_accuracy']:.1f} % | {curve} |"
                )
    if args.json:
        payload = {"environment": env, "memory_method": memory_method, "args": vars(args)}
        write_json(args.json, {**payload, "cost": cost, "accuracy": accuracy})


if __name__ == "__main__":
    main()
