"""Evaluation metrics of the two LOSO protocols and of the intensity tendency (scikit-learn, scipy).

Paper protocol (CMNet, Table 1): per fold, accuracy and F1 = 2PR / (P + R)
where P and R are macro-averaged precision and recall; both are then averaged
over the folds. The macro average can be read two ways (docs/design.md), both
reported:
- `f1`: P and R averaged over the classes present in the fold's `y_true` or
  `y_pred` (scikit-learn's default);
- `f1_all`: over all C classes, as the paper's formula is printed
  (`labels=range(C)`, a 0/0 precision or recall counts 0).

Pooled protocol (MEGC): the predictions of all folds are concatenated, then
accuracy, UF1 (mean of the per-class F1 scores over the classes present) and
UAR (mean of the per-class recalls over the true classes, as
`balanced_accuracy_score`); with a dataset column (a composite), also per
dataset, as the MEGC 2019 challenge reports them (`cmnet_keras.reports`).

Tendency (docs/design.md, "Tendency, measured"): per held-out clip, Spearman's ρ
between the learned intensity k and the prototype mean over the frames, and
the rank-sum |Z| of k against the prototype. Where clips have a true
intensity (the embedded dataset, `data.truth`), `truth_summary` says how well
k, the prototype and two non-learned references follow it: ρ_true per clip
and the amplitude agreement across clips.
"""

import warnings

import numpy as np
from scipy import stats
from sklearn import metrics as skm


def _as_labels(y_true, y_pred):
    y_true = np.asarray(y_true).reshape(-1).astype(np.int64)
    y_pred = np.asarray(y_pred).reshape(-1).astype(np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.size} labels but y_pred has {y_pred.size}")
    if y_true.size == 0:
        raise ValueError("y_true and y_pred are empty: nothing to score")
    if min(y_true.min(), y_pred.min()) < 0:
        raise ValueError(f"labels must be >= 0, got min y_true={y_true.min()}, min y_pred={y_pred.min()}")
    return y_true, y_pred


def confusion_matrix(y_true, y_pred, num_classes=None):
    """Counts [C, C]: rows = true class, columns = predicted class."""
    y_true, y_pred = _as_labels(y_true, y_pred)
    size = int(max(y_true.max(), y_pred.max())) + 1
    if num_classes is not None:
        if size > num_classes:
            raise ValueError(f"label {size - 1} out of range for num_classes={num_classes}")
        size = num_classes
    return skm.confusion_matrix(y_true, y_pred, labels=np.arange(size))


def _two_pr_over_p_plus_r(y_true, y_pred, labels=None):
    p = skm.precision_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)
    r = skm.recall_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)
    return float(p), float(r), float(2 * p * r / (p + r)) if p + r > 0 else 0.0


def fold_scores(y_true, y_pred, num_classes=None):
    """Per-fold scores of the paper protocol.

    Args:
        y_true, y_pred: the fold's labels and predictions.
        num_classes: C, for `f1_all` (omitted when None).

    Returns:
        dict with n, accuracy, precision, recall, f1 (classes present) and
        f1_all (all C classes).
    """
    y_true, y_pred = _as_labels(y_true, y_pred)
    precision, recall, f1 = _two_pr_over_p_plus_r(y_true, y_pred)
    scores = {"n": int(y_true.size), "accuracy": float(skm.accuracy_score(y_true, y_pred)),
              "precision": precision, "recall": recall, "f1": f1}
    if num_classes is not None:
        confusion_matrix(y_true, y_pred, num_classes)  # checks the label range
        scores["f1_all"] = _two_pr_over_p_plus_r(y_true, y_pred, labels=np.arange(num_classes))[2]
    return scores


def paper_protocol(folds, num_classes=None):
    """Accuracy and F1 of each fold, averaged over the folds (CMNet Table 1).

    Args:
        folds: sequence of (y_true, y_pred) pairs, one per LOSO fold.
        num_classes: C, for the all-classes reading `f1_all`.

    Returns:
        dict with the means over folds of "accuracy", "f1" (and "f1_all"), their
        standard deviations "<name>_std", and "num_folds".
    """
    if len(folds) == 0:
        raise ValueError("paper_protocol needs at least one fold, got none")
    scores = [fold_scores(t, p, num_classes) for t, p in folds]
    result = {}
    for name in ("accuracy", "f1", "f1_all"):
        if name in scores[0]:
            values = np.array([s[name] for s in scores])
            result[name], result[f"{name}_std"] = float(values.mean()), float(values.std())
    return {**result, "num_folds": len(scores)}


def uf1(y_true, y_pred):
    """Unweighted F1 (MEGC): the mean of the per-class F1 scores over the classes in `y_true` or `y_pred`."""
    y_true, y_pred = _as_labels(y_true, y_pred)
    return float(skm.f1_score(y_true, y_pred, average="macro", zero_division=0))


def uar(y_true, y_pred):
    """Unweighted average recall (MEGC): the mean of the per-class recalls over the classes in `y_true`."""
    y_true, y_pred = _as_labels(y_true, y_pred)
    return float(skm.recall_score(y_true, y_pred, labels=np.unique(y_true), average="macro", zero_division=0))


