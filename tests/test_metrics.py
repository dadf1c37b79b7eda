"""Metrics of both LOSO protocols against scikit-learn."""

import numpy as np
import pytest
from sklearn import metrics as skm

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


def _sk_paper_f1(y_true, y_pred):
    p = skm.precision_score(y_true, y_pred, average="macro", zero_division=0)
    r = skm.recall_score(y_true, y_pred, average="macro", zero_division=0)
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


@pytest.mark.parametrize("seed", range(5))
def test_fold_scores_match_sklearn(seed):
    for y_true, y_pred in _random_folds(seed):
        scores = metrics.fold_scores(y_true, y_pred)
        assert scores["n"] == len(y_true)
        assert scores["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred))
        assert scores["precision"] == pytest.approx(
            skm.precision_score(y_true, y_pred, average="macro", zero_division=0))
        assert scores["recall"] == pytest.approx(
            skm.recall_score(y_true, y_pred, average="macro", zero_division=0))
        assert scores["f1"] == pytest.approx(_sk_paper_f1(y_true, y_pred))


@pytest.mark.parametrize("seed", range(5))
def test_protocols_match_sklearn(seed):
    folds = _random_folds(seed)
    paper = metrics.paper_protocol(folds)
    assert paper["num_folds"] == len(folds)
    assert paper["accuracy"] == pytest.approx(np.mean([skm.accuracy_score(t, p) for t, p in folds]))
    assert paper["f1"] == pytest.approx(np.mean([_sk_paper_f1(t, p) for t, p in folds]))

    y_true = np.concatenate([t for t, _ in folds])
    y_pred = np.concatenate([p for _, p in folds])
    pooled = metrics.pooled_protocol(folds)
    assert pooled["n"] == len(y_true)
    assert pooled["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred))
    assert pooled["uf1"] == pytest.approx(skm.f1_score(y_true, y_pred, average="macro", zero_division=0))
    assert pooled["uar"] == pytest.approx(skm.balanced_accuracy_score(y_true, y_pred))
    assert pooled["uar"] == pytest.approx(
        skm.recall_score(y_true, y_pred, labels=np.unique(y_true), average="macro", zero_division=0))


def test_confusion_matrix_matches_sklearn():
    y_true, y_pred = _random_folds(7, num_folds=1)[0]
    np.testing.assert_array_equal(
        metrics.confusion_matrix(y_true, y_pred, num_classes=5),
        skm.confusion_matrix(y_true, y_pred, labels=range(5)),
    )


def test_hand_computed_fold():
    # Classes 0, 1 true; 2 only predicted. P = (1/1 + 2/2 + 0/1) / 3, R = (1/2 + 2/2 + 0) / 3.
    scores = metrics.fold_scores([0, 0, 1, 1], [0, 2, 1, 1])
    assert scores["precision"] == pytest.approx(2 / 3)
    assert scores["recall"] == pytest.approx(1 / 2)
    assert scores["f1"] == pytest.approx(2 * (2 / 3) * (1 / 2) / (2 / 3 + 1 / 2))
    assert metrics.unweighted_average_recall([0, 0, 1, 1], [0, 2, 1, 1]) == pytest.approx(0.75)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="3 labels but y_pred has 2"):
        metrics.fold_scores([0, 1, 2], [0, 1])
    with pytest.raises(ValueError, match="empty"):
        metrics.fold_scores([], [])
    with pytest.raises(ValueError, match="out of range for num_classes=2"):
        metrics.confusion_matrix([0, 2], [0, 1], num_classes=2)
    with pytest.raises(ValueError, match="at least one fold"):
        metrics.paper_protocol([])
