"""Temporal normalisation to N frames, apex mapping and apex estimation."""

import fractions
import math
import re

import numpy as np
import pytest

from cmnet_keras.data import temporal


def test_sampling_even_interval():
    plan = temporal.temporal_plan(31, 16)  # positions 2i
    assert plan.lower.tolist() == list(range(0, 31, 2))
    assert plan.upper.tolist() == plan.lower.tolist() and not plan.weight.any()
    assert plan.source_indices.tolist() == list(range(0, 31, 2))


def test_sampling_uneven_interval_hand_computed():
    # N0 = 20: positions 19 i / 15 = 0, 1.27, 2.53, 3.8, 5.07, 6.33, 7.6, 8.87, 10.13, 11.4, ...
    plan = temporal.temporal_plan(20, 16)
    assert plan.lower.tolist() == [0, 1, 3, 4, 5, 6, 8, 9, 10, 11, 13, 14, 15, 16, 18, 19]
    # Halves round up: N0 = 7, N = 5 -> positions 0, 1.5, 3, 4.5, 6.
    assert temporal.temporal_plan(7, 5).lower.tolist() == [0, 2, 3, 5, 6]


@pytest.mark.parametrize("n0", [16, 17, 41, 61, 146])
def test_sampling_keeps_onset_and_offset_and_matches_linspace(n0):
    plan = temporal.temporal_plan(n0, 16)
    assert plan.lower[0] == 0 and plan.lower[-1] == n0 - 1
    assert plan.lower.tolist() == np.rint(np.linspace(0, n0 - 1, 16)).astype(int).tolist()
    assert len(set(plan.lower.tolist())) == 16


def test_interpolation_hand_computed():
    # N0 = 6: positions i / 3 -> neighbours floor, floor + 1 with weights 0, 1/3, 2/3.
    plan = temporal.temporal_plan(6, 16)
    assert plan.lower.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5]
    np.testing.assert_allclose(plan.weight, [0, 1 / 3, 2 / 3] * 5 + [0], atol=1e-6)
    assert plan.source_indices.tolist() == [0, 1, 2, 3, 4, 5]
    frames = np.stack([np.full((2, 2, 3), 30 * k, np.uint8) for k in range(6)])
    out = plan.apply(frames)
    assert out.dtype == np.uint8 and out.shape == (16, 2, 2, 3)
    assert out[:, 0, 0, 0].tolist() == [10 * i for i in range(16)]


def test_interpolation_matches_numpy_interp():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (9, 3, 4, 3), dtype=np.uint8)
    out = temporal.temporal_plan(9, 16).apply(frames)
    t = np.linspace(0, 8, 16)
    expected = np.empty((16, 3, 4, 3))
    for idx in np.ndindex(3, 4, 3):
        expected[(slice(None),) + idx] = np.interp(t, np.arange(9), frames[(slice(None),) + idx].astype(float))
    assert np.abs(out.astype(float) - expected).max() <= 0.5 + 1e-4


def test_single_frame_clip_repeats():
    plan = temporal.temporal_plan(1, 16)
    out = plan.apply(np.full((1, 2, 2, 3), 7, np.uint8))
    assert out.shape == (16, 2, 2, 3) and (out == 7).all()


def test_apply_checks_frame_count():
    with pytest.raises(ValueError, match="Expected 16 frames"):
        temporal.temporal_plan(31, 16).apply(np.zeros((15, 2, 2, 3), np.uint8))


@pytest.mark.parametrize("n0, n", [(0, 16), (5, 1)])
def test_plan_rejects_bad_sizes(n0, n):
    with pytest.raises(ValueError, match="must be >= "):
        temporal.temporal_plan(n0, n)


@pytest.mark.parametrize(
    "n0, apex, expected",
    [
        (31, 10, 5),  # positions 0, 2, ..., 30: frame 10 is timeline 5
        (31, 9, 4),  # equidistant from 8 and 10: the first
        (31, 30, 15),
        (41, 13, 5),  # CASME II sub01/EP02_01f: onset 46, apex 59 -> 13; positions 40 i / 15 round to 0,3,5,8,11,13
        (6, 2, 6),  # interpolated: positions i / 3
        (6, 0, 0),
        (6, 5, 15),
    ],
)
def test_map_apex(n0, apex, expected):
    assert temporal.map_apex(apex, temporal.temporal_plan(n0, 16)) == expected


def test_map_apex_out_of_range():
    with pytest.raises(ValueError, match=r"apex must be a source frame in 0\.\.30 \(num_source 31\), got 31"):
        temporal.map_apex(31, temporal.temporal_plan(31, 16))


