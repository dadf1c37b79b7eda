"""Leave-One-Subject-Out training and evaluation of CMNet: the fold loop.

Every fold trains for a fixed number of epochs and is then tested once on its
held-out subject: nothing (epoch, model) is chosen on the test subject. An
optional validation split comes from training subjects only and is just reported.

Resume: `run_loso` into an existing run directory continues after the last
checkpointed epoch of the unfinished fold; finished folds are never redone;
other settings are refused (`run_dir`). The initial weights derive from
(seed, fold), the training data order from (seed, fold, epoch), and the model's
random-generator states are checkpointed with the weights, so a resumed run
equals an uninterrupted one.
"""

import contextlib
import dataclasses
import random
import shutil
import time
from pathlib import Path

import keras
import numpy as np
from sklearn.utils.class_weight import compute_class_weight

from cmnet_keras import distribute, metrics, reports
from cmnet_keras.config import describe_tendency, tendency_setting
from cmnet_keras.data import intensity_reference
from cmnet_keras.data.cache import cache_fingerprint, load_clip, read_index, read_true_intensity
from cmnet_keras.data.cache_fit import check_config_fits
from cmnet_keras.data.folds import fold_seed, fold_subjects, loso_folds
from cmnet_keras.data.inputs import epoch_steps, make_epochs_dataset
from cmnet_keras.models import build_cmnet
from cmnet_keras.records import MIXED_PRECISIONS, FoldResult, RunOptions
from cmnet_keras.training import run_dir
from cmnet_keras.training.progress import RunEstimate, format_duration

FINAL_MODEL_FILE = "model.keras"
PRECISIONS = dict(zip(MIXED_PRECISIONS, ("float32", "mixed_float16", "mixed_bfloat16")))


def parse_folds(spec, num_folds):
    """Fold numbers from "0-12", "3", "0,2,5-7" (0-based, in `fold_subjects` order); None = all."""
    if spec is None:
        return list(range(num_folds))
    numbers = []
    for part in str(spec).split(","):
        try:
            first, _, last = part.strip().partition("-")
            numbers.extend(range(int(first), int(last or first) + 1))
        except ValueError:
            raise ValueError(f"--folds: cannot read {part!r} in {spec!r}; use e.g. 0-12 or 0,3,5-7") from None
    bad = [n for n in numbers if not 0 <= n < num_folds]
    if bad or not numbers:
        raise ValueError(f"--folds {spec!r}: fold numbers must be in 0..{num_folds - 1}, got {bad or numbers}")
    return sorted(set(numbers))


def config_for_cache(config, cache_dir):
    """The config with the cache's classes; `cache_fit.CacheMismatchError` if frames or image size differ."""
    meta = check_config_fits(config, cache_dir)
    return config.replace(class_names=tuple(meta["class_names"]), num_classes=len(meta["class_names"]))


def reuse_compiled(fresh, compiled):
    """`compiled` (a built and trained CMNet of the same config) set to the state of `fresh`.

    Copies every model variable (weights, random-generator states) and every
    optimizer variable (slots, iteration count) from the just-built `fresh`.
    `compiled` keeps its traced train and predict functions, so the next fold
    starts without tracing them again (2-5 s a fold at the demo size) and
    trains exactly as `fresh` would.
    """
    for source, target in ((fresh.variables, compiled.variables),
                           (fresh.optimizer.variables, compiled.optimizer.variables)):
        if [(tuple(v.shape), v.dtype) for v in source] != [(tuple(v.shape), v.dtype) for v in target]:
            raise ValueError("reuse_compiled: the two models' variables differ; build both from one config")
        for src, dst in zip(source, target):
            dst.assign(src)
    return compiled


def _to_numpy(value):
    return np.asarray(keras.ops.convert_to_numpy(value), dtype=np.float32)


