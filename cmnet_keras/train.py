"""LOSO training and evaluation of CMNet: the main job.

    python -m cmnet_keras.train --preset demo --out runs/demo
    python -m cmnet_keras.train --cache caches/casme2 --preset paper --epochs 100 --out runs/casme2

Without `--cache` the embedded real-face dataset is generated and preprocessed
on first use (`<data-dir>/embedded`, `<data-dir>/embedded_cache`).

Every fold trains for a fixed number of epochs and is then tested once on its
held-out subject: nothing (epoch, model) is chosen on the test subject. An
optional validation split (`--validation-subjects K`) comes from training
subjects only and is just reported.

Run directory (`--out`):
    config.json                 settings (compared on resume), versions, command line
    folds/<NN>_<subject>/       epoch_<E>.keras + state.json (last checkpointed epoch),
                                result.json (marks the fold finished), predictions.csv,
                                training_curves.png, intensity.png
    results.json, results.csv   both protocols; folds.csv, predictions.csv,
                                confusion_matrix.png, intensity.png

Resume: rerunning the same command continues after the last checkpointed
epoch (`--checkpoint-every`) of the unfinished fold; finished folds are never
redone; other settings are refused. The initial weights derive from (seed,
fold), the training data order from (seed, fold, epoch), and the model's
random-generator states are checkpointed with the weights, so a resumed run
equals an uninterrupted one.
"""

import argparse
import dataclasses
import hashlib
import importlib.metadata
import json
import platform
import sys
import time
from pathlib import Path

import keras
import numpy as np

from cmnet_keras import distribute, metrics, reports
from cmnet_keras.config import PRESETS, SAMPLERS, get_config
from cmnet_keras.data.folds import fold_seed, fold_subjects, loso_folds

STATE_FILE = "state.json"
CONFIG_FILE = "config.json"
FINAL_MODEL_FILE = "model.keras"
VERSION_PACKAGES = ("keras", "tensorflow", "tensorflow-cpu", "jax", "torch", "numpy", "pandas",
                    "scikit-learn", "mediapipe", "cmnet-keras")


class ConfigMismatchError(ValueError):
    """A run directory holds a run made with other settings."""


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


def cache_fingerprint(cache_dir):
    """sha256 of the cache's meta and index content: equal caches on other machines match."""
    from cmnet_keras.data.cache import read_index, read_meta

    index = read_index(cache_dir).sort_values("file").reset_index(drop=True)
    payload = json.dumps(read_meta(cache_dir), sort_keys=True) + index.to_csv(index=False)
    return hashlib.sha256(payload.encode()).hexdigest()


def package_versions():
    """Python, platform, Keras backend and the versions of the installed relevant packages."""
    versions = {"python": platform.python_version(), "platform": platform.platform(),
                "keras_backend": keras.backend.backend()}
    for name in VERSION_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


def ensure_embedded_cache(image_size, num_frames, data_dir="data", seed=0):
    """The embedded real-face dataset, generated and preprocessed on first use.

    Generation restarts if it was interrupted (the sheet is written last);
    preprocessing resumes, skipping clips already cached.

    Returns:
        the cache folder `<data_dir>/embedded_cache` (`embedded_cache_<S>px` for an
        image size other than the demo preset's).
    """
    from cmnet_keras.data.embedded import generate_embedded_dataset
    from cmnet_keras.data.readers import read_dataset
    from cmnet_keras.preprocess import preprocess_dataset

    data_dir = Path(data_dir)
    root = data_dir / "embedded"
    suffix = "" if image_size == PRESETS["demo"]["image_size"] else f"_{image_size}px"
    cache = data_dir / f"embedded_cache{suffix}"
    if not any(root.glob("CASME2-coding-*")):
        print(f"Generating the embedded dataset into {root} ...", flush=True)
        generate_embedded_dataset(root, seed=seed, overwrite=True, verbose=True)
    spec = read_dataset("casme2", root)
    report = preprocess_dataset(spec, cache, image_size=image_size, num_frames=num_frames)
    if report.processed or report.failed:
        print(report.summary(), flush=True)
    return cache


