"""Exports a trained CMNet to TF Serving's SavedModel layout.

    python -m cmnet_keras.export runs/demo/model.keras --name cmnet --version 1 --out saved_models

writes `saved_models/cmnet/1/` (`saved_model.pb`, `variables/`, `assets/`);
its `serving_default` signature (inputs `frames`, outputs `probs`,
`class_index`, `class_name`, `intensity`) is described in
`cmnet_keras.saved_model`. Serving::

    docker run -p 8501:8501 -v "$PWD/saved_models/cmnet:/models/cmnet" \\
        -e MODEL_NAME=cmnet tensorflow/serving
    curl -X POST localhost:8501/v1/models/cmnet:predict -d @request.json

A running server never loads a half-written version; an existing version is
kept unless `--overwrite` is given. What it is doing (loading, tracing,
writing) goes to stderr as it goes.

Exit codes: 0 done, 2 bad input (a one-line error naming the file or value), 1 a bug (the traceback).
"""

import argparse
import pathlib
import sys
import time


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m cmnet_keras.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="trained model (.keras)")
    parser.add_argument("--name", default="cmnet", help="model name, the folder under --out (default cmnet)")
    parser.add_argument("--version", type=int, default=1, help="version folder (positive integer, default 1)")
    parser.add_argument("--out", default="saved_models", help="base folder (default saved_models)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing version")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        import keras

        import cmnet_keras.models  # noqa: F401 (registers CMNet for load_model)
        from cmnet_keras.saved_model import INPUT_NAME, SIGNATURE_KEY, export_saved_model

        if not pathlib.Path(args.model).is_file():
            raise FileNotFoundError(f"Model file not found: {args.model}")
        print(f"loading the model {args.model} ...", file=sys.stderr, flush=True)
        model = keras.models.load_model(args.model, compile=False)
        target = export_saved_model(model, args.out, args.name, args.version, args.overwrite, progress=True)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"Exported {args.model} -> {target} in {time.monotonic() - started:.1f} s (signature {SIGNATURE_KEY!r}, "
          f"input {INPUT_NAME!r})")
    return 0


if __name__ == "__main__":
    from cmnet_keras.commands.cli import exit_on_error

    exit_on_error(main)
