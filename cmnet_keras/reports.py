"""Run-directory reports: per-fold and final results (JSON + CSV) and PNG plots.

A fold's `result.json` is written last and atomically: its presence marks the
fold as finished. `summarize_run` turns the finished folds of one or several
runs into the final results of both protocols (`cmnet_keras.metrics`, a
`records.RunResult`), and `write_summary` writes them as tables and plots.
"""

import json
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from cmnet_keras import files, metrics
from cmnet_keras.data.composite import format_summary as format_composite
from cmnet_keras.files import write_csv, write_json
from cmnet_keras.records import FoldResult, RunResult, fold_row_fields

RESULT_FILE = "result.json"
LOSS_KEYS = ("loss", "id_loss", "wrst_loss", "ce_loss")


# Per-frame curves of predictions.csv, column prefix -> clip key; the true ones only where clips have them.
CURVE_COLUMNS = {"k": "intensity", "prototype": "prototype"}
TRUTH_COLUMNS = {"true": "true_intensity", "flow": "flow_intensity", "difference": "difference_intensity"}


def _curve_columns(clips):
    has_truth = any(c.get("true_intensity") is not None for c in clips)
    return {**CURVE_COLUMNS, **(TRUTH_COLUMNS if has_truth else {})}


def _prediction_rows(clips, class_names):
    curves = _curve_columns(clips)
    rows = []
    for clip in clips:
        row = {k: clip[k] for k in ("fold", "subject", "clip_id", "label", "pred", "apex")}
        row["label_name"] = class_names[clip["label"]]
        row["pred_name"] = class_names[clip["pred"]]
        row["correct"] = int(clip["label"] == clip["pred"])
        row.update({f"prob_{name}": round(p, 6) for name, p in zip(class_names, clip["probs"])})
        row.update({k: clip.get(k) for k in ("rho", "abs_z", "rho_true")})
        for prefix, key in curves.items():
            row.update({f"{prefix}_{t + 1}": v for t, v in enumerate(clip.get(key) or [])})
        rows.append(row)
    return rows


def _prediction_fields(class_names, clips):
    """The columns of predictions.csv: ids, label and prediction, probabilities, tendency, then the curves."""
    curves = _curve_columns(clips)
    frames = max((len(c["intensity"]) for c in clips), default=0)
    tendency = ["rho", "abs_z"] + (["rho_true"] if "true" in curves else [])
    return (["fold", "subject", "clip_id", "label", "label_name", "pred", "pred_name", "correct", "apex"]
            + [f"prob_{name}" for name in class_names] + tendency
            + [f"{prefix}_{t + 1}" for prefix in curves for t in range(frames)])


def write_fold_result(fold_dir, result, class_names):
    """Writes a finished fold: predictions.csv, training_curves.png, intensity.png, result.json (last).

    Args:
        fold_dir: the fold's folder in the run directory.
        result: its `records.FoldResult`.
        class_names: names of the label ids.
    """
    fold_dir = Path(fold_dir)
    write_csv(fold_dir / "predictions.csv", _prediction_rows(result.predictions, class_names),
              _prediction_fields(class_names, result.predictions))
    title = f"fold {result.fold} (subject {result.subject})"
    plot_training_curves(result.history, fold_dir / "training_curves.png", title=title)
    plot_intensity_curves(result.predictions[:6], class_names, fold_dir / "intensity.png")
    write_json(fold_dir / RESULT_FILE, result.to_json())


def load_fold_results(run_dir):
    """The finished folds of a run directory (`records.FoldResult`), sorted by fold number."""
    paths = sorted(Path(run_dir).glob(f"folds/*/{RESULT_FILE}"))
    return sorted((FoldResult.from_json(json.loads(p.read_text())) for p in paths), key=lambda r: r.fold)


def _label_pairs(fold_results, dataset=None):
    """(labels, predictions) per fold, of the clips of `dataset` only if given (folds without any left out)."""
    pairs = []
    for result in fold_results:
        clips = [c for c in result.predictions if dataset is None or c.get("dataset") == dataset]
        if clips:
            pairs.append(([c["label"] for c in clips], [c["pred"] for c in clips]))
    return pairs


