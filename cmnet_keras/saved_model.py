"""TF Serving's SavedModel of a trained CMNet (TF-only module); the command is `python -m cmnet_keras.export`.

`export_saved_model` writes `<out>/<name>/<version>/` (`saved_model.pb`,
`variables/`, `assets/`). Its `serving_default` signature takes

- `frames`: uint8 [B, T, S, S, 3] face clips (T = config.num_frames = 16,
  S = config.image_size, RGB, preprocessed like the training cache)

and returns

- `probs`: float32 [B, C] class probabilities (order of `class_names.txt`),
- `class_index`: int32 [B] arg-max class,
- `class_name`: string [B] its name,
- `intensity`: float32 [B, T] the intensity curve k.

The class names go with the model as `assets/class_names.txt` (one per line,
in `probs` order); `assets/cmnet_config.json` holds the full CMNetConfig.
A new version is written to a temporary folder and renamed into place, so a
running server never loads a half-written version.
"""

import os
import pathlib
import shutil
import tempfile

from cmnet_keras import console, files, optional

SIGNATURE_KEY = "serving_default"
INPUT_NAME = "frames"
CLASS_NAMES_FILE = "class_names.txt"
CONFIG_FILE = "cmnet_config.json"


def serving_module(model, config, asset_dir):
    """A `tf.Module` wrapping a Keras CMNet in the `serving_default` signature (see the module docstring).

    Only the model's own variables are tracked (as ExportArchive does), not
    the model object, so optimizer and metric state stay out of the export.

    Args:
        model: a built CMNet (TensorFlow backend).
        config: its CMNetConfig.
        asset_dir: folder holding the asset files, tracked into the SavedModel.
    """
    import tensorflow as tf

    module = tf.Module(name="cmnet_serving")
    module.model_variables = list(model.variables)
    module.class_names = class_names = tf.constant(list(config.class_names))
    module.class_names_file = tf.saved_model.Asset(os.path.join(asset_dir, CLASS_NAMES_FILE))
    module.config_file = tf.saved_model.Asset(os.path.join(asset_dir, CONFIG_FILE))
    spec = tf.TensorSpec([None, config.num_frames, config.image_size, config.image_size, 3], tf.uint8,
                         name=INPUT_NAME)

    def serve(frames):
        outputs = model({"frames": frames}, training=False)
        probs = tf.cast(outputs["probs"], tf.float32)
        class_index = tf.argmax(probs, axis=-1, output_type=tf.int32)
        return {
            "probs": probs,
            "class_index": class_index,
            "class_name": tf.gather(class_names, class_index),
            "intensity": tf.cast(outputs["intensity"], tf.float32),
        }

    module.serve = tf.function(serve, input_signature=[spec])
    return module


def export_saved_model(model, out="saved_models", name="cmnet", version=1, overwrite=False, progress=False):
    """Writes `model` to `<out>/<name>/<version>/` for TF Serving.

    Args:
        model: a built CMNet (its `config` gives the input shape and class names).
        out: base folder of all served models.
        name: model name (TF Serving's MODEL_NAME).
        version: positive integer version folder.
        overwrite: replace an existing version.
        progress: say on stderr when the signature is traced and the SavedModel written.

    Returns:
        pathlib.Path of the version folder.
    """
    from cmnet_keras.config import CMNetConfig

    tf = optional.tensorflow_only("SavedModel export")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"version must be a positive integer (TF Serving's version folder), got {version!r}")
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"name must be a plain folder name, got {name!r}")
    base = pathlib.Path(out) / name
    target = base / str(version)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} already exists; pick another --version or pass --overwrite")
    config = getattr(model, "config", None)
    if not isinstance(config, CMNetConfig):
        raise ValueError(f"Expected a CMNet model (with a CMNetConfig `config`), got {type(model).__name__}")
    say = console.progress_lines(progress)
    base.mkdir(parents=True, exist_ok=True)
    # TF Serving ignores non-numeric folders, so the temporary one is never loaded.
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=base))
    try:
        with tempfile.TemporaryDirectory() as asset_dir:
            pathlib.Path(asset_dir, CLASS_NAMES_FILE).write_text("\n".join(config.class_names) + "\n")
            pathlib.Path(asset_dir, CONFIG_FILE).write_text(config.to_json() + "\n")
            module = serving_module(model, config, asset_dir)
            say(f"tracing the serving signature ({INPUT_NAME}: uint8 [B, {config.num_frames}, {config.image_size}, "
                f"{config.image_size}, 3]) ...")
            module.serve.get_concrete_function()  # the trace that the save then writes
            say(f"writing the SavedModel to {target} ...")
            tf.saved_model.save(module, str(staging), signatures={SIGNATURE_KEY: module.serve})
        files.make_readable_as_umask(staging)  # mkdtemp made it 0700: TF Serving may run as another user
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def resolve_version_dir(path):
    """A SavedModel folder: `path` itself, or its highest numeric version (as TF Serving picks)."""
    path = pathlib.Path(path)
    if (path / "saved_model.pb").is_file():
        return path
    versions = sorted((int(p.name), p) for p in (path.iterdir() if path.is_dir() else [])
                      if p.name.isdigit() and (p / "saved_model.pb").is_file())
    if not versions:
        raise FileNotFoundError(f"No SavedModel (saved_model.pb) in {path} or its numeric version folders")
    return versions[-1][1]


def read_class_names(saved_model_dir):
    """Class names of an exported model, in `probs` order (from `assets/class_names.txt`)."""
    path = resolve_version_dir(saved_model_dir) / "assets" / CLASS_NAMES_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: {saved_model_dir} was not written by cmnet_keras.export")
    return [line for line in path.read_text().splitlines() if line]