def config_for_cache(config, cache_dir):
    """The config with the cache's classes; errors if frames or image size differ from the cache."""
    from cmnet_keras.data.cache import read_meta

    meta = read_meta(cache_dir)
    for key in ("num_frames", "image_size"):
        if int(meta[key]) != getattr(config, key):
            raise ValueError(
                f"cache {cache_dir} has {key}={meta[key]} but the config has {key}={getattr(config, key)}; "
                f"use a matching --preset or preprocess the dataset again"
            )
    return config.replace(class_names=tuple(meta["class_names"]), num_classes=len(meta["class_names"]))


def settings_differences(saved, current, labels=("run", "now"), prefix=""):
    """"name: a (label0) != b (label1)" for every field that differs between two settings dicts."""
    differences = []
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key), current.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            differences += settings_differences(a, b, labels, prefix=f"{prefix}{key}.")
        elif a != b:
            differences.append(f"{prefix}{key}: {a!r} ({labels[0]}) != {b!r} ({labels[1]})")
    return differences


def check_settings(saved, current, message, labels=("run", "now")):
    """Raises ConfigMismatchError with `message` and every differing field."""
    differences = settings_differences(saved, current, labels)
    if differences:
        raise ConfigMismatchError(message + "\n  " + "\n  ".join(differences))


def prepare_run_dir(out, settings, command):
    """Creates the run directory and config.json, or checks an existing run's settings."""
    out = Path(out)
    path = out / CONFIG_FILE
    if path.is_file():
        check_settings(json.loads(path.read_text())["settings"], settings,
                       f"{out} holds a run with other settings; resume it with the same ones or use another --out.")
        return
    out.mkdir(parents=True, exist_ok=True)
    reports.write_json(path, {"settings": settings, "versions": package_versions(), "command": command})


def _seed_states(model):
    # `.keras` files do not hold the states of keras.random.SeedGenerator objects.
    return [v for v in model.variables if v.name == "seed_generator_state"]


def save_epoch_checkpoint(model, fold_dir, state):
    """Saves the model (weights, optimizer state) as `epoch_<E>.keras`, then `state` (finished epochs,
    history, time, RNG states, checkpoint name), then removes the older checkpoint.

    state.json is written last and atomically: a run killed at any point resumes
    from a consistent (checkpoint, state) pair.
    """
    name = f"epoch_{state['epoch']:03d}.keras"
    model.save(fold_dir / name)
    state["checkpoint"] = name
    state["seed_states"] = [keras.ops.convert_to_numpy(v).tolist() for v in _seed_states(model)]
    reports.write_json(fold_dir / STATE_FILE, state)
    for old in fold_dir.glob("epoch_*.keras"):
        if old.name != name:
            old.unlink()


class EpochCheckpoint(keras.callbacks.Callback):
    """Records each epoch's logs and time in `state`; saves the fold checkpoint every
    `every` epochs and after the last one (`save_epoch_checkpoint`)."""

    def __init__(self, fold_dir, state, every, total_epochs):
        super().__init__()
        self.fold_dir, self.state, self.every, self.total_epochs = fold_dir, state, every, total_epochs
        self._start = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.state["train_seconds"] += time.perf_counter() - self._start
        for key, value in (logs or {}).items():
            self.state["history"].setdefault(key, []).append(float(value))
        self.state["epoch"] = epoch + 1
        if (epoch + 1) % self.every == 0 or epoch + 1 == self.total_epochs:
            save_epoch_checkpoint(self.model, self.fold_dir, self.state)


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


def _restore_or_build(fold_dir, config, steps_per_epoch, compiled=None):
    """(model, state): the last epoch checkpoint of the fold, else a new model and an empty state.

    A new model is built from the current global seed; `compiled` (a model of an
    earlier fold with the same config and steps per epoch) is reused with its state.
    """
    from cmnet_keras.models import build_cmnet

    state_path = fold_dir / STATE_FILE
    if state_path.is_file():
        state = json.loads(state_path.read_text())
        model = keras.models.load_model(fold_dir / state["checkpoint"])
        for variable, value in zip(_seed_states(model), state["seed_states"], strict=True):
            variable.assign(np.asarray(value, dtype=variable.dtype))
        return model, state
    model = build_cmnet(config, steps_per_epoch=steps_per_epoch)
    if compiled is not None:
        model = reuse_compiled(model, compiled)
    return model, {"epoch": 0, "history": {}, "train_seconds": 0.0}