def truth_curves(cache_dir, files):
    """Per clip of `files`: {} without a stored true intensity, else the true curve and the non-learned
    references on its cached frames (`data.intensity_reference`), each [N] rounded as stored."""
    curves = []
    for file, truth in zip(files, read_true_intensity(cache_dir, files)):
        if truth is None:
            curves.append({})
            continue
        frames = load_clip(cache_dir, file)["frames"]
        curves.append({"true_intensity": truth.round(6).tolist(),
                       "flow_intensity": intensity_reference.flow_intensity(frames).round(6).tolist(),
                       "difference_intensity": intensity_reference.difference_intensity(frames).round(6).tolist()})
    return curves


def predict_fold(model, fold, fold_number, cache_dir):
    """Per-clip predictions on the held-out subject: label, pred, probs, k and prototype curves,
    the tendency of k (`metrics.clip_tendency`: ρ, |Z|) and, where the cache has it, the true
    intensity with the references (`truth_curves`) and ρ_true of k (`metrics.spearman_rho`)."""
    outputs = model.predict(fold.test, verbose=0)
    probs, intensity = _to_numpy(outputs["probs"]), _to_numpy(outputs["intensity"])
    index = fold.test_index
    if len(probs) != len(index):
        raise RuntimeError(f"fold {fold_number}: {len(probs)} predictions for {len(index)} test clips")
    apex = index["apex"].to_numpy(dtype=np.int32)
    prototype = _to_numpy(model.intensity_prototype(keras.ops.convert_to_tensor(apex)))
    intensity, prototype = intensity.round(6), prototype.round(6)  # as stored: the tendency is reproducible from them
    clips = []
    truths = truth_curves(cache_dir, index["file"].tolist())
    for i, row in enumerate(index.itertuples(index=False)):
        dataset = {"dataset": row.dataset} if "dataset" in index.columns else {}  # a composite's clip
        clips.append({
            "fold": fold_number, "subject": row.subject, "clip_id": row.clip_id, **dataset, "label": int(row.label),
            "pred": int(np.argmax(probs[i])), "probs": probs[i].round(6).tolist(), "apex": int(row.apex),
            "apex_source": row.apex_source, "intensity": intensity[i].tolist(),
            "prototype": prototype[i].tolist(), **metrics.clip_tendency(intensity[i], prototype[i]), **truths[i],
        })
        if truths[i]:
            clips[-1]["rho_true"] = metrics.spearman_rho(intensity[i], truths[i]["true_intensity"])
    return clips