@pytest.mark.parametrize(
    "n0, n, apex, expected",
    [
        # k = round(3 * 5 / 19) = 1: sides [0, 3] and 3 + 4 j (uniform would be 0, 4, 8, 11, 15, 19).
        (20, 6, 3, [0, 3, 7, 11, 15, 19]),
        # k = round(12 * 5 / 19) = 3: 0, 4, 8, 12 | 12, 15.5, 19 (the half rounds up to 16).
        (20, 6, 12, [0, 4, 8, 12, 16, 19]),
        # k = round(5 / 29) = 0, clamped to 1 to keep the onset: [0, 1] | 1 + 7 j.
        (30, 6, 1, [0, 1, 8, 15, 22, 29]),
        # k = round(28 * 5 / 29) = 5, clamped to 4 to keep the offset: 7 j | [28, 29].
        (30, 6, 28, [0, 7, 14, 21, 28, 29]),
        # The apex already on a uniform position (2 i): the plan is the uniform one.
        (31, 16, 10, list(range(0, 31, 2))),
        # CASME II sub01/EP02_01f (onset 46, apex 59, offset 86): k = round(13 * 15 / 40) = 5,
        # 0, 2.6, 5.2, 7.8, 10.4, 13 | 13 + 2.7 j (j = 1..10).
        (41, 16, 13, [0, 3, 5, 8, 10, 13, 16, 18, 21, 24, 27, 29, 32, 35, 37, 40]),
    ],
)
def test_apex_plan_hand_computed(n0, n, apex, expected):
    plan = temporal.temporal_plan(n0, n, apex=apex, method="apex")
    assert plan.lower.tolist() == expected and plan.upper.tolist() == expected and not plan.weight.any()
    assert plan.source_indices.tolist() == sorted(set(expected))
    assert plan.lower[temporal.map_apex(apex, plan)] == apex


def test_apex_plan_interpolation_hand_computed():
    # N0 = 4, N = 8, apex 1: k = round(7 / 3) = 2; positions 0, 0.5, 1 | 1 + 2 j / 5 = 1.4, 1.8, 2.2, 2.6, 3.
    plan = temporal.temporal_plan(4, 8, apex=1, method="apex")
    assert plan.lower.tolist() == [0, 0, 1, 1, 1, 2, 2, 3]
    assert plan.upper.tolist() == [1, 1, 1, 2, 2, 3, 3, 3]
    np.testing.assert_allclose(plan.weight, [0, 0.5, 0, 0.4, 0.8, 0.2, 0.6, 0], atol=1e-6)
    assert temporal.map_apex(1, plan) == 2
    frames = np.stack([np.full((2, 2, 3), 30 * f, np.uint8) for f in range(4)])
    assert plan.apply(frames)[:, 0, 0, 0].tolist() == [0, 15, 30, 42, 54, 66, 78, 90]


def test_apex_plan_blends_one_side_and_samples_the_other():
    # N0 = 10, N = 12, apex 8: k = round(88 / 9) = 10; 0.8 j (blended, 8 source steps for 10) | [8, 9].
    plan = temporal.temporal_plan(10, 12, apex=8, method="apex")
    assert plan.lower.tolist() == [0, 0, 1, 2, 3, 4, 4, 5, 6, 7, 8, 9]
    np.testing.assert_allclose(plan.weight, [0, 0.8, 0.6, 0.4, 0.2, 0, 0.8, 0.6, 0.4, 0.2, 0, 0], atol=1e-6)
    assert temporal.map_apex(8, plan) == 10


def proportional_index(n0, n, apex):
    """round(apex (n - 1) / (n0 - 1)), halves up, clamped to 1..n - 2 (re-derived with fractions)."""
    exact = fractions.Fraction(apex * (n - 1), n0 - 1)
    return min(max(math.floor(exact + fractions.Fraction(1, 2)), 1), n - 2)


@pytest.mark.parametrize("n0, n", [(2, 16), (3, 16), (9, 16), (16, 16), (17, 16), (41, 16), (146, 16), (25, 5)])
def test_apex_plan_properties(n0, n):
    rng = np.random.default_rng(n0)
    frames = rng.integers(0, 256, (n0, 2, 3), dtype=np.uint8)
    for apex in range(n0):
        plan = temporal.temporal_plan(n0, n, apex=apex, method="apex")
        positions = plan.source_positions.astype(np.float64)
        k = temporal.map_apex(apex, plan)
        assert positions[k] == apex and plan.weight[k] == 0, (apex, k)  # the apex frame itself
        assert positions[0] == 0 and positions[-1] == n0 - 1  # onset and offset kept
        assert np.all(np.diff(positions) > 0), (apex, positions)
        if n0 >= n:
            assert not plan.weight.any()  # long clips are only sampled, never blended
        if apex in (0, n0 - 1):
            uniform = temporal.temporal_plan(n0, n)
            assert plan.lower.tolist() == uniform.lower.tolist()
            np.testing.assert_array_equal(plan.weight, uniform.weight)
            continue
        assert k == proportional_index(n0, n, apex)
        ideal = np.concatenate([np.linspace(0, apex, k + 1), np.linspace(apex, n0 - 1, n - k)[1:]])
        assert np.abs(positions - ideal).max() <= 0.5 + 1e-6, (apex, positions, ideal)  # even per side
        blended = plan.weight > 0
        np.testing.assert_allclose(positions[blended], ideal[blended], atol=1e-6)  # blends are exact
        expected = np.stack([np.interp(positions, np.arange(n0), frames[(slice(None),) + idx].astype(float))
                             for idx in np.ndindex(2, 3)], axis=-1).reshape(n, 2, 3)
        out = plan.apply(frames[plan.source_indices])
        assert np.abs(out.astype(float) - expected).max() <= 0.5 + 1e-4


