"""Decode + bin the N-MNIST subset cold, then read the same frames from the HDF5 cache.

    python benchmarks/bench_data.py [--data-dir ../shared/data/nmnist-small] [--cache-dir DIR]

Prints a Markdown table: files, events, seconds cold (decode + ToFrames of every file, no cache),
seconds to build the cache (cold work + writing, once), seconds cached (every sample read back
through ``CachedFrames``), and the speed-up of cached over cold. Cold and cached are the best of
``--repeats`` passes, after one pass that warms the operating system's file cache.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from spiking_maelstrom.data.cache import CachedFrames
from spiking_maelstrom.data.nmnist import SENSOR_SIZE, NMNISTFiles
from spiking_maelstrom.data.transforms import ToFrames

ROOT = Path(__file__).resolve().parents[1]


def best_of(repeats: int, work: Callable[[], None]) -> float:
    """The shortest of ``repeats`` timings of ``work()``, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data" / "nmnist-small")
    parser.add_argument("--cache-dir", type=Path, default=None, help="default: a temporary folder, removed after")
    parser.add_argument("--dt-us", type=float, default=1000.0, help="time bin in microseconds")
    parser.add_argument("--steps", type=int, default=300, help="time bins per sample")
    parser.add_argument("--repeats", type=int, default=3, help="cold and cached times are the best of this many")
    args = parser.parse_args()
    torch.set_num_threads(2)
    transform = ToFrames(dt=args.dt_us, n_steps=args.steps, sensor_size=SENSOR_SIZE)
    splits = [NMNISTFiles(args.data_dir, split) for split in ("train", "test")]

    events = sum(len(files[i][0]) for files in splits for i in range(len(files)))  # also warms the page cache

    def cold_pass() -> None:
        for files in splits:
            for index in range(len(files)):
                transform(files[index][0])

    cold = best_of(args.repeats, cold_pass)

    with tempfile.TemporaryDirectory() as scratch:
        cache_dir = args.cache_dir or Path(scratch)
        start = time.perf_counter()
        cached = [CachedFrames(files, transform, cache_dir) for files in splits]
        build = time.perf_counter() - start

        def cached_pass() -> None:
            for dataset in cached:
                for index in range(len(dataset)):
                    dataset[index]

        read = best_of(args.repeats, cached_pass)
        built = any(d.built for d in cached)
        for dataset in cached:
            dataset.close()

    n_files = sum(len(files) for files in splits)
    print(f"ToFrames(dt={args.dt_us:g} us, n_steps={args.steps}, sensor_size={SENSOR_SIZE}); cache built: {built}\n")
    print("| files | events | cold s | cache build s | cached s | speed-up |")
    print("|---:|---:|---:|---:|---:|---:|")
    print(f"| {n_files:,} | {events:,} | {cold:.2f} | {build:.2f} | {read:.2f} | {cold / read:.1f}x |")


if __name__ == "__main__":
    main()
