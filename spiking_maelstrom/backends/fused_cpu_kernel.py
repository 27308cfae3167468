"""The numba code of :mod:`fused_cpu`, imported only where numba is installed.

Its functions are defined at module level so that numba's on-disk cache finds them again in the
next process: a function defined inside another has its closure pickled into the cache's key,
and the closure held compiled functions, which pickle differently in every process, so each
process compiled the kernel anew (about 5 s) and added another copy to the cache.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numba
import numpy as np
from numba import prange


def _compiled(function: Callable[..., Any], **flags: Any) -> Any:
    try:
        return numba.njit(cache=True, **flags)(function)
    except RuntimeError:  # no writable cache directory (e.g. a read-only install): compile per process
        return numba.njit(**flags)(function)


def _affine(x, weight, bias, out):
    # out = weight x + bias; its sums may be reordered (SIMD): the scores only steer the feedback
    for c in range(weight.shape[0]):
        total = x[0] * 0
        for f in range(x.shape[0]):
            total += weight[c, f] * x[f]
        out[c] = total + bias[c]


scores_of = _compiled(_affine, fastmath=True)


def _into(source, out, start):
    for k in range(source.shape[0]):
        out[start + k] = source[k]


copy = _compiled(_into)


def _window(currents, rows, indptr, indices, values, alpha, beta, gain, potentials, v, i, z, trace, decay,
           features, slots, spikes, loop_weight, readout, readout_bias, prob, fed):  # fmt: skip
    batch, steps, n = currents.shape
    threshold, reset, leak = potentials[0], potentials[1], potentials[2]
    dense_rows, csr_rows = rows.shape[0] > 0, indptr.shape[0] > 0
    keep_trace, record, closed = trace.shape[0] > 0, spikes.shape[0] > 0, loop_weight.shape[0] > 0
    classes = loop_weight.shape[0]
    for b in prange(batch):
        acc = np.zeros(n, currents.dtype)
        drive = np.zeros(n, currents.dtype)
        scores = np.zeros(classes, currents.dtype)
        vb, ib, zb = v[b], i[b], z[b]
        for t in range(steps):
            if closed:
                # the feedback's share of the input: p W, summed over the classes in order
                drive[:] = 0
                for c in range(classes):
                    fed[b, t, c] = prob[b, c]
                    for k in range(n):
                        drive[k] += prob[b, c] * loop_weight[c, k]
                for k in range(n):
                    drive[k] = currents[b, t, k] + drive[k]
            if dense_rows or csr_rows:
                acc[:] = 0
                for j in range(n):
                    if zb[j] != 0:
                        if dense_rows:
                            row = rows[j]
                            for k in range(n):
                                acc[k] += row[k]
                        else:
                            for p in range(indptr[j], indptr[j + 1]):
                                acc[indices[p]] += values[p]
            step_in = drive if closed else currents[b, t]
            # One pass per array written: with fewer arrays per loop, LLVM can prove they do
            # not overlap and vectorises each pass (one fused loop stayed scalar).
            for k in range(n):
                ib[k] = alpha[k] * ib[k] + (acc[k] + step_in[k])
            for k in range(n):
                vk = beta[k] * vb[k] + gain[k] * (leak + ib[k])
                spiked = vk > threshold
                vb[k] = reset if spiked else vk
                zb[k] = 1 if spiked else 0
            if keep_trace:
                tb = trace[b]
                for k in range(n):
                    tb[k] = tb[k] * decay + zb[k]
            if record:
                copy(zb, spikes[b, t], 0)
            if slots[0] >= 0:
                copy(trace[b], features[b, t], slots[0])
            if slots[1] >= 0:
                copy(ib, features[b, t], slots[1])
            if slots[2] >= 0:
                copy(vb, features[b, t], slots[2])
            if closed:
                # the readout's scores of this step's features, then their softmax: the next p
                scores_of(features[b, t], readout, readout_bias, scores)
                top = scores[0]
                for c in range(classes):
                    top = max(top, scores[c])
                total = 0.0
                for c in range(classes):
                    scores[c] = np.exp(scores[c] - top)
                    total += scores[c]
                for c in range(classes):
                    prob[b, c] = scores[c] / total


window = _compiled(_window, parallel=True)