def train_fold(fold, fold_number, fold_dir, cache_dir, config, options=RunOptions(), *, tf_strategy=None,
               compiled=None, resume_from=None, callbacks=()):
    """Trains one fold for `config.epochs` epochs (resuming from its checkpoint) and tests it.

    The remaining epochs run in one `fit` call on `fold.train`, which holds
    them (`loso_folds(..., epochs=range(checkpointed epoch, config.epochs),
    min_batch=R)`, as `run_loso` builds it); a checkpoint is saved every
    `options.checkpoint_every` epochs and after the last. Under a strategy of R replicas
    an epoch's last batch of fewer than R clips is dropped, so that no replica
    trains on an empty batch.

    With `options.class_weight="balanced"` each training clip's L_C is weighted by
    `balanced_class_weight` of the fold's training labels (`CMNet.compute_loss`:
    L_ID and L_Wrst stay unweighted); the weights go into the fold result.

    Args:
        fold: a `LOSOFold` whose `train` holds the epochs left to train.
        fold_number: its number (seeds derive from it).
        fold_dir: the fold's folder in the run directory.
        cache_dir: the preprocessed cache.
        config: CMNetConfig.
        options: the `records.RunOptions` of the run (its verbose, checkpoint_every and class_weight).
        tf_strategy: the tf.distribute strategy of `options.strategy`, or None.
        compiled: dict from steps per epoch to a model of an earlier fold of the
            same run, reused (`reuse_compiled`) instead of traced again; the
            fold's model is added to it.
        resume_from: the fold folder whose checkpoint is resumed (default `fold_dir`;
            on a worker other than the chief, the chief's).
        callbacks: more Keras callbacks for `fit` (e.g. `progress.RunEstimate`).

    Returns:
        the `records.FoldResult` (also written to `fold_dir`).
    """
    fold_dir = Path(fold_dir)
    replicas = 1 if tf_strategy is None else tf_strategy.num_replicas_in_sync
    steps_per_epoch = epoch_steps(len(fold.train_index), config.batch_size, replicas)
    seed_python(fold_seed(config.seed, fold_number, 0))
    with distribute.strategy_scope(tf_strategy):
        model, state = run_dir.load_epoch_checkpoint(fold_dir if resume_from is None else resume_from)
        if model is None:
            model = build_cmnet(config, steps_per_epoch=steps_per_epoch)
            if compiled is not None and steps_per_epoch in compiled:
                model = reuse_compiled(model, compiled[steps_per_epoch])
    if compiled is not None:
        compiled[steps_per_epoch] = model
    if state["epoch"]:
        print(f"  resuming after epoch {state['epoch']}/{config.epochs}", flush=True)
    weights = None if options.class_weight is None else balanced_class_weight(fold.train_index["label"])
    remaining = range(state["epoch"], config.epochs)
    if fold.epochs != remaining:
        raise ValueError(f"fold {fold_number}: its train holds epochs {fold.epochs}, the fold trains {remaining}: "
                         f"build it with loso_folds(..., epochs=range({state['epoch']}, {config.epochs}))")
    if remaining:
        model.fit(fold, initial_epoch=state["epoch"], epochs=config.epochs,
                  steps_per_epoch=steps_per_epoch, shuffle=False, verbose=options.verbose, class_weight=weights,
                  callbacks=[run_dir.EpochCheckpoint(fold_dir, state, options.checkpoint_every, config.epochs),
                             *callbacks])
    clips = predict_fold(model, fold, fold_number, cache_dir)
    scores = metrics.fold_scores([c["label"] for c in clips], [c["pred"] for c in clips], config.num_classes)
    tendency = metrics.tendency_summary(clips)
    truth = metrics.truth_summary(clips)
    result = FoldResult(fold=fold_number, subject=fold.subject, **scores, rho=tendency["rho"], abs_z=tendency["abs_z"],
                        truth={key: value for key, value in truth.items() if key != "n"}, epochs=config.epochs,
                        train_seconds=round(state["train_seconds"], 2), train_subjects=fold_subjects(fold.train_index),
                        eta=np.round(keras.ops.convert_to_numpy(model.prototype.eta), 6).tolist(),
                        class_weight=weights, history=state["history"], predictions=clips)
    reports.write_fold_result(fold_dir, result, config.class_names)
    return result


def balanced_class_weight(labels):
    """scikit-learn's "balanced" weights of a fold's training labels, {class: n / (k n_class)}
    over the k classes present (a class without training clips has no weight to set)."""
    labels = np.asarray(labels, dtype=np.int64)
    classes = np.unique(labels)
    weights = compute_class_weight("balanced", classes=classes, y=labels)
    return {int(c): float(w) for c, w in zip(classes, weights)}


def seed_python(seed):
    """Seeds Python's and NumPy's generators (Keras initialisers draw their seeds from Python's).

    TensorFlow's global seed is set once per run instead (`run_loso`): setting it
    clears TF's kernel cache, after which every fold would set up its reused
    train function again (2.6-5.5 s instead of 0.2-0.6 s for its first step).
    """
    random.seed(seed)
    np.random.seed(seed)


def check_precision(mixed_precision):
    """Raises ValueError unless `mixed_precision` is a key of `PRECISIONS`."""
    if mixed_precision not in PRECISIONS:
        raise ValueError(f"mixed_precision must be one of {tuple(PRECISIONS)}, got {mixed_precision!r}")


