"""Micro-expression prediction for one raw face video or frame folder.

    python -m cmnet_keras.predict clip.mp4 --model runs/demo/model.keras --out predictions/clip
    python -m cmnet_keras.predict frames_dir/ --model saved_models/cmnet [--face-model face_landmarker.task]

The input is one clip (its first frame the onset, its last the offset),
preprocessed exactly as the training cache (`cmnet_keras.preprocess`): the
16-frame timeline is planned first, only the frames it needs are read, one
eye-line face crop found on the first frame is applied to all of them. The
model (`.keras`, or a SavedModel from `cmnet_keras.export`: a version folder,
or its model folder, whose highest version is used) gives the class
probabilities and the 16-value intensity curve. Written to `--out` (default
`runs/predict/<input name>`): `result.json` (class, probabilities per class
name, intensity, source, frame counts) and `intensity.png`; with
`--request FILE` also the TF Serving REST request body for the preprocessed
clip (`{"signature_name": "serving_default", "instances": [clip]}`, see
`saved_models/README.md`).

A clip with no face, a missing or unreadable file exits with status 1 and a
one-line error naming the file.
"""

import argparse
import json
import os
import pathlib
import sys

import numpy as np

from cmnet_keras import optional
from cmnet_keras.data import media

cv2 = optional.require("cv2")

RESULT_FILE = "result.json"
PLOT_FILE = "intensity.png"


class KerasPredictor:
    """A `.keras` CMNet: `__call__(frames [B, T, S, S, 3] uint8) -> {"probs", "intensity"}` numpy."""

    def __init__(self, path):
        import keras

        import cmnet_keras.models  # noqa: F401 (registers CMNet for load_model)

        self.model = keras.models.load_model(path, compile=False)
        config = self.model.config
        self.class_names = list(config.class_names)
        self.num_frames, self.image_size = config.num_frames, config.image_size

    def __call__(self, frames):
        from keras import ops

        outputs = self.model({"frames": frames}, training=False)
        return {k: ops.convert_to_numpy(outputs[k]).astype(np.float32) for k in ("probs", "intensity")}


class SavedModelPredictor:
    """A SavedModel from `cmnet_keras.export`, called through its `serving_default` signature."""

    def __init__(self, path):
        import tensorflow as tf

        from cmnet_keras.export import INPUT_NAME, SIGNATURE_KEY, read_class_names, resolve_version_dir

        self.path = resolve_version_dir(path)
        self.class_names = read_class_names(self.path)
        self._signature = tf.saved_model.load(str(self.path)).signatures[SIGNATURE_KEY]
        self._input = INPUT_NAME
        shape = self._signature.structured_input_signature[1][INPUT_NAME].shape
        self.num_frames, self.image_size = int(shape[1]), int(shape[2])

    def __call__(self, frames):
        import tensorflow as tf

        outputs = self._signature(**{self._input: tf.constant(frames, tf.uint8)})
        return {k: outputs[k].numpy().astype(np.float32) for k in ("probs", "intensity")}


def load_predictor(path):
    """KerasPredictor for a `.keras` file, SavedModelPredictor for a folder."""
    path = pathlib.Path(path)
    if path.is_file() and path.suffix == ".keras":
        return KerasPredictor(path)
    if path.is_dir():
        return SavedModelPredictor(path)
    if path.exists():
        raise ValueError(f"--model {path}: expected a .keras file or a SavedModel folder")
    raise FileNotFoundError(f"Model not found: {path}")


def input_clip(path):
    """The whole video or frame folder as one ClipSpec (onset = first frame, offset = last)."""
    from cmnet_keras.data.readers import ClipSpec

    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Input not found: {path}")
    frame_files = None if media.is_video(path) else media.list_frame_files(path)
    count = media.clip_length(path)
    if count < 1:
        raise media.FrameReadError(f"No frames in {path}")
    return ClipSpec(dataset="input", subject=path.parent.name, clip_id=path.stem, path=path,
                    frame_files=frame_files, label=-1, emotion="", onset=0, apex=None, offset=count - 1,
                    num_frames=count, source=str(path))