def summarize(fold_results, num_classes):
    """Both protocols and the tendency over the given fold results (see `cmnet_keras.metrics`).

    Clips of a composite (with a `dataset`) are also scored per dataset in
    `per_dataset`: {dataset: {"paper", "pooled"}}, as the MEGC 2019 challenge reports them.
    """
    pairs = _label_pairs(fold_results)
    clips = [c for r in fold_results for c in r.predictions]
    scores = {"paper": metrics.paper_protocol(pairs, num_classes), "pooled": metrics.pooled_protocol(pairs),
              "tendency": metrics.tendency_summary([c for c in clips if "rho" in c])}
    truth = metrics.truth_summary(clips)
    if truth:
        scores["truth"] = truth
    datasets = sorted({c["dataset"] for c in clips if "dataset" in c})
    if datasets:
        scores["per_dataset"] = {
            d: {"paper": metrics.paper_protocol(_label_pairs(fold_results, d), num_classes),
                "pooled": metrics.pooled_protocol(_label_pairs(fold_results, d))} for d in datasets}
    return scores


def summarize_run(fold_results, class_names, all_subjects, notes=None):
    """The final results of a (possibly partial) LOSO run, a `records.RunResult`.

    Args:
        fold_results: finished `records.FoldResult`s (`load_fold_results`).
        class_names: names of the label ids.
        all_subjects: every subject of the dataset, to tell whether LOSO is complete.
        notes: JSON-able dict added to results.json (e.g. the lambdas of a loss ablation).
    """
    done = [r.subject for r in fold_results]
    clips = [c for r in fold_results for c in r.predictions]
    matrix = metrics.confusion_matrix([c["label"] for c in clips], [c["pred"] for c in clips], len(class_names))
    return RunResult(**summarize(fold_results, len(class_names)), class_names=list(class_names),
                     complete=sorted(done) == sorted(all_subjects),
                     missing_subjects=[s for s in all_subjects if s not in done], folds=list(fold_results),
                     confusion_matrix=matrix.tolist(), notes=dict(notes or {}))


def write_summary(out_dir, run):
    """Writes the final results of a run (`summarize_run`) into `out_dir`.

    Files: results.json, results.csv (protocol, metric, value), folds.csv (one
    row per fold), predictions.csv (every test clip), confusion_matrix.png,
    intensity.png (a few test clips, one per fold).
    """
    out_dir = Path(out_dir)
    clips = [c for r in run.folds for c in r.predictions]
    results = run.to_json()
    write_json(out_dir / "results.json", results)
    write_csv(out_dir / "folds.csv", results["folds"], fold_row_fields(run.truth_fields))
    rows = [{"protocol": p, "metric": m, "value": v} for p in ("paper", "pooled", "tendency", "truth")
            for m, v in getattr(run, p).items()]
    rows += [{"protocol": f"{p}/{d}", "metric": m, "value": v} for d, by in run.per_dataset.items()
             for p in ("pooled", "paper") for m, v in by[p].items()]
    write_csv(out_dir / "results.csv", rows, ["protocol", "metric", "value"])
    write_csv(out_dir / "predictions.csv", _prediction_rows(clips, run.class_names),
              _prediction_fields(run.class_names, clips))
    plot_confusion_matrix(run.confusion_matrix, run.class_names, out_dir / "confusion_matrix.png",
                          title=f"LOSO, {len(run.folds)} folds, {len(clips)} clips")
    plot_intensity_curves([r.predictions[0] for r in run.folds[:8]], run.class_names, out_dir / "intensity.png")


def format_summary(run):
    """A `records.RunResult` as text: one line per protocol, per dataset of a composite and for the tendency of k.

    A composite's summary comes first, with what was not found counted (the
    ids were printed when it was built).
    """
    paper, pooled, tendency = run.paper, run.pooled, run.tendency
    setting = f"; tendency {run.notes['tendency_setting']}" if "tendency_setting" in run.notes else ""
    f1_all = f" / F1 over all classes {100 * paper['f1_all']:.2f}" if "f1_all" in paper else ""
    per_dataset = "".join(
        f"  {d} ({by['pooled']['n']} clips): UF1 {100 * by['pooled']['uf1']:.2f} / UAR {100 * by['pooled']['uar']:.2f}"
        f" / Acc {100 * by['pooled']['accuracy']:.2f}; paper protocol ({by['paper']['num_folds']} folds) Acc "
        f"{100 * by['paper']['accuracy']:.2f} / F1 {100 * by['paper']['f1']:.2f}\n"
        for d, by in run.per_dataset.items())
    composite = f"{format_composite(run.notes['composite'])}\n" if "composite" in run.notes else ""
    return composite + (
        f"paper protocol ({paper['num_folds']} folds): Acc {100 * paper['accuracy']:.2f} / "
        f"F1 {100 * paper['f1']:.2f} (classes present){f1_all}\n"
        f"pooled protocol ({pooled['n']} clips): Acc {100 * pooled['accuracy']:.2f} / "
        f"UF1 {100 * pooled['uf1']:.2f} / UAR {100 * pooled['uar']:.2f}\n{per_dataset}"
        f"tendency of k ({tendency['n']} clips{setting}): Spearman rho {tendency['rho']:.3f} "
        f"({tendency['rho_undefined']} clips with constant k), rank-sum |Z| {tendency['abs_z']:.2f}"
        + (f"\n{format_truth(run.truth)}" if run.truth else "")
    )


