"""Helpers shared by the benchmark scripts: the environment header, timing and peak memory.

Not a benchmark itself. The scripts import it as ``_common`` (Python puts a script's own folder
first on ``sys.path``).

Peak memory
-----------
CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``, minus what was
allocated when the measurement started (tensors created by the measured code, caching-allocator
slack not included).

CPU: the process's resident set size (RSS). Before the measurement glibc is asked to hand freed
heap memory back to the kernel (``malloc_trim(0)``) and the RSS is read; then the kernel's
high-water mark ``VmHWM`` is reset by writing ``5`` to ``/proc/self/clear_refs`` (Linux >= 4.0)
and read back at the end, so the peak is exact, however short it lasted. Where that file cannot
be written, a background thread samples ``/proc/self/statm`` every millisecond instead (it can
miss peaks shorter than that). ``PeakMemory.method`` names the way that was used; the scripts
print it.

Any device, tensors only: ``TensorPeak`` follows every tensor the measured code creates (a
``TorchDispatchMode`` sees each operator's outputs, backward passes included; outputs that share
storage with an input, i.e. views and in-place results, are not new) until its storage is freed,
and keeps the peak of their sum. No allocator or heap enters it, so it shows whether a method's
own tensors grow with T; it slows the code down, so it runs on an untimed batch.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime
import io
import json
import os
import platform
import shlex
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from spiking_maelstrom.files import atomic_write

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
MB = 1 << 20


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_time(fn: Callable[[], Any], repeats: int, device: torch.device) -> float:
    """The shortest wall-clock time of ``repeats`` calls of ``fn``, in seconds (device synchronised)."""
    best = float("inf")
    for _ in range(max(1, repeats)):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - start)
    return best


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def _hwm_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise OSError("no VmHWM in /proc/self/status")


def _malloc_trim() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _can_reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        _hwm_bytes()
    except OSError:
        return False
    return True


class PeakMemory:
    """Context manager measuring the peak memory of the code inside it on ``device``.

    After the block: ``peak`` (bytes in use at the peak: RSS on the CPU, allocated tensors on
    CUDA), ``base`` (the same at the start) and ``delta = peak - base`` (what the block added).
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.base = self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sampled = 0
        if device.type == "cuda":
            self.method = "torch.cuda.max_memory_allocated (tensors only), minus allocated at start"
        elif sys.platform.startswith("linux") and _can_reset_hwm():
            self.method = "CPU RSS: kernel peak VmHWM, reset through /proc/self/clear_refs; minus RSS at start"
        elif sys.platform.startswith("linux"):
            self.method = "CPU RSS sampled every 1 ms from /proc/self/statm by a thread; minus RSS at start"
        else:
            self.method = "not measured (needs Linux /proc or CUDA)"

    @property
    def delta(self) -> int:
        return max(0, self.peak - self.base)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._sampled = max(self._sampled, _rss_bytes())
            time.sleep(0.001)

    def __enter__(self) -> PeakMemory:
        sync(self.device)
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
        elif self.method.startswith("CPU"):
            _malloc_trim()
            self.base = _rss_bytes()
            if "VmHWM" in self.method:
                _can_reset_hwm()
            else:
                self._sampled = self.base
                self._thread = threading.Thread(target=self._sample, daemon=True)
                self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        sync(self.device)
        if self.device.type == "cuda":
            self.peak = torch.cuda.max_memory_allocated(self.device)
        elif "VmHWM" in self.method:
            self.peak = _hwm_bytes()
        elif self._thread is not None:
            self._stop.set()
            self._thread.join()
            self.peak = max(self._sampled, _rss_bytes())


class TensorPeak(TorchDispatchMode):
    """Context manager: ``peak``, the most bytes held at once by tensors created inside it (each
    storage counted once, from the operator that made it until it is freed), and ``live``, those
    still held at the end."""

    def __init__(self) -> None:
        super().__init__()
        self.live = self.peak = 0
        self._held: dict[int, int] = {}

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        given = {
            t.untyped_storage().data_ptr()
            for t in tree_flatten((args, kwargs))[0]
            if isinstance(t, torch.Tensor) and t.layout == torch.strided
        }
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor) or t.layout != torch.strided:
                continue
            storage = t.untyped_storage()
            key = storage.data_ptr()
            if key in given or key in self._held or storage.nbytes() == 0:
                continue
            self._held[key] = storage.nbytes()
            self.live += storage.nbytes()
            self.peak = max(self.peak, self.live)
            weakref.finalize(storage, self._release, key)
        return out

    def _release(self, key: int) -> None:
        self.live -= self._held.pop(key, 0)


def tensor_bytes(tensors: Iterator[torch.Tensor] | list[torch.Tensor]) -> int:
    """Bytes held by ``tensors``, each storage counted once (a sparse CSR tensor by its arrays)."""
    seen, total = set(), 0
    for t in tensors:
        if t.layout == torch.sparse_csr:
            total += tensor_bytes([t.crow_indices(), t.col_indices(), t.values()])
            continue
        storage = t.untyped_storage()
        key = (storage.data_ptr(), t.device)
        if key not in seen:
            seen.add(key)
            total += storage.nbytes()
    return total


def _cpu_name() -> str:
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _version(module: str) -> str:
    try:
        with contextlib.redirect_stdout(None), contextlib.redirect_stderr(None):
            return __import__(module).__version__
    except Exception:  # noqa: BLE001 - any import failure just means "not available"
        return "not installed"


def environment(device: torch.device) -> dict[str, Any]:
    """Machine, software versions, date and command line of this run."""
    env = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": "python " + shlex.join(sys.argv),
        "machine": f"{_cpu_name()}, {os.cpu_count()} logical cores",
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "snntorch": _version("snntorch"),
        "norse": _version("norse"),
    }
    if device.type == "cuda":
        env["device"] = f"{device} ({torch.cuda.get_device_name(device)})"
    return env


def print_environment(env: dict[str, Any], memory_method: str) -> None:
    """The header every benchmark prints above its tables."""
    print(f"- date: {env['date']}")
    print(f"- command: `{env['command']}`")
    print(f"- machine: {env['machine']}; device {env['device']}; torch threads {env['torch_threads']}")
    print(f"- software: Python {env['python']}, torch {env['torch']}, snntorch {env['snntorch']}, norse {env['norse']}")
    print(f"- peak memory: {memory_method}")


def write_json(path: str | Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` as indented JSON, atomically."""
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n")


class _Tee(io.TextIOBase):
    def __init__(self, *streams: Any) -> None:
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
        return len(text)


@contextlib.contextmanager
def markdown_report(path: str | Path | None) -> Iterator[None]:
    """Print the report as usual and, with a ``path``, also write it there (atomically) as Markdown."""
    if path is None:
        yield
        return
    buffer = io.StringIO()
    with contextlib.redirect_stdout(_Tee(sys.stdout, buffer)):
        yield
    with atomic_write(path) as tmp:
        tmp.write_text(buffer.getvalue())


def fmt_count(value: float) -> str:
    """A large count, short: 1.23e+09 style with three significant digits."""
    return f"{value:.3g}"