@contextlib.contextmanager
def dtype_policy(mixed_precision):
    """Sets the global Keras dtype policy of a run (`PRECISIONS`) and restores the previous one afterwards.

    "float16" (mixed_float16) trains with dynamic loss scaling (Keras wraps the
    optimizer in a `LossScaleOptimizer`); "bfloat16" (mixed_bfloat16) needs none.
    """
    check_precision(mixed_precision)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(PRECISIONS[mixed_precision])
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def run_loso(cache_dir, config, out, options=RunOptions()):
    """Runs (or resumes) LOSO training and evaluation into the run directory `out`.

    With `options.evaluate_on="validation"` (the tuner's nested objective) each fold is
    trained without its test subject and its validation subjects, and scored on
    the validation subjects: the test subject's clips are never read.

    With `options.hold_out="dataset"` (a composite cache, `cmnet_keras.data.composite`)
    a fold holds out every subject of one dataset and trains on the others: a
    cross-dataset run is the fold of its test dataset (`options.folds`), and is complete
    when the folds asked for are.

    Args:
        cache_dir: preprocessed cache (`cmnet_keras.preprocess`).
        config: CMNetConfig (its classes are taken from the cache, `sync_batchnorm` from the options'
            strategy: under any but "none" BatchNorm statistics are synchronised over the replicas, so N
            replicas train like one device).
        out: run directory.
        options: `records.RunOptions` (mixed_precision is the mixed policy of `dtype_policy`;
            class_weight: see `train_fold`).

    Returns:
        the `records.RunResult` over every finished fold of the run directory (on a worker
        other than the chief, over the folds this process trained).
    """
    evaluate_on, hold_out, validation_subjects = options.evaluate_on, options.hold_out, options.validation_subjects
    cache_dir = Path(cache_dir)
    config = config_for_cache(config, cache_dir).replace(sync_batchnorm=options.strategy != "none")
    subjects = fold_subjects(read_index(cache_dir), hold_out)
    numbers = list(range(len(subjects))) if options.folds is None else list(options.folds)
    tf_strategy = distribute.get_strategy(options.strategy)
    out = Path(out)
    written = distribute.output_dir(out, tf_strategy)  # a worker's: thrown away, the chief's run decides
    settings = {"config": config.to_dict(), "subjects": subjects, "cache_fingerprint": cache_fingerprint(cache_dir),
                "validation_subjects": validation_subjects, "mixed_precision": options.mixed_precision,
                "evaluate_on": evaluate_on, "class_weight": options.class_weight,
                **run_dir.data_settings(cache_dir, hold_out, subjects, numbers)}
    if written != out:
        run_dir.check_run_settings(out, settings)
    tendency = describe_tendency(config)
    run_dir.prepare_run_dir(written, settings, options.command or [], {"tendency": tendency})
    print(f"{'LOSO' if hold_out == 'subject' else 'cross-dataset'} on {cache_dir}: {len(subjects)} {hold_out}s, "
          f"running folds {numbers} into {written}; tendency {tendency}", flush=True)
    if tf_strategy is not None:
        print(f"strategy {options.strategy}: {tf_strategy.num_replicas_in_sync} replicas in sync", flush=True)

    def fold_dir(number, folder=out):
        return folder / "folds" / f"{number:02d}_{subjects[number].replace('/', '-')}"  # a composite's casme2/sub01

    pending = [n for n in numbers if not (fold_dir(n) / reports.RESULT_FILE).is_file()]
    if len(pending) < len(numbers):
        print(f"{len(numbers) - len(pending)} of the folds finished earlier are kept", flush=True)
    start = time.perf_counter()
    left = {subjects[n]: range(run_dir.read_epoch_state(fold_dir(n))["epoch"], config.epochs) for n in pending}
    folds_iter = loso_folds(cache_dir, batch_size=config.batch_size, seed=config.seed, subjects=list(left),
                            validation_subjects=validation_subjects, hold_out=hold_out, epochs=left,
                            min_batch=1 if tf_strategy is None else tf_strategy.num_replicas_in_sync)
    compiled = {}
    keras.utils.set_random_seed(config.seed)
    with dtype_policy(options.mixed_precision):
        for done, (number, fold) in enumerate(zip(pending, folds_iter), 1):
            if evaluate_on == "validation":
                fold = dataclasses.replace(fold, test=fold.validation, test_index=fold.validation_index,
                                           validation=None, validation_index=None)
            scored_names = fold.subject if evaluate_on == "test" else "+".join(sorted(set(fold.test_index["subject"])))
            scored = (f"test subject {fold.subject}" if evaluate_on == "test" else
                      f"validation subjects {scored_names} (test subject {fold.subject} left out)")
            print(f"[fold {done}/{len(pending)}] #{number}: {scored} ({len(fold.test_index)} clips), "
                  f"train {len(fold.train_index)} clips", flush=True)
            result = train_fold(fold, number, fold_dir(number, written), cache_dir, config, options,
                                tf_strategy=tf_strategy, compiled=compiled, resume_from=fold_dir(number),
                                callbacks=[RunEstimate(len(pending) - done)] if done == 1 else [])
            elapsed = time.perf_counter() - start
            print(f"[fold {done}/{len(pending)}] #{number} ({scored_names}): acc {100 * result.accuracy:.1f}% "
                  f"F1 {100 * result.f1:.1f}% on {result.n} clips | elapsed {format_duration(elapsed)}, "
                  f"ETA {format_duration(elapsed / done * (len(pending) - done))}", flush=True)

    notes = {"lambdas": list(config.lambdas), "lambda_ablation": config.lambda_ablation, "evaluate_on": evaluate_on,
             "tendency_setting": tendency_setting(config), **run_dir.data_notes(settings)}
    results = reports.summarize_run(reports.load_fold_results(written), config.class_names,
                                    run_dir.expected_folds(settings), notes)
    reports.write_summary(written, results)
    if written != out:
        shutil.rmtree(written, ignore_errors=True)
    if config.lambda_ablation:
        print(f"loss ablation: lambdas {config.lambdas} (the paper's Table 3 way: they do not sum to 1)", flush=True)
    print(reports.format_summary(results), flush=True)
    if not results.complete:
        print(f"{len(results.missing_subjects)} subjects not run yet: {results.missing_subjects}", flush=True)
    return results