def format_truth(truth):
    """One line: ρ_true and the amplitude agreement of k beside the prototype's and the references'."""
    def pair(name):
        return f"{truth[f'rho_true_{name}']:.3f} / {truth[f'amplitude_{name}']:.3f}"

    references = ", ".join(f"{label} {pair(name)}" for name, label in
                           (("prototype", "prototype"), ("flow", "optical flow"),
                            ("frame_difference", "frame difference")) if f"rho_true_{name}" in truth)
    return (f"true intensity ({truth['n']} clips), rho_true / amplitude agreement: learned k {pair('k')}; "
            f"references: {references}")


def _save(fig, path):
    with files.atomic_path(path, suffix=".png") as temp:
        fig.savefig(temp, dpi=100)


def plot_confusion_matrix(matrix, class_names, path, title=""):
    """Confusion matrix (rows true, columns predicted) with counts and row-normalised shading."""
    matrix = np.asarray(matrix)
    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = 1.2 + 0.9 * len(class_names)
    fig = Figure(figsize=(size + 1, size))
    ax = fig.subplots()
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center",
                    color="white" if rates[i, j] > 0.5 else "black")
    ticks = np.arange(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=45, ha="right")
    ax.set_yticks(ticks, class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="fraction of true class")
    fig.tight_layout()
    _save(fig, path)


