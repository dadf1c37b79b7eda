"""Micro-expression prediction on a raw face video or frame folder.

    python -m cmnet_keras.predict clip.mp4 --model runs/demo/model.keras [--onset 2.5s --offset 3.1s]
    python -m cmnet_keras.predict long.mp4 --model saved_models/cmnet --window 1s --stride 0.25s
    python -m cmnet_keras.predict frames_dir/ --model model.keras --fps 200 [--face-model face_landmarker.task]

One clip (default: the whole input; `--onset`/`--offset` select one) is
preprocessed as the training cache (`cmnet_keras.preprocess`): 16 frames
planned uniformly, one eye-line crop from the clip's first frame that shows a
face. Written to `--out` (default `runs/predict/<input name>`):
`result.json` (class, probabilities, intensity, onset, offset, face frame,
frames used) and `intensity.png`; with `--request FILE` also the TF Serving
REST request body (see `saved_models/README.md`).

With `--window`, a window slides over the clip by `--stride` (default half a
window), each window resampled to 16 frames and aligned on its own first face
frame: `timeline.csv` (one row per window: frames, seconds, class
probabilities, peak intensity; class "no-face" and empty scores for a window
without a face) and `timeline.png` (probabilities and peak intensity over
time, no-face windows grey, the 3 most confident windows shaded and labelled). How many windows are aligned, then
predicted, goes to stderr as it goes (progress bars).

Times: a frame number, 0-based ("75"), or seconds with an "s" ("2.5s": the
frame shown then; a frame folder needs `--fps`).

Exit codes: 0 done; 2 nothing could be done (bad option, missing or
unreadable input or model, a still image, no face in any frame; a one-line
error names the argument or file); 1 an unexpected error (traceback).
"""

import argparse
import os
import pathlib
import sys

from cmnet_keras.commands import cli

EXIT_OK, EXIT_FATAL = 0, 2


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m cmnet_keras.predict", description=__doc__.split("\n\n")[0])
    parser.add_argument("input", help="face video or frame folder")
    parser.add_argument("--model", required=True, help=".keras file or SavedModel folder")
    parser.add_argument("--out", help="output folder (default runs/predict/<input name>)")
    parser.add_argument("--face-model", help="face_landmarker.task (default: env/cache/download)")
    parser.add_argument("--onset", metavar="TIME", help="first frame of the clip: frame number (75) or seconds (2.5s)")
    parser.add_argument("--offset", metavar="TIME", help="last frame of the clip (default: the last frame)")
    parser.add_argument("--window", metavar="TIME", help="slide a window of this length (frames or seconds) over "
                                                         "the clip and write a timeline")
    parser.add_argument("--stride", metavar="TIME", help="window step (default: half the window)")
    parser.add_argument("--fps", type=float, help="frame rate for times in seconds (default: the video's)")
    parser.add_argument("--request", help="also write the TF Serving REST request body (JSON) to this file")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.window is None and args.stride is not None:
        parser.error("--stride needs --window")
    if args.window is not None and args.request is not None:
        parser.error("--request needs a single clip, not --window")
    from cmnet_keras import inference, optional

    cv2 = optional.require("cv2")
    out = args.out or os.path.join("runs", "predict", pathlib.Path(args.input).stem)
    options = {"face_model": args.face_model, "onset": args.onset, "offset": args.offset, "fps": args.fps}
    try:
        if args.window is None:
            result = inference.predict_clip(args.input, args.model, out, request=args.request, **options)
        else:
            rows = inference.predict_timeline(args.input, args.model, out, args.window, args.stride, progress=True,
                                              **options)
    except (OSError, ValueError, cv2.error) as error:  # NoFaceError and FrameReadError are ValueErrors
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FATAL
    if args.window is not None:
        faces = [r for r in rows if r["class"] != inference.NO_FACE]
        print(f"{args.input}: {len(rows)} windows ({len(rows) - len(faces)} without a face); written to {out}")
        return EXIT_OK
    if result["face_frame"] > result["onset"]:
        print(f"note: no face before frame {result['face_frame']}; the crop is found there "
              f"(--onset {result['face_frame']} starts the clip there)")
    top = ", ".join(f"{k} {v:.3f}" for k, v in sorted(result["probabilities"].items(), key=lambda kv: -kv[1]))
    print(f"{args.input}: {result['class']} ({top}); written to {out}")
    return EXIT_OK


if __name__ == "__main__":
    cli.exit_on_error(main)