def prepare_frames(clip, num_frames, image_size, face_model=None):
    """Face-cropped timeline of a clip (`input_clip`), as in the training cache.

    Returns:
        (frames uint8 [num_frames, S, S, 3], motion-estimated apex index)
    """
    from cmnet_keras.data.face import FaceAligner
    from cmnet_keras.data.preprocessing import preprocess_clip

    with FaceAligner(model_path=face_model, output_size=image_size) as aligner:
        frames, apex, _ = preprocess_clip(clip, image_size, num_frames, aligner)
    return frames, apex


def plot_intensity(intensity, path, title="", apex=None):
    """Saves the per-frame intensity curve k as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frames = np.arange(1, len(intensity) + 1)
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.plot(frames, intensity, "o-", color="tab:red", label="intensity k")
    if apex is not None:
        ax.axvline(apex + 1, color="tab:blue", lw=0.8, ls=":", label="apex (motion estimate)")
    ax.set_xticks(frames)
    ax.set_xlabel("frame (timeline)")
    ax.set_ylabel("intensity k")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def serving_request(frames):
    """TF Serving REST body (row format) for one preprocessed clip [T, S, S, 3] uint8."""
    return {"signature_name": "serving_default", "instances": [np.asarray(frames, np.uint8).tolist()]}


def predict(path, model, out, face_model=None, request=None):
    """Predicts one clip and writes `result.json` and `intensity.png` into `out`.

    Args:
        path: video file or frame folder.
        model: a predictor (`load_predictor`) or a model path.
        out: output folder.
        face_model: `face_landmarker.task` (default: cmnet_keras.assets).
        request: if given, a file to write the TF Serving REST request body to.

    Returns:
        the result dict (as written to `result.json`).
    """
    clip = input_clip(path)
    predictor = load_predictor(model) if isinstance(model, (str, os.PathLike)) else model
    frames, apex = prepare_frames(clip, predictor.num_frames, predictor.image_size, face_model)
    if request is not None:
        pathlib.Path(request).write_text(json.dumps(serving_request(frames), separators=(",", ":")))
    outputs = predictor(frames[None])
    probs, intensity = outputs["probs"][0], outputs["intensity"][0]
    index = int(np.argmax(probs))
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result = {
        "source": str(path),
        "model": str(model) if isinstance(model, (str, os.PathLike)) else type(model).__name__,
        "class": predictor.class_names[index],
        "class_index": index,
        "probabilities": {name: float(p) for name, p in zip(predictor.class_names, probs)},
        "intensity": [float(v) for v in intensity],
        "source_frame_count": int(clip.num_frames),
        "num_frames": int(len(frames)),
        "estimated_apex": int(apex),
        "intensity_plot": PLOT_FILE,
    }
    title = f"{pathlib.Path(path).name}: {result['class']} ({probs[index]:.2f})"
    plot_intensity(intensity, out / PLOT_FILE, title, apex)
    (out / RESULT_FILE).write_text(json.dumps(result, indent=2) + "\n")
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m cmnet_keras.predict", description=__doc__.split("\n\n")[0])
    parser.add_argument("input", help="face video or frame folder (one clip)")
    parser.add_argument("--model", required=True, help=".keras file or SavedModel folder")
    parser.add_argument("--out", help="output folder (default runs/predict/<input name>)")
    parser.add_argument("--face-model", help="face_landmarker.task (default: env/cache/download)")
    parser.add_argument("--request", help="also write the TF Serving REST request body (JSON) to this file")
    args = parser.parse_args(argv)
    out = args.out or os.path.join("runs", "predict", pathlib.Path(args.input).stem)
    try:
        result = predict(args.input, args.model, out, args.face_model, args.request)
    except (OSError, ValueError, cv2.error) as e:  # NoFaceError and FrameReadError are ValueErrors
        print(f"error: {e}", file=sys.stderr)
        return 1
    top = ", ".join(f"{k} {v:.3f}" for k, v in sorted(result["probabilities"].items(), key=lambda kv: -kv[1]))
    print(f"{args.input}: {result['class']} ({top}); written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