def plot_intensity_curves(clips, class_names, path):
    """Fig. 5 style grid: prototype mean vs learned intensity k over the frames, one panel per clip,
    titled with the clip's Spearman rho and rank-sum |Z| (`metrics.clip_tendency`); where the clip
    has a true intensity, that curve too (scaled to peak 1) and the title gives k's rho_true."""
    cols = min(3, max(len(clips), 1))
    rows = max(1, -(-len(clips) // cols))
    fig = Figure(figsize=(4 * cols, 2.8 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat[len(clips):]:
        ax.axis("off")
    for ax, clip in zip(axes.flat, clips):
        frames = np.arange(1, len(clip["intensity"]) + 1)
        ax.plot(frames, clip["prototype"], "o--", color="tab:gray", label="prototype")
        ax.plot(frames, clip["intensity"], "o-", color="tab:red", label="learned k")
        if clip.get("true_intensity") is not None:
            true = np.asarray(clip["true_intensity"])
            ax.plot(frames, true / max(true.max(), 1e-12), "s-", ms=3, color="tab:green", label="true (peak 1)")
        ax.axvline(clip["apex"] + 1, color="tab:blue", lw=0.8, ls=":", label="apex")
        tendency = f", rho {clip['rho']:.2f}, |Z| {clip['abs_z']:.2f}" if "rho" in clip else ""
        tendency += f", rho_true {clip['rho_true']:.2f}" if "rho_true" in clip else ""
        ax.set_title(f"{clip['subject']}/{clip['clip_id']}: true {class_names[clip['label']]}, "
                     f"pred {class_names[clip['pred']]}\n{tendency.lstrip(', ')}", fontsize=8)
        ax.set_xlabel("frame")
        ax.set_ylabel("intensity")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if clips:
        axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)


def plot_training_curves(history, path, title=""):
    """One panel per curve (total loss, L_ID, L_Wrst, L_C, accuracy) over the epochs; validation dashed.

    CMNet computes no views in evaluation (val_id_loss = 0), so validation is
    drawn only for the terms that are comparable: L_Wrst, L_C and accuracy.
    """
    keys = [k for k in (*LOSS_KEYS, "accuracy") if history.get(k)]
    fig = Figure(figsize=(3.2 * max(len(keys), 1), 3))
    axes = fig.subplots(1, max(len(keys), 1), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        epochs = np.arange(1, len(history[key]) + 1)
        ax.plot(epochs, history[key], "o-", ms=3, label="train")
        if key not in ("loss", "id_loss") and history.get(f"val_{key}"):
            ax.plot(epochs, history[f"val_{key}"], "o--", ms=3, label="validation")
        ax.set_title(key)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)


def plot_clip_intensity(intensity, path, title="", apex=None):
    """The intensity curve k of one predicted clip over its timeline frames."""
    frames = np.arange(1, len(intensity) + 1)
    fig = Figure(figsize=(6, 3.2))
    ax = fig.subplots()
    ax.plot(frames, intensity, "o-", color="tab:red", label="intensity k")
    if apex is not None:
        ax.axvline(apex + 1, color="tab:blue", lw=0.8, ls=":", label="apex (motion estimate)")
    ax.set_xticks(frames)
    ax.set_xlabel("frame (timeline)")
    ax.set_ylabel("intensity k")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)


def confident_windows(rows, count=3):
    """The `count` most confident windows with a face that do not overlap a more confident one."""
    chosen = []
    for row in sorted((r for r in rows if r.get("confidence") is not None), key=lambda r: -r["confidence"]):
        if all(row["end_frame"] < c["start_frame"] or row["start_frame"] > c["end_frame"] for c in chosen):
            chosen.append(row)
    return chosen[:count]


def plot_timeline(rows, class_names, path, title="", seconds=True, marked=3):
    """Class probabilities (top) and peak intensity k (bottom) of sliding windows over time.

    Each window is drawn at its centre (seconds, or frames when `seconds` is
    False). A window without a face is a grey band reaching halfway to its
    neighbours' centres, with a grey x at 0 and no points; the `marked` most
    confident non-overlapping windows are shaded over their frames in their
    class's colour and labelled with class, probability and frames.

    Args:
        rows: `cmnet_keras.inference.timeline_row` dicts (no "confidence" without a face).
        class_names: names of the probability columns.
        path: the PNG to write.
    """
    def span(row):
        return (row["start_s"], row["end_s"]) if seconds else (row["start_frame"], row["end_frame"] + 1)

    def values(key):
        return np.array([np.nan if r.get(key) is None else r[key] for r in rows], float)

    centres = np.array([sum(span(r)) / 2 for r in rows])
    bounds = np.concatenate([[span(rows[0])[0]], (centres[1:] + centres[:-1]) / 2, [span(rows[-1])[1]]])
    no_face = np.array([r.get("confidence") is None for r in rows])
    colours = {name: f"C{k}" for k, name in enumerate(class_names)}
    fig = Figure(figsize=(10, 5.5))
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(2, 1))
    for k in np.flatnonzero(no_face):
        for ax in (top, bottom):
            ax.axvspan(bounds[k], bounds[k + 1], color="0.88", lw=0, zorder=0)
    if no_face.any():
        top.plot(centres[no_face], np.zeros(no_face.sum()), "x", color="0.5", label="no face")
    for name in class_names:
        top.plot(centres, values(f"prob_{name}"), "o-", ms=3, color=colours[name], label=name)
    chosen = sorted(confident_windows(rows, marked), key=lambda r: r["start_frame"])
    for number, row in enumerate(chosen):
        start, end = span(row)
        for ax in (top, bottom):
            ax.axvspan(start, end, color=colours[row["class"]], alpha=0.15, lw=0)
        top.annotate(f"{row['class']} {row['confidence']:.2f}\nframes {row['start_frame']}-{row['end_frame']}",
                     ((start + end) / 2, row["confidence"]), xytext=(0, 4 + 22 * (number % 2)),
                     textcoords="offset points", ha="center", fontsize=7)
    top.set_ylim(0, 1.35)
    top.set_yticks(np.linspace(0, 1, 6))
    top.set_ylabel("probability")
    top.set_title(title, fontsize=9)
    top.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    bottom.plot(centres, values("intensity_peak"), "o-", ms=3, color="tab:red")
    bottom.set_ylabel("peak intensity k")
    bottom.set_xlabel("window centre (s)" if seconds else "window centre (frame)")
    fig.tight_layout()
    _save(fig, path)
