"""Raw dataset -> clip cache: `python -m cmnet_keras.preprocess --dataset casme2 --root DIR --out DIR`.

Thin command line over `cmnet_keras.data.preprocessing.preprocess_dataset`:
clips already cached with the same settings and sheet row are skipped, so a
killed run resumes; outdated or unreadable ones are redone. Every clip that
cannot be used is reported by name and the others go on.

Exit codes:
    0  every clip is in the cache.
    2  nothing could be done: unreadable sheet or one missing a required
       column, missing folder, no usable clip, cache folder not writable
       (full disk), another run writing the same cache.
    3  some clips failed (named in the summary); all the others are cached.
"""

import argparse
import sys

from cmnet_keras.options import DATASETS, SMIC_SUBSETS

EXIT_OK, EXIT_FATAL, EXIT_SOME_FAILED = 0, 2, 3


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m cmnet_keras.preprocess", description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", required=True, choices=DATASETS)
    parser.add_argument("--root", required=True,
                        help="dataset folder, or its annotation sheet where the folder holds several "
                             "(manifest: the CSV or its folder)")
    parser.add_argument("--sheet", metavar="NAME", help="worksheet of the annotation workbook to read "
                        "(default: the first with the required columns; the summary names it)")
    parser.add_argument("--paper-clips", action="store_true",
                        help="casme2: leave out sub09/EP02_02f, the clip the paper's 246 (happiness 32) lack")
    parser.add_argument("--smic-subset", choices=SMIC_SUBSETS, type=str.upper,
                        help="smic: the camera subset, found by a path component of that name (default HS)")
    parser.add_argument("--out", required=True, help="cache folder to write")
    parser.add_argument("--cropped", action="store_true", help="use the release's cropped faces: no face alignment")
    parser.add_argument("--all-emotions", action="store_true",
                        help="also keep the emotions the paper drops (CASME II sadness, fear; SAMM disgust, fear, "
                             "sadness): needed for the MEGC 2019 composite (train --composite megc2019); smic: "
                             "nothing to add; not for manifest (every label is kept)")
    parser.add_argument("--size", type=int, default=224, help="output side in pixels (default 224)")
    parser.add_argument("--frames", type=int, default=16, help="frames per clip N (default 16)")
    parser.add_argument("--temporal", default="uniform", choices=("uniform", "apex"),
                        help="uniform: the paper's regular-interval sampling (default); apex: onset->apex and "
                             "apex->offset sampled apart, so the annotated apex frame is one of the N")
    parser.add_argument("--intensity-truth", metavar="CSV",
                        help="a true intensity per clip (subject, filename, onset, apex, offset, amplitude; "
                             "docs/tendency.md), stored with each clip and measured in every run")
    parser.add_argument("--face-model", default=None, help="face_landmarker.task (default: env/cache/download)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N clips")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.size < 8:
        parser.error(f"--size must be >= 8, got {args.size}")
    if args.frames < 2:
        parser.error(f"--frames must be >= 2, got {args.frames}")
    if args.limit is not None and args.limit < 1:
        parser.error(f"--limit must be >= 1, got {args.limit}")
    from cmnet_keras.data import cache, readers
    from cmnet_keras.data.preprocessing import preprocess_dataset
    from cmnet_keras.data.truth import attach_truth, read_truth_table

    try:
        spec = readers.read_dataset(args.dataset, args.root, cropped=args.cropped, worksheet=args.sheet,
                                    paper_clips=args.paper_clips, smic_subset=args.smic_subset,
                                    all_emotions=args.all_emotions)
        print(spec.summary(), flush=True)
        if args.intensity_truth:
            attached, problems = attach_truth(spec, read_truth_table(args.intensity_truth))
            print("\n".join([f"true intensity from {args.intensity_truth}: {attached} clips", *problems]), flush=True)
        if not spec.clips:
            raise ValueError(f"no usable clips in {args.root}")
        report = preprocess_dataset(spec, args.out, args.size, args.frames, args.cropped, args.face_model,
                                    args.limit, progress=not args.quiet, temporal_method=args.temporal)
    except (ValueError, OSError, cache.CacheLockedError) as error:  # broken sheet, missing folder, full disk, lock
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FATAL
    print(report.summary())
    print(f"cache: {args.out} ({len(report.records)} clips in {cache.INDEX_FILE})")
    return EXIT_SOME_FAILED if report.num_failed else EXIT_OK


if __name__ == "__main__":
    from cmnet_keras.commands.cli import exit_on_error

    exit_on_error(main)
