"""Evaluation metrics of the two LOSO protocols (numpy only).

Paper protocol (CMNet, Table 1): per fold, accuracy and F1 = 2PR / (P + R)
where P and R are macro-averaged precision and recall; both are then averaged
over the folds.

Pooled protocol (MEGC): the predictions of all folds are concatenated, then
accuracy, UF1 (mean of the per-class F1 scores) and UAR (mean of the
per-class recalls).

Classes that do not occur: a LOSO test subject rarely shows every class.
Macro averages run over the classes present in `y_true` or `y_pred` (the
union), as scikit-learn does by default; a class whose precision or recall is
0/0 (never predicted, resp. never true) scores 0 there. UAR averages recall
over the classes present in `y_true` only (a recall needs true samples),
which equals `sklearn.metrics.balanced_accuracy_score`.
"""

import numpy as np


def _as_labels(y_true, y_pred):
    y_true = np.asarray(y_true).reshape(-1).astype(np.int64)
    y_pred = np.asarray(y_pred).reshape(-1).astype(np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"y_true has {y_true.size} labels but y_pred has {y_pred.size}"
        )
    if y_true.size == 0:
        raise ValueError("y_true and y_pred are empty: nothing to score")
    if min(y_true.min(), y_pred.min()) < 0:
        raise ValueError(
            f"labels must be >= 0, got min y_true={y_true.min()}, "
            f"min y_pred={y_pred.min()}"
        )
    return y_true, y_pred


def confusion_matrix(y_true, y_pred, num_classes=None):
    """Counts [C, C]: rows = true class, columns = predicted class."""
    y_true, y_pred = _as_labels(y_true, y_pred)
    size = int(max(y_true.max(), y_pred.max())) + 1
    if num_classes is not None:
        if size > num_classes:
            raise ValueError(
                f"label {size - 1} out of range for num_classes={num_classes}"
            )
        size = num_classes
    matrix = np.zeros((size, size), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def _per_class(y_true, y_pred):
    """(precision, recall, f1, support) per class of y_true ∪ y_pred."""
    matrix = confusion_matrix(y_true, y_pred)
    classes = np.union1d(y_true, y_pred)
    tp = np.diag(matrix)[classes].astype(np.float64)
    predicted = matrix.sum(axis=0)[classes]
    actual = matrix.sum(axis=1)[classes]
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    denom = predicted + actual
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return precision, recall, f1, actual


def accuracy(y_true, y_pred):
    """Fraction of correct predictions."""
    y_true, y_pred = _as_labels(y_true, y_pred)
    return float(np.mean(y_true == y_pred))


def paper_f1(y_true, y_pred):
    """The paper's F1 = 2PR / (P + R) of macro precision P and macro recall R.

    Note this is not the mean of per-class F1 scores (that is `unweighted_f1`).

    Returns:
        dict with "precision", "recall", "f1" (0 when P + R = 0).
    """
    y_true, y_pred = _as_labels(y_true, y_pred)
    precision, recall, _, _ = _per_class(y_true, y_pred)
    p, r = float(precision.mean()), float(recall.mean())
    f1 = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return {"precision": p, "recall": r, "f1": f1}


def unweighted_f1(y_true, y_pred):
    """UF1: the mean of per-class F1 = 2TP / (2TP + FP + FN) over y_true ∪ y_pred."""
    y_true, y_pred = _as_labels(y_true, y_pred)
    return float(_per_class(y_true, y_pred)[2].mean())


def unweighted_average_recall(y_true, y_pred):
    """UAR: the mean of per-class recall over the classes present in y_true."""
    y_true, y_pred = _as_labels(y_true, y_pred)
    _, recall, _, actual = _per_class(y_true, y_pred)
    return float(recall[actual > 0].mean())


def fold_scores(y_true, y_pred):
    """Per-fold scores of the paper protocol: n, accuracy, precision, recall, f1."""
    y_true, y_pred = _as_labels(y_true, y_pred)
    return {"n": int(y_true.size), "accuracy": accuracy(y_true, y_pred), **paper_f1(y_true, y_pred)}


def paper_protocol(folds):
    """Accuracy and F1 of each fold, averaged over the folds (CMNet Table 1).

    Args:
        folds: sequence of (y_true, y_pred) pairs, one per LOSO fold.

    Returns:
        dict with "accuracy", "f1" (means over folds), their standard
        deviations "accuracy_std", "f1_std", and "num_folds".
    """
    if len(folds) == 0:
        raise ValueError("paper_protocol needs at least one fold, got none")
    scores = [fold_scores(t, p) for t, p in folds]
    acc = np.array([s["accuracy"] for s in scores])
    f1 = np.array([s["f1"] for s in scores])
    return {
        "accuracy": float(acc.mean()),
        "f1": float(f1.mean()),
        "accuracy_std": float(acc.std()),
        "f1_std": float(f1.std()),
        "num_folds": len(scores),
    }


def pooled_protocol(folds):
    """Accuracy, UF1 and UAR over the predictions of all folds together (MEGC).

    Args:
        folds: sequence of (y_true, y_pred) pairs, one per LOSO fold.
    """
    if len(folds) == 0:
        raise ValueError("pooled_protocol needs at least one fold, got none")
    y_true = np.concatenate([np.asarray(t).reshape(-1) for t, _ in folds])
    y_pred = np.concatenate([np.asarray(p).reshape(-1) for _, p in folds])
    return {
        "accuracy": accuracy(y_true, y_pred),
        "uf1": unweighted_f1(y_true, y_pred),
        "uar": unweighted_average_recall(y_true, y_pred),
        "n": int(y_true.size),
    }