def _to_numpy(value):
    return np.asarray(keras.ops.convert_to_numpy(value), dtype=np.float32)


def predict_fold(model, fold, fold_number):
    """Per-clip predictions on the held-out subject: label, pred, probs, k and prototype curves."""
    outputs = model.predict(fold.test, verbose=0)
    probs, intensity = _to_numpy(outputs["probs"]), _to_numpy(outputs["intensity"])
    index = fold.test_index
    apex = index["apex"].to_numpy(dtype=np.int32)
    prototype = _to_numpy(model.intensity_prototype(keras.ops.convert_to_tensor(apex)))
    if len(probs) != len(index):
        raise RuntimeError(f"fold {fold_number}: {len(probs)} predictions for {len(index)} test clips")
    clips = []
    for i, row in enumerate(index.itertuples(index=False)):
        clips.append({
            "fold": fold_number, "subject": fold.subject, "clip_id": row.clip_id, "label": int(row.label),
            "pred": int(np.argmax(probs[i])), "probs": probs[i].round(6).tolist(), "apex": int(row.apex),
            "apex_source": row.apex_source, "intensity": intensity[i].round(6).tolist(),
            "prototype": prototype[i].round(6).tolist(),
        })
    return clips


def train_fold(fold, fold_number, fold_dir, cache_dir, config, strategy=None, verbose=1, checkpoint_every=5,
               compiled=None):
    """Trains one fold for `config.epochs` epochs (resuming from its checkpoint) and tests it.

    The remaining epochs run in one `fit` call; a checkpoint is saved every
    `checkpoint_every` epochs and after the last. A resumed fold redoes the
    epochs after its last checkpoint and gives the same result.

    Args:
        compiled: dict from steps per epoch to a model of an earlier fold of the
            same run, reused (`reuse_compiled`) instead of traced again; the
            fold's model is added to it.

    Returns:
        the fold result dict (also written to `fold_dir`).
    """
    from cmnet_keras.data.pipeline import make_epochs_dataset

    if checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be >= 1, got {checkpoint_every}")
    fold_dir.mkdir(parents=True, exist_ok=True)
    steps_per_epoch = -(-len(fold.train_index) // config.batch_size)
    keras.utils.set_random_seed(fold_seed(config.seed, fold_number, 0))
    with distribute.strategy_scope(strategy):
        model, state = _restore_or_build(fold_dir, config, steps_per_epoch,
                                         None if compiled is None else compiled.get(steps_per_epoch))
    if compiled is not None:
        compiled[steps_per_epoch] = model
    if state["epoch"]:
        print(f"  resuming after epoch {state['epoch']}/{config.epochs}", flush=True)
    if state["epoch"] < config.epochs:
        seeds = [fold_seed(config.seed, fold_number, 2, epoch) for epoch in range(state["epoch"], config.epochs)]
        train = make_epochs_dataset(cache_dir, fold.train_index, config.batch_size, seeds)
        model.fit(dataclasses.replace(fold, train=train), initial_epoch=state["epoch"], epochs=config.epochs,
                  steps_per_epoch=steps_per_epoch, shuffle=False, verbose=verbose,
                  callbacks=[EpochCheckpoint(fold_dir, state, checkpoint_every, config.epochs)])
    clips = predict_fold(model, fold, fold_number)
    scores = metrics.fold_scores([c["label"] for c in clips], [c["pred"] for c in clips])
    result = {"fold": fold_number, "subject": fold.subject, **scores, "epochs": config.epochs,
              "train_seconds": round(state["train_seconds"], 2), "history": state["history"], "predictions": clips}
    reports.write_fold_result(fold_dir, result, config.class_names)
    return result


def _duration(seconds):
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes // 60}h{minutes % 60:02d}m{seconds:02d}s" if minutes >= 60 else f"{minutes}m{seconds:02d}s"


def run_loso(cache_dir, config, out, folds=None, validation_subjects=0, strategy="none",
             mixed_precision=False, verbose=1, command=None, checkpoint_every=5):
    """Runs (or resumes) LOSO training and evaluation into the run directory `out`.

    Args:
        cache_dir: preprocessed cache (`cmnet_keras.preprocess`).
        config: CMNetConfig (its classes are taken from the cache).
        out: run directory.
        folds: fold numbers to run (None = all), see `parse_folds`.
        validation_subjects: training subjects per fold held out for validation curves.
        strategy: "none", "mirrored" or "multiworker" (`cmnet_keras.distribute`).
        mixed_precision: train with the "mixed_float16" policy.
        verbose: Keras progress bar mode (0 silent, 1 bar, 2 one line per epoch).
        command: the command line recorded in config.json.
        checkpoint_every: epochs between fold checkpoints (resume points).

    Returns:
        the final results dict over every finished fold of the run directory.
    """
    from cmnet_keras.data.cache import read_index

    cache_dir = Path(cache_dir)
    config = config_for_cache(config, cache_dir)
    subjects = fold_subjects(read_index(cache_dir))
    numbers = list(range(len(subjects))) if folds is None else list(folds)
    tf_strategy = distribute.get_strategy(strategy)
    distribute.set_mixed_precision(mixed_precision)
    worker = distribute.worker_id(tf_strategy)
    out = Path(out) if worker is None else Path(out) / "workers" / worker
    settings = {"config": config.to_dict(), "subjects": subjects, "cache_fingerprint": cache_fingerprint(cache_dir),
                "validation_subjects": validation_subjects, "mixed_precision": bool(mixed_precision)}
    prepare_run_dir(out, settings, command or [])
    print(f"LOSO on {cache_dir}: {len(subjects)} subjects, running folds {numbers} into {out}", flush=True)
    if tf_strategy is not None:
        print(f"strategy {strategy}: {tf_strategy.num_replicas_in_sync} replicas in sync", flush=True)

    def fold_dir(number):
        return out / "folds" / f"{number:02d}_{subjects[number]}"

    pending = [n for n in numbers if not (fold_dir(n) / reports.RESULT_FILE).is_file()]
    if len(pending) < len(numbers):
        print(f"{len(numbers) - len(pending)} of the folds finished earlier are kept", flush=True)
    start = time.perf_counter()
    folds_iter = loso_folds(cache_dir, batch_size=config.batch_size, seed=config.seed,
                            subjects=[subjects[n] for n in pending], validation_subjects=validation_subjects)
    compiled = {}
    for done, (number, fold) in enumerate(zip(pending, folds_iter), 1):
        print(f"[fold {done}/{len(pending)}] #{number}: test subject {fold.subject} ({len(fold.test_index)} clips), "
              f"train {len(fold.train_index)} clips", flush=True)
        result = train_fold(fold, number, fold_dir(number), cache_dir, config, strategy=tf_strategy, verbose=verbose,
                            checkpoint_every=checkpoint_every, compiled=compiled)
        elapsed = time.perf_counter() - start
        print(f"[fold {done}/{len(pending)}] #{number} ({fold.subject}): acc {100 * result['accuracy']:.1f}% "
              f"F1 {100 * result['f1']:.1f}% on {result['n']} clips | elapsed {_duration(elapsed)}, "
              f"ETA {_duration(elapsed / done * (len(pending) - done))}", flush=True)

    results = reports.write_summary(out, reports.load_fold_results(out), config.class_names, subjects)
    print(reports.format_summary(results), flush=True)
    if not results["complete"]:
        print(f"{len(results['missing_subjects'])} subjects not run yet: {results['missing_subjects']}", flush=True)
    return results


def train_final_model(cache_dir, config, out, verbose=1):
    """Trains one model on every subject for `config.epochs` epochs and saves `<out>/model.keras`.

    This is the model to deploy (`cmnet_keras.export`, `cmnet_keras.predict`); it has no
    held-out subject, so its scores are the LOSO ones. An existing `model.keras` is kept.
    """
    from cmnet_keras.data.cache import read_index
    from cmnet_keras.data.pipeline import make_dataset
    from cmnet_keras.models import build_cmnet

    path = Path(out) / FINAL_MODEL_FILE
    if path.is_file():
        print(f"final model {path} exists: kept", flush=True)
        return path
    config = config_for_cache(config, cache_dir)
    index = read_index(cache_dir)
    keras.utils.set_random_seed(fold_seed(config.seed, len(fold_subjects(index)), 0))
    model = build_cmnet(config, steps_per_epoch=-(-len(index) // config.batch_size))
    print(f"final model: training on all {len(index)} clips for {config.epochs} epochs", flush=True)
    data = make_dataset(cache_dir, index=index, batch_size=config.batch_size, shuffle=True, seed=config.seed)
    model.fit(data, epochs=config.epochs, shuffle=False, verbose=verbose)
    model.save(path)
    print(f"final model saved to {path}", flush=True)
    return path


def add_training_arguments(parser):
    """The options shared by `cmnet_keras.train` and `cmnet_keras.ablation`."""
    parser.add_argument("--cache", help="preprocessed cache folder (default: the embedded dataset)")
    parser.add_argument("--data-dir", default="data", help="where the embedded dataset and its cache live")
    parser.add_argument("--preset", default="demo", choices=sorted(PRESETS), help="model size preset")
    parser.add_argument("--epochs", type=int, help="epochs per fold (default: the preset's)")
    parser.add_argument("--batch-size", type=int, help="global batch size (default: the preset's)")
    parser.add_argument("--learning-rate", type=float, help="initial learning rate (default: the preset's)")
    parser.add_argument("--sampler", choices=SAMPLERS, help="negative sampler of L_ID (Table 2)")
    parser.add_argument("--lambdas", type=float, nargs=3, metavar=("L_ID", "L_WRST", "L_C"),
                        help="loss weights of eq. 10, summing to 1 (Table 3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random draw and the data order")
    parser.add_argument("--folds", help="fold numbers to run, e.g. 0-12 (default: all)")
    parser.add_argument("--validation-subjects", type=int, default=0,
                        help="training subjects per fold used for validation curves (never the test subject)")
    parser.add_argument("--strategy", default="none", choices=distribute.STRATEGIES, help="tf.distribute strategy")
    parser.add_argument("--mixed-precision", action="store_true", help="mixed_float16 policy")
    parser.add_argument("--checkpoint-every", type=int, default=5, metavar="E",
                        help="save a resumable fold checkpoint every E epochs (and after the last)")
    parser.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2), help="Keras progress bar mode")
    return parser


def config_from_args(args):
    """CMNetConfig from the preset plus the given overrides."""
    overrides = {"seed": args.seed}
    for field, value in (("epochs", args.epochs), ("batch_size", args.batch_size),
                         ("learning_rate", args.learning_rate), ("sampler", args.sampler),
                         ("lambdas", args.lambdas)):
        if value is not None:
            overrides[field] = value
    return get_config(args.preset, **overrides)


def resolve_cache(args, config):
    """--cache, else the embedded dataset (generated and preprocessed on first use)."""
    if args.cache:
        if not Path(args.cache, "index.csv").is_file():
            raise FileNotFoundError(f"--cache {args.cache}: no index.csv; run cmnet_keras.preprocess first")
        return Path(args.cache)
    return ensure_embedded_cache(config.image_size, config.num_frames, args.data_dir)


def run_from_args(args, out, config, command, cache=None):
    """Runs LOSO for parsed arguments (shared with the ablation command) on `cache`
    (default: `resolve_cache`)."""
    from cmnet_keras.data.cache import read_index

    cache = cache or resolve_cache(args, config)
    folds = parse_folds(args.folds, len(fold_subjects(read_index(cache))))
    return run_loso(cache, config, out, folds=folds, validation_subjects=args.validation_subjects,
                    strategy=args.strategy, mixed_precision=args.mixed_precision, verbose=args.verbose,
                    command=command, checkpoint_every=args.checkpoint_every)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m cmnet_keras.train", description=__doc__.split("\n\n")[0])
    add_training_arguments(parser)
    parser.add_argument("--out", required=True, help="run directory (rerun the same command to resume)")
    parser.add_argument("--final-model", action="store_true",
                        help="after LOSO, also train on every subject and save <out>/model.keras for deployment")
    args = parser.parse_args(argv)
    command = [sys.executable, "-m", "cmnet_keras.train", *(sys.argv[1:] if argv is None else argv)]
    try:
        config = config_from_args(args)
    except ValueError as error:
        parser.error(str(error))
    try:
        cache = resolve_cache(args, config)
        run_from_args(args, args.out, config, command, cache)
        if args.final_model:
            train_final_model(cache, config, args.out, verbose=args.verbose)
    except (ConfigMismatchError, FileNotFoundError) as error:
        parser.exit(2, f"error: {error}\n")


if __name__ == "__main__":
    main()
