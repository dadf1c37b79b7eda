"""The run directory of a LOSO run: settings, epoch checkpoints and resume state.

    config.json                 settings (compared on resume), versions, command line
    folds/<NN>_<subject>/       epoch_<E>.keras + state.json (last checkpointed epoch),
                                result.json (marks the fold finished), predictions.csv, plots
    results.json, results.csv   the final tables (`cmnet_keras.reports`)

Every file is written atomically (`cmnet_keras.files`): a run killed at any
moment leaves the previous version of each file, never half of one.
"""

import importlib.metadata
import json
import platform
import time
from pathlib import Path

import keras
import numpy as np

from cmnet_keras import files
from cmnet_keras.data.composite import composite_summary

CONFIG_FILE = "config.json"
STATE_FILE = "state.json"
VERSION_PACKAGES = ("keras", "tensorflow", "tensorflow-cpu", "jax", "torch", "numpy", "pandas",
                    "scikit-learn", "mediapipe", "cmnet-keras")


class ConfigMismatchError(ValueError):
    """A run directory holds a run made with other settings."""


class RunDirError(ValueError):
    """A run directory's config.json or state.json is unreadable or not as this package writes it; names the
    file and the field."""


def _read_object(path, fields):
    """The JSON object in `path`, its `fields` ({key: (check, what it must be)}) checked.

    Raises:
        RunDirError: `path` is unreadable, not a JSON object, or a field fails its check (names it and its value).
    """
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as error:
        raise RunDirError(f"{path}: unreadable: {error}") from error
    if not isinstance(data, dict):
        raise RunDirError(f"{path}: expected a JSON object, got a {type(data).__name__}")
    for key, (check, what) in fields.items():
        if not check(data.get(key)):
            raise RunDirError(f"{path}: {key} must be {what}, got {json.dumps(data.get(key))[:80]}")
    return data


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_list(value, check):
    return isinstance(value, list) and all(map(check, value))


CONFIG_FIELDS = {"settings": (lambda v: isinstance(v, dict) and isinstance(v.get("config"), dict)
                              and _is_list(v.get("subjects"), lambda s: isinstance(s, str)),
                              "an object with config (an object) and subjects (a list of strings)")}
STATE_FIELDS = {  # and checkpoint, the file its epoch names
    "epoch": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "train_seconds": (lambda v: _is_number(v) and v >= 0, "a number >= 0"),
    "history": (lambda v: isinstance(v, dict) and all(_is_list(h, _is_number) for h in v.values()),
                "an object of lists of numbers"),
    "seed_states": (lambda v: _is_list(v, lambda state: _is_list(state, _is_int)), "a list of lists of integers"),
}


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


def read_settings(run_dir):
    """The settings recorded in a run directory's config.json."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run directory: no {CONFIG_FILE}")
    return _read_object(path, CONFIG_FIELDS)["settings"]


def data_settings(cache_dir, hold_out, subjects, numbers):
    """The settings a composite or cross-dataset run adds to a LOSO run's (none on one dataset's cache).

    They are the composite's summary (`cmnet_keras.data.composite`), and what
    is held out when it is not the subject.
    """
    extra = {}
    summary = composite_summary(cache_dir)
    if summary is not None:
        extra["composite"] = summary
    if hold_out != "subject":
        extra.update(hold_out=hold_out, held_out=[subjects[n] for n in numbers])
    return extra


def data_notes(settings):
    """The part of `data_settings` that goes into results.json."""
    return {key: settings[key] for key in ("composite", "hold_out", "held_out") if key in settings}


def expected_folds(settings):
    """The held-out groups a finished run has results for: every subject, or a cross-dataset run's datasets."""
    return settings.get("held_out", settings["subjects"])


def check_run_settings(out, settings):
    """Whether `out` holds a run (config.json); raises ConfigMismatchError if its settings differ."""
    out = Path(out)
    if not (out / CONFIG_FILE).is_file():
        return False
    check_settings(read_settings(out), settings,
                   f"{out} holds a run with other settings; resume it with the same ones or use another --out.")
    return True


def prepare_run_dir(out, settings, command, notes=None):
    """Creates the run directory and config.json, or checks an existing run's settings.

    `notes` ({name: text}, e.g. the tendency setting) go into config.json beside the settings and are not
    compared on resume. Also removes the temp files a killed run left behind.
    """
    out = Path(out)
    if check_run_settings(out, settings):
        files.remove_stale_temps(out)
        return
    path = out / CONFIG_FILE
    files.write_json(path, {"settings": settings, "versions": package_versions(), "command": command, **(notes or {})})


def _seed_states(model):
    # `.keras` files do not hold the states of keras.random.SeedGenerator objects.
    return [v for v in model.variables if v.name == "seed_generator_state"]


def save_model(model, path):
    """`model.save(path)` through a temp file: `path` is the old file or the whole new one."""
    with files.atomic_path(path, suffix=".keras") as temp:
        model.save(temp)


def save_epoch_checkpoint(model, fold_dir, state):
    """Saves the model (weights, optimizer state) as `epoch_<E>.keras`, then `state` (finished epochs,
    history, time, RNG states, checkpoint name), then removes the older checkpoint.

    The model is saved under a temp name and renamed; state.json is written last:
    a run killed at any point resumes from a consistent (checkpoint, state) pair.
    """
    fold_dir = Path(fold_dir)
    name = _checkpoint_name(state["epoch"])
    save_model(model, fold_dir / name)
    state["checkpoint"] = name
    state["seed_states"] = [keras.ops.convert_to_numpy(v).tolist() for v in _seed_states(model)]
    files.write_json(fold_dir / STATE_FILE, state)
    for old in fold_dir.glob("epoch_*.keras"):
        if old.name != name:
            old.unlink()


def _checkpoint_name(epoch):
    return f"epoch_{epoch:03d}.keras"


def read_epoch_state(fold_dir):
    """The state.json of the fold's last checkpoint, or a fresh state (epoch 0) if it has none.

    Raises:
        RunDirError: state.json is unreadable or not as `save_epoch_checkpoint` writes it (names the field).
    """
    path = Path(fold_dir) / STATE_FILE
    if not path.is_file():
        return {"epoch": 0, "history": {}, "train_seconds": 0.0}
    state = _read_object(path, STATE_FIELDS)
    if state["checkpoint"] != _checkpoint_name(state["epoch"]):
        raise RunDirError(f"{path}: checkpoint must be {_checkpoint_name(state['epoch'])} (its epoch's file beside "
                          f"it), got {json.dumps(state['checkpoint'])[:80]}")
    return state


def load_epoch_checkpoint(fold_dir):
    """(model, state) of the fold's last checkpoint, or (None, a fresh state) if it has none.

    The checkpoint is the `epoch_<E>.keras` beside state.json (`read_epoch_state`) that its epoch names, loaded
    in Keras's safe mode.
    """
    fold_dir = Path(fold_dir)
    state = read_epoch_state(fold_dir)
    if not state["epoch"]:
        return None, state
    model = keras.models.load_model(fold_dir / state["checkpoint"], safe_mode=True)
    for variable, value in zip(_seed_states(model), state["seed_states"], strict=True):
        variable.assign(np.asarray(value, dtype=variable.dtype))
    return model, state


class EpochCheckpoint(keras.callbacks.Callback):
    """Records each epoch's logs and time in `state`; saves the fold checkpoint every
    `every` epochs and after the last one (`save_epoch_checkpoint`)."""

    def __init__(self, fold_dir, state, every, total_epochs):
        super().__init__()
        if every < 1:
            raise ValueError(f"checkpoint_every must be >= 1, got {every}")
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
