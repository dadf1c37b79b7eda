"""Ground-truth intensity: the truth file, its resampling onto the timeline, its storage in the cache,
rho_true and the amplitude agreement in every run, and the non-learned references."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from cmnet_keras import metrics, reports
from cmnet_keras.commands import train
from cmnet_keras.data import cache, intensity_reference, temporal
from cmnet_keras.data.truth import ClipTruth, read_truth_table
from cmnet_keras.records import RunResult


def _hand_raised_cosine(t, onset, apex, offset):
    """0 at onset, 1 at apex, 0 at offset (frame numbers), half a cosine period on each side."""
    t = np.asarray(t, np.float64)
    rise = (1 - np.cos(np.pi * (t - onset) / (apex - onset))) / 2
    fall = (1 + np.cos(np.pi * (t - apex) / (offset - apex))) / 2
    return np.where(t <= apex, rise, fall)


def test_rho_true_of_a_hand_made_clip_against_scipy():
    # 31 source frames onto 16: frame i is source frame 2i (no blending); apex at source frame 10.
    truth = ClipTruth(onset=100, apex=110, offset=130, amplitude=0.06)
    plan = temporal.temporal_plan(31, 16)
    assert plan.lower.tolist() == list(range(0, 31, 2)) and not plan.weight.any()
    expected = 0.06 * _hand_raised_cosine(100 + 2 * np.arange(16), 100, 110, 130)
    timeline = plan.resample(truth.curve())
    np.testing.assert_allclose(timeline, expected, atol=1e-12)
    assert timeline.argmax() == 5 and timeline[0] == 0 and abs(timeline[-1]) < 1e-12
    k = np.array([0.1, 0.3, 0.2, 0.5, 0.7, 0.9, 0.8, 0.6, 0.65, 0.4, 0.5, 0.3, 0.2, 0.25, 0.1, 0.0])
    assert metrics.spearman_rho(k, timeline) == pytest.approx(stats.spearmanr(k, expected).statistic, abs=1e-12)


def test_a_short_clip_blends_the_truth_as_it_blends_frames():
    # 11 source frames onto 16: timeline frame i sits at source position 10 i / 15, linearly blended.
    truth = ClipTruth(onset=5, apex=9, offset=15, amplitude=0.08)
    plan = temporal.temporal_plan(11, 16)
    positions = 10 * np.arange(16) / 15
    source = 0.08 * _hand_raised_cosine(5 + np.arange(11), 5, 9, 15)
    np.testing.assert_allclose(plan.resample(truth.curve()), np.interp(positions, np.arange(11), source), atol=1e-7)


def test_amplitude_agreement_against_scipy():
    curves = [[0, 1, 3, 1], [0, 2, 2, 0.5], [1, 1.5, 1.2, 1], [0, 4, 1, 0]]
    amplitudes = [0.05, 0.07, 0.06, 0.08]
    ranges = [3, 2, 0.5, 4]
    assert metrics.amplitude_agreement(curves, amplitudes) == pytest.approx(stats.spearmanr(ranges, amplitudes).statistic)
    assert np.isnan(metrics.amplitude_agreement(curves[:2], amplitudes[:2]))


def test_truth_file_errors_name_the_file_and_row(tmp_path):
    path = tmp_path / "truth.csv"
    path.write_text("subject,filename,onset,apex,offset\n1,EP01,1,5,9\n")
    with pytest.raises(ValueError, match=r"truth.csv: intensity truth file lacks columns \['amplitude'\]"):
        read_truth_table(path)
    path.write_text("subject,filename,onset,apex,offset,amplitude\n1,EP01,1,5,9,0.1\n1,EP02,1,12,9,0.1\n")
    with pytest.raises(ValueError, match=r"truth.csv row 3: needs onset <= apex <= offset, got 1, 12, 9"):
        read_truth_table(path)
    path.write_text("subject,filename,onset,apex,offset,amplitude\n1,EP01,1,x,9,0.1\n")
    with pytest.raises(ValueError, match=r"truth.csv row 2: apex must be a frame number, got 'x'"):
        read_truth_table(path)
    path.write_text("subject,filename,onset,apex,offset,amplitude_fw\n1,EP01,1,5,9,0.07\n")
    assert read_truth_table(path)[("1", "EP01")].as_dict() == {"onset": 1, "apex": 5, "offset": 9, "amplitude": 0.07}


def test_stored_truth_of_generated_clips_is_the_generators_curve(tmp_path, pyfeat_data, face_model, capsys):
    from cmnet_keras.commands import preprocess
    from cmnet_keras.data.generator.dataset import MANIFEST, generate_embedded_dataset

    root = generate_embedded_dataset(tmp_path / "embedded", num_subjects=1, clips_per_subject=3,
                                     data_dir=pyfeat_data, model_path=face_model)
    out = tmp_path / "cache"
    assert preprocess.main(["--dataset", "casme2", "--root", str(root), "--out", str(out), "--size", "32",
                            "--face-model", str(face_model), "--intensity-truth", str(root / MANIFEST),
                            "--quiet"]) == 0
    assert f"true intensity from {root / MANIFEST}: 3 clips" in capsys.readouterr().out
    index = cache.read_index(out)
    manifest = pd.read_csv(root / MANIFEST).set_index("filename")
    for row, stored in zip(index.itertuples(), cache.read_true_intensity(out, index["file"])):
        truth = manifest.loc[row.clip_id]
        length = truth.offset - truth.onset + 1
        position = np.arange(16) * (length - 1) / 15
        # Clips of >= 16 frames take the nearest frame (halves up), shorter ones blend neighbours.
        frames = truth.onset + (np.floor(position + 0.5) if length >= 16 else position)
        source = truth.amplitude_fw * _hand_raised_cosine(np.arange(truth.onset, truth.offset + 1), truth.onset,
                                                          truth.apex, truth.offset)
        expected = np.interp(frames, np.arange(truth.onset, truth.offset + 1), source)
        np.testing.assert_allclose(stored, expected, atol=2e-6)
        assert stored.max() == pytest.approx(truth.amplitude_fw, rel=0.05)


def _moving_pattern(shifts, size=48, seed=0):
    """Grey frames (R = G = B) of a smooth periodic texture shifted right by whole pixels."""
    rng = np.random.default_rng(seed)
    spectrum = np.fft.fft2(rng.normal(size=(size, size)))
    frequency = np.fft.fftfreq(size)
    low_pass = np.exp(-(frequency[:, None] ** 2 + frequency[None, :] ** 2) / (2 * 0.06 ** 2))
    texture = np.real(np.fft.ifft2(spectrum * low_pass))
    texture = np.round(40 + 170 * (texture - texture.min()) / np.ptp(texture)).astype(np.uint8)
    return np.stack([np.repeat(np.roll(texture, s, axis=1)[..., None], 3, axis=-1) for s in shifts])


def test_references_on_a_moving_pattern_against_numpy():
    shifts = [0, 1, 2, 3, 2, 1, 0]
    frames = _moving_pattern(shifts)
    grey = frames[..., 0].astype(np.float64)
    expected = np.array([np.abs(g - grey[0]).mean() for g in grey])
    np.testing.assert_allclose(intensity_reference.difference_intensity(frames), expected, atol=1e-12)
    flow = intensity_reference.flow_intensity(frames)
    assert flow[0] == 0 and flow[-1] < 0.05
    np.testing.assert_allclose(flow, shifts, atol=0.3)
    with pytest.raises(ValueError, match=r"frames must be uint8 \[T, H, W, 3\]"):
        intensity_reference.flow_intensity(frames[..., 0])


@pytest.fixture(scope="module")
def truth_run(tmp_path_factory, synthetic_cache):
    """A tiny LOSO run on a cache whose clips of sub01 and sub02 have a true intensity (sub10's have none)."""
    folder = synthetic_cache(tmp_path_factory.mktemp("truth-cache"), ["sub01", "sub02", "sub10"])
    index = cache.read_index(folder)
    rng = np.random.default_rng(1)
    for row in index.to_dict("records"):
        if row["subject"] != "sub10":
            apex = int(rng.integers(3, 13))
            truth = rng.uniform(0.03, 0.09) * _hand_raised_cosine(np.arange(16), 0, apex, 15)
            cache.save_clip(folder, row, cache.load_clip(folder, row)["frames"], true_intensity=truth)
    out = tmp_path_factory.mktemp("truth-run") / "run"
    train.main(["--cache", str(folder), "--preset", "tiny", "--epochs", "1", "--verbose", "0", "--out", str(out)])
    return out


def test_every_run_measures_k_against_the_true_intensity(truth_run):
    results = json.loads((truth_run / "results.json").read_text())
    clips = [c for r in reports.load_fold_results(truth_run) for c in r.predictions]
    with_truth = [c for c in clips if c["subject"] != "sub10"]
    assert all("true_intensity" not in c and "rho_true" not in c for c in clips if c["subject"] == "sub10")
    for clip in with_truth:
        assert clip["rho_true"] == pytest.approx(stats.spearmanr(clip["intensity"], clip["true_intensity"]).statistic)
    truth = results["truth"]
    assert truth["n"] == 4
    assert truth["rho_true_k"] == pytest.approx(np.mean([c["rho_true"] for c in with_truth]))
    ranges = [np.ptp(c["intensity"]) for c in with_truth]
    assert truth["amplitude_k"] == pytest.approx(
        stats.spearmanr(ranges, [max(c["true_intensity"]) for c in with_truth]).statistic)
    flow_rho = [stats.spearmanr(c["flow_intensity"], c["true_intensity"]).statistic for c in with_truth]
    assert truth["rho_true_flow"] == pytest.approx(np.nanmean(flow_rho))
    predictions = pd.read_csv(truth_run / "predictions.csv")
    k = predictions[[f"k_{t}" for t in range(1, 17)]].to_numpy()
    np.testing.assert_allclose(k, [c["intensity"] for c in clips], atol=1e-6)
    assert predictions.loc[predictions.subject == "sub10", "true_1"].isna().all()
    assert predictions.loc[predictions.subject != "sub10", "rho_true"].notna().all()
    folds = pd.read_csv(truth_run / "folds.csv")
    assert {"rho_true_k", "amplitude_k", "rho_true_flow", "rho_true_frame_difference"} <= set(folds.columns)
    assert folds.loc[folds.subject == "sub10", "rho_true_k"].isna().all()
    assert "truth" in set(pd.read_csv(truth_run / "results.csv")["protocol"])
    assert "true intensity (4 clips), rho_true / amplitude agreement: learned k" in reports.format_summary(RunResult.from_json(results))