def pooled_protocol(folds):
    """Accuracy, UF1 and UAR over the predictions of all folds together (MEGC).

    Args:
        folds: sequence of (y_true, y_pred) pairs, one per LOSO fold.
    """
    if len(folds) == 0:
        raise ValueError("pooled_protocol needs at least one fold, got none")
    y_true, y_pred = _as_labels(np.concatenate([np.asarray(t).reshape(-1) for t, _ in folds]),
                                np.concatenate([np.asarray(p).reshape(-1) for _, p in folds]))
    return {"accuracy": float(skm.accuracy_score(y_true, y_pred)), "uf1": uf1(y_true, y_pred),
            "uar": uar(y_true, y_pred), "n": int(y_true.size)}


def clip_tendency(intensity, prototype):
    """Whether a clip's learned intensity k follows its prototype.

    Args:
        intensity: k over the T frames.
        prototype: the prototype mean over the T frames (eqs. 2-4).

    Returns:
        dict with "rho" (Spearman's ρ; NaN when k or the prototype is constant)
        and "abs_z" (|Z| of the Wilcoxon rank-sum test of k against the prototype).
    """
    k, q = np.asarray(intensity, np.float64).reshape(-1), np.asarray(prototype, np.float64).reshape(-1)
    if k.shape != q.shape or k.size < 3:
        raise ValueError(f"intensity and prototype need the same length >= 3, got {k.size} and {q.size}")
    return {"rho": spearman_rho(k, q), "abs_z": float(abs(stats.ranksums(k, q).statistic))}


def spearman_rho(a, b):
    """Spearman's ρ of two equal-length curves (`scipy.stats.spearmanr`); NaN where one is constant."""
    a, b = np.asarray(a, np.float64).reshape(-1), np.asarray(b, np.float64).reshape(-1)
    if a.shape != b.shape or a.size < 3:
        raise ValueError(f"spearman_rho needs two curves of the same length >= 3, got {a.size} and {b.size}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        return float(stats.spearmanr(a, b).statistic)


def amplitude_agreement(curves, true_amplitudes):
    """Whether larger expressions get larger intensity: Spearman's ρ, across clips, of each clip's
    range of `curves` (max - min over the frames) with its true amplitude; NaN for fewer than 3 clips."""
    ranges = [float(np.ptp(np.asarray(c, np.float64))) for c in curves]
    if len(ranges) != len(true_amplitudes):
        raise ValueError(f"amplitude_agreement: {len(ranges)} curves for {len(true_amplitudes)} amplitudes")
    return spearman_rho(ranges, true_amplitudes) if len(ranges) >= 3 else float("nan")


def _nan_mean(values):
    values = np.asarray(values, np.float64)
    defined = ~np.isnan(values)
    return float(values[defined].mean()) if defined.any() else float("nan")


TRUTH_CURVES = {"k": "intensity", "prototype": "prototype", "flow": "flow_intensity",
                "frame_difference": "difference_intensity"}


def truth_summary(clips):
    """How well each curve follows the true intensity, over the clips that have one ("true_intensity").

    Curves: the learned k, the prototype mean, and the non-learned references
    (optical flow, frame difference; `data.intensity_reference`) where stored.

    Returns:
        {} when no clip has a true intensity; else "n" (clips) and, per curve name
        of `TRUTH_CURVES` present: "rho_true_<name>" (mean over the clips of Spearman's ρ
        with the true curve, NaN clips left out) and "amplitude_<name>" (`amplitude_agreement`).
    """
    clips = [c for c in clips if c.get("true_intensity") is not None]
    if not clips:
        return {}
    amplitudes = [max(c["true_intensity"]) for c in clips]
    summary = {"n": len(clips)}
    for name, key in TRUTH_CURVES.items():
        if all(key in c for c in clips):
            summary[f"rho_true_{name}"] = _nan_mean([spearman_rho(c[key], c["true_intensity"]) for c in clips])
            summary[f"amplitude_{name}"] = amplitude_agreement([c[key] for c in clips], amplitudes)
    return summary


def tendency_summary(clips):
    """Mean ρ (over the clips where it is defined) and mean |Z| of clips with "rho" and "abs_z".

    Returns:
        dict with "rho", "abs_z", "n" (clips) and "rho_undefined" (clips with a constant k).
    """
    rho = np.array([c["rho"] for c in clips], np.float64)
    abs_z = np.array([c["abs_z"] for c in clips], np.float64)
    return {"rho": _nan_mean(rho), "abs_z": float(abs_z.mean()) if abs_z.size else float("nan"),
            "n": int(rho.size), "rho_undefined": int(np.isnan(rho).sum())}


def paired_wilcoxon(scores, reference):
    """Wilcoxon signed-rank test of paired scores (e.g. per (seed, fold)) against a reference.

    Pairs with equal scores are dropped (scipy's "wilcox" zero method).

    Returns:
        dict with "n" (pairs), "mean_difference" (scores - reference), "statistic" and
        "p" (two-sided; NaN when every pair is equal).
    """
    a, b = np.asarray(scores, np.float64), np.asarray(reference, np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"paired_wilcoxon needs two equal-length, non-empty 1-D score lists, got {a.shape} and {b.shape}")
    result = {"n": int(a.size), "mean_difference": float(np.mean(a - b)), "statistic": float("nan"), "p": float("nan")}
    if np.any(a != b):
        test = stats.wilcoxon(a, b, zero_method="wilcox")
        result.update(statistic=float(test.statistic), p=float(test.pvalue))
    return result