def test_apex_plan_moves_the_apex_onto_the_timeline():
    # Uniform sampling of 41 frames never reaches frame 20 (positions round to ..., 19, 21, ...).
    uniform = temporal.temporal_plan(41, 16, apex=20, method="uniform")
    assert 20 not in uniform.lower.tolist()
    assert uniform.lower.tolist() == temporal.temporal_plan(41, 16).lower.tolist()  # apex ignored
    assert 20 in temporal.temporal_plan(41, 16, apex=20, method="apex").lower.tolist()


def test_apex_method_without_apex_is_uniform():
    plan = temporal.temporal_plan(20, 16, method="apex")
    assert plan.lower.tolist() == [0, 1, 3, 4, 5, 6, 8, 9, 10, 11, 13, 14, 15, 16, 18, 19]


@pytest.mark.parametrize("apex", [-1, 20, 2.5, True, "3", float("nan")])
@pytest.mark.parametrize("method", ["uniform", "apex"])
def test_plan_rejects_bad_apex(apex, method):
    message = rf"apex must be a source frame in 0\.\.19 \(num_source 20\), got {re.escape(repr(apex))}"
    with pytest.raises(ValueError, match=message):
        temporal.temporal_plan(20, 16, apex=apex, method=method)


def test_plan_accepts_numpy_and_float_whole_apex():
    expected = temporal.temporal_plan(20, 6, apex=3, method="apex").lower.tolist()
    assert temporal.temporal_plan(20, 6, apex=np.int64(3), method="apex").lower.tolist() == expected
    assert temporal.temporal_plan(20, 6, apex=3.0, method="apex").lower.tolist() == expected


def test_plan_rejects_bad_method():
    with pytest.raises(ValueError, match=r"method must be one of \('uniform', 'apex'\), got 'nearest'"):
        temporal.temporal_plan(20, 16, apex=3, method="nearest")


def test_apex_plan_needs_three_frames_for_an_inner_apex():
    with pytest.raises(ValueError, match=r"needs num_frames >= 3 for apex 3 .*num_source 20.*got num_frames 2"):
        temporal.temporal_plan(20, 2, apex=3, method="apex")
    assert temporal.temporal_plan(20, 2, apex=19, method="apex").lower.tolist() == [0, 19]


def synthetic_clip(length=20, peak=13, width=6, amplitude=40.0, noise=2.0, seed=0, size=48):
    """Grey face-sized frames with a bright blob whose strength rises to `peak` and falls back."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    blob = np.exp(-((yy - size / 3) ** 2 + (xx - size / 2) ** 2) / (2 * (size / 8) ** 2))
    strength = np.clip(1 - np.abs(np.arange(length) - peak) / width, 0, 1)
    base = 100 + 20 * np.sin(xx / 5.0)
    frames = base[None] + amplitude * strength[:, None, None] * blob[None]
    frames = frames + rng.normal(0, noise, frames.shape)
    grey = np.clip(np.rint(frames), 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)


@pytest.mark.parametrize("peak", [6, 13, 17])
def test_estimate_apex_finds_known_peak(peak):
    frames = synthetic_clip(length=24, peak=peak)  # neutral at onset and offset
    assert temporal.estimate_apex(frames) == peak


def test_estimate_apex_is_not_midpoint_and_ignores_one_frame_spike():
    frames = synthetic_clip(length=16, peak=4, width=4)
    frames[11] = np.clip(frames[11].astype(int) + 6, 0, 255).astype(np.uint8)  # one-frame flash
    curve = temporal.motion_curve(frames)
    assert int(np.argmax(curve)) == 11  # the raw curve is fooled by the flash
    assert temporal.estimate_apex(frames) == 4  # the smoothed one is not


def test_motion_curve_matches_numpy():
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, (5, 8, 8), dtype=np.uint8)
    curve = temporal.motion_curve(frames, max_side=8)  # no downscaling
    g = frames.astype(float)
    expected = [np.abs(g[t] - ((1 - t / 4) * g[0] + t / 4 * g[4])).mean() for t in range(5)]
    np.testing.assert_allclose(curve, expected, rtol=1e-5)


def test_estimate_apex_ignores_linear_drift():
    """A slow brightening over the clip (drift) would put a plain onset difference at the end."""
    frames = synthetic_clip(length=16, peak=6, width=4).astype(float)
    frames += np.linspace(0, 12, 16)[:, None, None, None]
    frames = np.clip(np.rint(frames), 0, 255).astype(np.uint8)
    onset_difference = np.abs(frames.astype(float) - frames[0]).mean(axis=(1, 2, 3))
    assert int(np.argmax(onset_difference)) == 15
    assert temporal.estimate_apex(frames) == 6


def test_estimate_apex_static_clip_is_onset():
    assert temporal.estimate_apex(np.full((16, 8, 8, 3), 50, np.uint8)) == 0
