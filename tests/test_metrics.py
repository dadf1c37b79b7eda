"""Metrics of both LOSO protocols and of the tendency, against a numpy re-derivation and hand-computed values."""

import math

import numpy as np
import pytest

from cmnet_keras import metrics


def _random_folds(seed, num_folds=6, num_classes=5):
    """Random folds in which some classes are absent from y_true or y_pred."""
    rng = np.random.default_rng(seed)
    folds = []
    for _ in range(num_folds):
        n = int(rng.integers(1, 12))
        true_classes = rng.choice(num_classes, size=int(rng.integers(1, num_classes + 1)), replace=False)
        pred_classes = rng.choice(num_classes, size=int(rng.integers(1, num_classes + 1)), replace=False)
        y_true = rng.choice(true_classes, size=n)
        y_pred = np.where(rng.random(n) < 0.5, y_true, rng.choice(pred_classes, size=n))
        folds.append((y_true, y_pred))
    return folds


def _numpy_per_class(y_true, y_pred, classes):
    """(precision, recall, f1) per class by counting, 0/0 -> 0."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    tp = np.array([np.sum((y_true == c) & (y_pred == c)) for c in classes], float)
    predicted = np.array([np.sum(y_pred == c) for c in classes], float)
    actual = np.array([np.sum(y_true == c) for c in classes], float)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    f1 = np.divide(2 * tp, predicted + actual, out=np.zeros_like(tp), where=predicted + actual > 0)
    return precision, recall, f1, actual


def _numpy_paper_f1(y_true, y_pred, classes):
    precision, recall, _, _ = _numpy_per_class(y_true, y_pred, classes)
    p, r = precision.mean(), recall.mean()
    return 2 * p * r / (p + r) if p + r else 0.0


@pytest.mark.parametrize("seed", range(5))
def test_fold_scores_match_numpy(seed):
    for y_true, y_pred in _random_folds(seed):
        scores = metrics.fold_scores(y_true, y_pred, num_classes=5)
        present = np.union1d(y_true, y_pred)
        precision, recall, _, _ = _numpy_per_class(y_true, y_pred, present)
        assert scores["n"] == len(y_true)
        assert scores["accuracy"] == pytest.approx(np.mean(y_true == y_pred))
        assert scores["precision"] == pytest.approx(precision.mean())
        assert scores["recall"] == pytest.approx(recall.mean())
        assert scores["f1"] == pytest.approx(_numpy_paper_f1(y_true, y_pred, present))
        assert scores["f1_all"] == pytest.approx(_numpy_paper_f1(y_true, y_pred, range(5)))


@pytest.mark.parametrize("seed", range(5))
def test_protocols_match_numpy(seed):
    folds = _random_folds(seed)
    paper = metrics.paper_protocol(folds, num_classes=5)
    assert paper["num_folds"] == len(folds)
    assert paper["accuracy"] == pytest.approx(np.mean([np.mean(t == p) for t, p in folds]))
    f1 = [_numpy_paper_f1(t, p, np.union1d(t, p)) for t, p in folds]
    assert paper["f1"] == pytest.approx(np.mean(f1)) and paper["f1_std"] == pytest.approx(np.std(f1))
    assert paper["f1_all"] == pytest.approx(np.mean([_numpy_paper_f1(t, p, range(5)) for t, p in folds]))

    y_true = np.concatenate([t for t, _ in folds])
    y_pred = np.concatenate([p for _, p in folds])
    _, recall, f1, actual = _numpy_per_class(y_true, y_pred, np.union1d(y_true, y_pred))
    pooled = metrics.pooled_protocol(folds)
    assert pooled["n"] == len(y_true)
    assert pooled["accuracy"] == pytest.approx(np.mean(y_true == y_pred))
    assert pooled["uf1"] == pytest.approx(f1.mean())
    assert pooled["uar"] == pytest.approx(recall[actual > 0].mean())


def test_confusion_matrix_counts():
    y_true, y_pred = _random_folds(7, num_folds=1)[0]
    expected = np.zeros((5, 5), int)
    for t, p in zip(y_true, y_pred):
        expected[t, p] += 1
    np.testing.assert_array_equal(metrics.confusion_matrix(y_true, y_pred, num_classes=5), expected)


def test_hand_computed_fold():
    # Classes 0, 1 true; 2 only predicted. P = (1/1 + 2/2 + 0/1) / 3, R = (1/2 + 2/2 + 0) / 3.
    scores = metrics.fold_scores([0, 0, 1, 1], [0, 2, 1, 1], num_classes=5)
    assert scores["precision"] == pytest.approx(2 / 3)
    assert scores["recall"] == pytest.approx(1 / 2)
    assert scores["f1"] == pytest.approx(2 * (2 / 3) * (1 / 2) / (2 / 3 + 1 / 2))
    # Over all 5 classes: P = (1 + 1 + 0 + 0 + 0) / 5, R = (1/2 + 1 + 0 + 0 + 0) / 5.
    assert scores["f1_all"] == pytest.approx(2 * 0.4 * 0.3 / 0.7)
    assert metrics.pooled_protocol([([0, 0, 1, 1], [0, 2, 1, 1])])["uar"] == pytest.approx(0.75)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="3 labels but y_pred has 2"):
        metrics.fold_scores([0, 1, 2], [0, 1])
    with pytest.raises(ValueError, match="empty"):
        metrics.fold_scores([], [])
    with pytest.raises(ValueError, match="out of range for num_classes=2"):
        metrics.confusion_matrix([0, 2], [0, 1], num_classes=2)
    with pytest.raises(ValueError, match="out of range for num_classes=2"):
        metrics.fold_scores([0, 2], [0, 1], num_classes=2)
    with pytest.raises(ValueError, match="at least one fold"):
        metrics.paper_protocol([])
    with pytest.raises(ValueError, match="same length >= 3, got 16 and 15"):
        metrics.clip_tendency(np.zeros(16), np.zeros(15))


def test_tendency_hand_computed():
    frames = np.arange(16.0)
    assert metrics.clip_tendency(frames, 2 * frames + 1)["rho"] == pytest.approx(1.0)
    assert metrics.clip_tendency(frames[::-1], frames)["rho"] == pytest.approx(-1.0)
    assert metrics.clip_tendency(frames, frames)["abs_z"] == pytest.approx(0.0)
    # Every k above every prototype value: rank sum 17 + ... + 32 = 392, mean 16 * 33 / 2 = 264,
    # variance 16 * 16 * 33 / 12 = 704.
    above = metrics.clip_tendency(10 + frames, frames / 16)
    assert above["abs_z"] == pytest.approx(128 / math.sqrt(704))
    flat = metrics.clip_tendency(np.full(16, 0.5), frames)
    assert math.isnan(flat["rho"])
    summary = metrics.tendency_summary([above, flat, metrics.clip_tendency(frames[::-1], frames)])
    assert summary == {"rho": pytest.approx(0.0), "abs_z": pytest.approx((above["abs_z"] + flat["abs_z"]) / 3),
                       "n": 3, "rho_undefined": 1}


def test_paired_wilcoxon_hand_computed():
    # Differences 1, 2, -3, 4, 5 (one zero pair dropped): W+ = 1 + 2 + 4 + 5 = 12, W- = 3; W = min = 3.
    # Exact two-sided p for n = 5: P(W <= 3) = 5 / 32 (subsets of {1..5} with sum <= 3: {}, {1}, {2}, {3}, {1,2}).
    test = metrics.paired_wilcoxon([1, 2, 0, 4, 5, 7], [0, 0, 3, 0, 0, 7])
    assert test["n"] == 6 and test["mean_difference"] == pytest.approx(9 / 6)
    assert test["statistic"] == 3 and test["p"] == pytest.approx(2 * 5 / 32)
    assert math.isnan(metrics.paired_wilcoxon([1, 2], [1, 2])["p"])
    with pytest.raises(ValueError, match=r"equal-length.*\(2,\) and \(3,\)"):
        metrics.paired_wilcoxon([1, 2], [1, 2, 3])
