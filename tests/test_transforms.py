"""Transforms: binning by time and by count, pooling, polarity, augmentations, configuration keys."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from spiking_maelstrom.data.events import nmnist_events, shd_events
from spiking_maelstrom.data.transforms import (
    BandBalance,
    Blend,
    ChannelBin,
    ChannelMask,
    ChannelShift,
    Compose,
    Downsample,
    MergePolarity,
    SpectralTilt,
    TimeJitter,
    TimeStretch,
    ToFrames,
    ToFramesByCount,
)

from .test_nmnist import random_nmnist
from .test_shd import random_shd

NMNIST = (2, 34, 34)


def reference_frames(events: np.ndarray, dt: float, n_steps: int) -> np.ndarray:
    """The obvious per-event loop, to check the vectorised binning against."""
    frames = np.zeros((n_steps, *NMNIST), dtype=np.float32)
    for x, y, p, t in events[["x", "y", "p", "t"]].tolist():
        if t // dt < n_steps:
            frames[int(t // dt), p, y, x] += 1
    return frames


def test_to_frames_matches_a_per_event_loop_and_crops():
    events = random_nmnist(np.random.default_rng(0), 2000)
    frames = ToFrames(dt=10_000, n_steps=20, sensor_size=NMNIST)(events)
    assert frames.shape == (20, 2, 34, 34) and frames.dtype == np.float32
    assert np.array_equal(frames, reference_frames(events, 10_000, 20))
    assert frames.sum() == np.count_nonzero(events["t"] < 200_000) < len(events)


def test_to_frames_pads_short_samples_with_zeros():
    events = shd_events(np.array([0.0, 0.0015, 0.0099]), np.array([3, 3, 699]))
    frames = ToFrames(dt=1e-3, n_steps=50, sensor_size=(700,))(events)
    assert frames.shape == (50, 700) and frames.sum() == 3
    assert frames[0, 3] == 1 and frames[1, 3] == 1 and frames[9, 699] == 1 and not frames[10:].any()


def test_sensor_size_that_does_not_fit_is_a_clear_error():
    events = random_nmnist(np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"ToFrames: event y in 0\.\.\d+ does not fit sensor_size \(2, 17, 17\)"):
        ToFrames(1000, 10, (2, 17, 17))(events)
    with pytest.raises(ValueError, match="sensor_size"):
        ToFrames(1000, 10, (34, 34))(events)


def test_frames_by_event_count():
    events = shd_events(np.linspace(0, 1, 10), np.arange(10))
    frames = ToFramesByCount(events_per_frame=3, n_steps=5, sensor_size=(700,))(events)
    assert frames.sum(1).tolist() == [3, 3, 3, 1, 0]
    assert ToFramesByCount(3, 2, (700,))(events).sum() == 6


@pytest.mark.parametrize("as_tensor", [False, True])
def test_pooling_events_equals_pooling_frames(as_tensor):
    events = random_nmnist(np.random.default_rng(1), 3000)
    frames = ToFrames(10_000, 30, NMNIST)(events)
    dense = torch.from_numpy(frames) if as_tensor else frames
    for factor, size in ((2, 17), (4, 9)):
        pooled = Downsample(factor)(dense)
        assert isinstance(pooled, torch.Tensor) == as_tensor and tuple(pooled.shape) == (30, 2, size, size)
        via_events = Compose([Downsample(factor), ToFrames(10_000, 30, (2, size, size))])(events)
        assert np.array_equal(np.asarray(pooled), via_events)
    merged = MergePolarity()(dense)
    assert tuple(merged.shape) == (30, 1, 34, 34)
    assert np.array_equal(np.asarray(merged), Compose([MergePolarity(), ToFrames(10_000, 30, (1, 34, 34))])(events))


def test_channel_bin_sums_adjacent_units():
    events = random_shd(np.random.default_rng(2), 5000)
    frames = ToFrames(0.01, 140, (700,))(events)
    for k, size in ((10, 70), (3, 234)):
        binned = ChannelBin(k)(frames)
        assert binned.shape == (140, size) and binned.sum() == frames.sum()
        assert np.array_equal(binned, Compose([ChannelBin(k), ToFrames(0.01, 140, (size,))])(events))
    assert np.array_equal(ChannelBin(10)(frames)[:, 0], frames[:, :10].sum(1))


def test_time_jitter_is_reproducible_and_keeps_events():
    events = random_nmnist(np.random.default_rng(3), 500)
    a, b = TimeJitter(std=1000.0, seed=7), TimeJitter(std=1000.0, seed=7)
    first, again = a(events), b(events)
    assert np.array_equal(first, again) and not np.array_equal(a(events), first)  # same seed, fresh draws
    assert len(first) == len(events) and np.all(np.diff(first["t"]) >= 0)
    assert np.abs(np.sort(first["t"]) - np.sort(events["t"])).max() < 10_000
    shd = TimeJitter(std=1e-3, seed=0)(random_shd(np.random.default_rng(0)))
    assert shd["t"].dtype == np.float64


def test_time_jitter_on_frames_moves_counts():
    frames = torch.zeros(100, 700)
    frames[50, [3, 4, 5]] = torch.tensor([2.0, 1.0, 4.0])
    moved = TimeJitter(std=2.0, seed=0)(frames)
    assert isinstance(moved, torch.Tensor) and moved.dtype == torch.float32
    assert torch.equal(moved.sum(0), frames.sum(0)) and not torch.equal(moved, frames)
    assert moved[:40].sum() == 0 and moved[61:].sum() == 0
    with pytest.raises(ValueError, match="counts"):
        TimeJitter(1.0)(frames / 3)


def test_time_stretch_scales_every_event_time_by_one_factor_within_bounds():
    events = random_nmnist(np.random.default_rng(4), 500)
    events = events[events["t"] > 0]
    factors = []
    for seed in range(20):
        out = TimeStretch(max_stretch=0.25, seed=seed)(events)
        assert np.array_equal(out[["x", "y", "p"]], events[["x", "y", "p"]])
        assert np.all(np.diff(out["t"]) >= 0)
        t, stretched = events["t"].astype(float), out["t"].astype(float)
        factors.append((t @ stretched) / (t @ t))
        assert np.abs(stretched - t * factors[-1]).max() < 0.6  # one factor for all, times rounded
    assert 0.8 - 1e-3 <= min(factors) < 0.95 and 1.05 < max(factors) <= 1.25 + 1e-3
    again = TimeStretch(max_stretch=0.25, seed=3)(events)
    assert np.array_equal(again, TimeStretch(max_stretch=0.25, seed=3)(events))


def test_time_stretch_on_frames_moves_counts_along_time():
    frames = np.zeros((100, 700), dtype=np.float32)
    frames[20, 5] = 30
    frames[60, 9] = 40
    later, earlier = 0, 0
    for seed in range(20):
        out = TimeStretch(max_stretch=0.25, seed=seed)(frames)
        assert out.dtype == np.float32 and out.sum(0)[5] == 30 and out.sum(0)[9] == 40  # none leaves the window
        first, second = np.nonzero(out[:, 5])[0], np.nonzero(out[:, 9])[0]
        assert first.min() >= 16 and first.max() <= 26 and second.min() >= 48 and second.max() <= 76
        later += second.mean() > 61
        earlier += second.mean() < 60
    assert later and earlier
    end = np.zeros((100, 700), dtype=np.float32)
    end[95, 0] = 50
    assert 0 < TimeStretch(1.0, seed=1)(end).sum() <= 50  # stretched past the end: dropped
    with pytest.raises(ValueError, match="max_stretch >= 0"):
        TimeStretch(-0.1)
    with pytest.raises(ValueError, match="counts"):
        TimeStretch(0.1)(frames / 7)


def test_channel_shift_moves_whole_frames_without_wrapping():
    frames = np.zeros((5, 700), dtype=np.float32)
    frames[:, 10] = 1
    shift = ChannelShift(max_shift=4, seed=1)
    shifted = [np.flatnonzero(shift(frames)[0]) for _ in range(20)]
    assert all(len(s) == 1 and 6 <= s[0] <= 14 for s in shifted) and len({s[0] for s in shifted}) > 1
    edge = np.zeros((1, 2, 34, 34), dtype=np.float32)
    edge[0, :, 0, 0] = 1
    assert ChannelShift(3, seed=0)(edge).sum() <= 2
    assert np.array_equal(ChannelShift(0)(torch.from_numpy(edge)).numpy(), edge)
    with pytest.raises(TypeError, match="dense frames"):
        ChannelShift(2)(random_nmnist(np.random.default_rng(0)))


def test_band_balance_evens_out_the_bands_causally():
    flat = np.full((30, 100), 2.0, dtype=np.float32)
    balance = BandBalance(bands=4, tau=5.0)
    assert np.allclose(balance(flat), flat)  # a flat spectrum is left as it is
    quiet_low = flat.copy()
    quiet_low[:, :25] = 0.5  # the lowest band gets a quarter of the others' energy
    out = balance(quiet_low)
    assert out.dtype == np.float32
    # From the running energies (floor 0.1 included): after a few time constants the low band is
    # raised to the level of the others, and the total level stays about where it was.
    assert np.allclose(out[-1, :25], out[-1, 25:].mean(), rtol=0.01)
    assert out[-1, :25].mean() > 3 * quiet_low[-1, :25].mean()
    assert abs(out[-1].sum() - quiet_low[-1].sum()) < 0.35 * quiet_low[-1].sum()
    # Causal: the frames before a change do not see it.
    late = quiet_low.copy()
    late[20:, 50:] = 9.0
    assert np.array_equal(balance(late)[:20], out[:20]) and not np.allclose(balance(late)[20:], out[20:])
    # tau = inf (everything since the start) and a tiny floor: a constant spectrum is flat from the
    # first frame on, at the mean of the band levels (0.5, 2, 2, 2 -> 1.625).
    assert np.allclose(BandBalance(4, tau=float("inf"), floor=1e-9)(quiet_low), 1.625)
    as_tensor = balance(torch.from_numpy(quiet_low))
    assert isinstance(as_tensor, torch.Tensor) and torch.allclose(as_tensor, torch.from_numpy(out))
    with pytest.raises(TypeError, match=r"\[T, channels\] frames"):
        balance(np.zeros((4, 2, 34, 34), dtype=np.float32))
    with pytest.raises(ValueError, match="5 bands for 3 channels"):
        BandBalance(5)(np.ones((4, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="bands >= 1, tau > 0"):
        BandBalance(bands=0)


def test_spectral_tilt_thins_one_end_of_the_channels():
    frames = np.full((400, 700), 3.0, dtype=np.float32)
    tilt = SpectralTilt(max_tilt=1.0, seed=3)
    tilted = [tilt(frames) for _ in range(20)]
    assert all(t.dtype == np.float32 and np.all(t <= frames) and np.all(t == np.round(t)) for t in tilted)
    ends = np.array([[t[:, :50].mean(), t[:, -50:].mean()] for t in tilted]) / 3.0
    # Each draw keeps one end nearly whole and thins the other, by up to 1 - exp(-1) = 63 %.
    assert np.all(ends.max(1) > 0.95) and np.all(ends.min(1) > 0.3)
    assert np.any(ends[:, 0] < 0.8) and np.any(ends[:, 1] < 0.8)  # both directions occur
    again = SpectralTilt(max_tilt=1.0, seed=3)
    assert np.array_equal(again(frames), tilted[0])
    as_tensor = SpectralTilt(1.0, seed=0)(torch.from_numpy(frames))
    assert isinstance(as_tensor, torch.Tensor) and as_tensor.shape == (400, 700)
    with pytest.raises(ValueError, match="SpectralTilt on frames needs event counts"):
        tilt(frames / 2)
    with pytest.raises(TypeError, match=r"\[T, channels\] frames"):
        tilt(np.zeros((4, 2, 34, 34), dtype=np.float32))
    with pytest.raises(TypeError, match=r"\[T, channels\] frames"):
        tilt(random_shd(np.random.default_rng(0)))


def test_channel_mask_silences_one_band_of_at_most_max_width_channels():
    frames = np.arange(1, 1 + 30 * 50, dtype=np.float32).reshape(30, 50)
    mask = ChannelMask(max_width=12, seed=5)
    widths = []
    for _ in range(40):
        out = mask(frames)
        silent = np.flatnonzero((out == 0).all(0))
        assert np.array_equal(out[:, ~np.isin(np.arange(50), silent)], np.delete(frames, silent, axis=1))
        assert len(silent) == 0 or np.array_equal(silent, np.arange(silent[0], silent[-1] + 1))  # one band
        widths.append(len(silent))
    assert max(widths) <= 12 and len(set(widths)) > 5
    assert np.array_equal(ChannelMask(12, seed=5)(frames), ChannelMask(12, seed=5)(frames))
    given = torch.from_numpy(frames.copy())
    assert isinstance(mask(given), torch.Tensor) and torch.equal(given, torch.from_numpy(frames))  # input kept
    wide = ChannelMask(500, seed=1)  # wider than the 50 channels: up to all of them
    assert any((wide(frames) == 0).all(0).sum() > 12 for _ in range(20))
    with pytest.raises(TypeError, match=r"ChannelMask works on \[T, channels\] frames"):
        mask(np.zeros((4, 2, 34, 34), dtype=np.float32))


def test_blend_moves_both_samples_onto_their_midpoint_and_keeps_half_of_each():
    a = np.zeros((20, 40), dtype=np.float32)
    b = np.zeros_like(a)
    a[5, 10], b[9, 30] = 40, 40  # centres of mass (5, 10) and (9, 30): midpoint (7, 20)
    blend = Blend(1.0, seed=2)
    mixes = [blend((a, b)) for _ in range(30)]
    for mix in mixes:
        assert mix.dtype == np.float32 and np.flatnonzero(mix).tolist() == [7 * 40 + 20]
    totals = np.array([m.sum() for m in mixes])
    assert 35 < totals.mean() < 45 and totals.std() > 0  # about one recording's events, drawn anew
    assert np.array_equal(Blend(1.0, seed=2)((a, b)), mixes[0])
    empty = np.zeros_like(a)
    assert np.flatnonzero(blend((empty, b))).tolist() in ([9 * 40 + 30], [])  # an empty partner moves nothing
    as_tensor = blend((torch.from_numpy(a), torch.from_numpy(b)))
    assert isinstance(as_tensor, torch.Tensor) and as_tensor.shape == (20, 40)
    with pytest.raises(ValueError, match="Blend on frames needs event counts"):
        blend((a / 3, b))
    with pytest.raises(ValueError, match=r"Blend needs frames of one shape, got \(20, 40\) and \(20, 39\)"):
        blend((a, b[:, :39]))
    with pytest.raises(ValueError, match=r"Blend needs a probability in \[0, 1\], got 1.5"):
        Blend(1.5)


def test_blend_partner_is_of_the_same_class_from_another_speaker_in_the_pool():
    labels = np.array([0, 0, 1, 1, 0, 0])
    speakers = np.array([0, 0, 0, 1, 1, 1])
    pool = np.arange(6)
    blend = Blend(1.0, seed=0)
    partners = {blend.partner(0, labels, speakers, pool) for _ in range(50)}
    assert partners == {4, 5}  # class 0, other speakers
    assert {blend.partner(0, labels, None, pool) for _ in range(50)} == {1, 4, 5}  # no groups: any other of class 0
    assert {blend.partner(0, labels, speakers, np.array([0, 1, 2])) for _ in range(20)} == {1}  # its own speaker left
    assert blend.partner(2, labels, speakers, np.array([0, 1, 2])) is None  # no other sample of class 1
    assert Blend(0.0).partner(0, labels, speakers, pool) is None
    half = Blend(0.5, seed=1)
    drawn = [half.partner(0, labels, speakers, pool) for _ in range(400)]
    assert set(drawn) == {None, 4, 5} and 0.4 < np.mean([d is not None for d in drawn]) < 0.6


def test_keys_are_json_and_follow_the_configuration():
    a = Compose([Downsample(2), ToFrames(1000, 300, (2, 17, 17))])
    assert a.key() == {
        "name": "Compose",
        "transforms": [
            {"name": "Downsample", "factor": 2},
            {"name": "ToFrames", "dt": 1000.0, "n_steps": 300, "sensor_size": (2, 17, 17)},
        ],
    }
    assert json.dumps(a.key()) == json.dumps(Compose([Downsample(2), ToFrames(1000.0, 300, [2, 17, 17])]).key())
    assert a.key() != Compose([Downsample(2), ToFrames(1000, 301, (2, 17, 17))]).key()
    assert not a.random and TimeJitter(1.0).random and Compose([a, ChannelShift(1)]).random


def test_transforms_accept_an_empty_event_array():
    events = nmnist_events(*(np.zeros(0, dtype=int),) * 4)
    assert ToFrames(1000, 3, NMNIST)(events).sum() == 0
    assert len(TimeJitter(1.0)(events)) == 0