def train_final_model(cache_dir, config, out, verbose=1):
    """Trains one model on every subject for `config.epochs` epochs and saves `<out>/model.keras`.

    This is the model to deploy (`cmnet_keras.export`, `cmnet_keras.predict`); it has no
    held-out subject, so its scores are the LOSO ones. An existing `model.keras` is kept.
    Its seeds are those of a fold numbered after the last (epoch e's clip order too, as a fold's).
    """
    path = Path(out) / FINAL_MODEL_FILE
    if path.is_file():
        print(f"final model {path} exists: kept", flush=True)
        return path
    config = config_for_cache(config, cache_dir)
    index = read_index(cache_dir)
    number = len(fold_subjects(index))  # the fold number after the last: seeds of its own
    keras.utils.set_random_seed(fold_seed(config.seed, number, 0))
    steps = epoch_steps(len(index), config.batch_size)
    model = build_cmnet(config, steps_per_epoch=steps)
    print(f"final model: training on all {len(index)} clips for {config.epochs} epochs", flush=True)
    data = make_epochs_dataset(cache_dir, index, config.batch_size,
                               [fold_seed(config.seed, number, 2, epoch) for epoch in range(config.epochs)])
    model.fit(data, epochs=config.epochs, steps_per_epoch=steps, shuffle=False, verbose=verbose)
    run_dir.save_model(model, path)
    print(f"final model saved to {path}", flush=True)
    return path
