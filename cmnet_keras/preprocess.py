"""Raw dataset -> clip cache: `python -m cmnet_keras.preprocess --dataset casme2 --root DIR --out DIR`.

Per clip: plan the N-frame timeline first, read only the source frames it
needs, align them with ONE eye-line crop found on the onset frame (or just
resize with `--cropped`), blend the timeline, carry or estimate the apex, and
write the clip atomically. Clips already cached and valid are skipped, so a
killed run resumes. A clip that fails (no face, unreadable frame) is reported
by name and the others go on; the exit code is nonzero only if none succeeded.
"""

import argparse
import dataclasses
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from tqdm import tqdm

from cmnet_keras import optional
from cmnet_keras.data import cache, face, media, readers, temporal

cv2 = optional.require("cv2")

CLIP_ERRORS = (ValueError, OSError, cv2.error)


@dataclasses.dataclass
class PreprocessReport:
    """What a run did: clip names processed / skipped (already cached) / failed (with reason)."""

    processed: list = dataclasses.field(default_factory=list)
    skipped: list = dataclasses.field(default_factory=list)
    failed: list = dataclasses.field(default_factory=list)  # (clip name, reason)
    records: list = dataclasses.field(default_factory=list)
    source_frames: int = 0
    seconds: float = 0.0  # processing, after the face model is loaded
    startup_seconds: float = 0.0  # loading the face model

    def summary(self):
        rate = self.source_frames / self.seconds if self.seconds > 0 else 0.0
        startup = f"; face model loaded in {self.startup_seconds:.1f} s" if self.startup_seconds else ""
        lines = [
            f"processed: {len(self.processed)} clips ({self.source_frames} source frames in "
            f"{self.seconds:.1f} s = {rate:.0f} frames/s{startup})",
            f"skipped (already cached): {len(self.skipped)}",
            f"failed: {len(self.failed)}",
        ]
        lines.extend(f"  {name}: {reason}" for name, reason in self.failed)
        return "\n".join(lines)


def read_source_frames(clip, indices):
    """Reads the clip's frames at 0-based positions `indices` (relative to the onset)."""
    positions = [clip.onset + int(i) for i in indices]
    if clip.frame_files is None:
        return media.read_video(clip.path, positions)
    frames = [media.read_image(clip.frame_files[p]) for p in positions]
    shapes = {f.shape for f in frames}
    if len(shapes) > 1:
        raise media.FrameReadError(f"{clip.path}: frames differ in size {sorted(shapes)}")
    return np.stack(frames)


def preprocess_clip(clip, image_size=224, num_frames=16, aligner=None):
    """One clip -> (frames uint8 [N, S, S, 3], apex on the timeline, apex_source).

    Args:
        clip: readers.ClipSpec.
        image_size: output side S.
        num_frames: timeline length N.
        aligner: a face.FaceAligner (output_size = image_size); None for
            already-cropped releases (frames are only resized).
    """
    plan = temporal.temporal_plan(clip.length, num_frames)
    return finish_clip(clip, plan, read_source_frames(clip, plan.source_indices), image_size, aligner)


def finish_clip(clip, plan, frames, image_size, aligner):
    """Aligns (or resizes) the frames read for `plan`, builds the timeline and its apex."""
    if aligner is None:
        frames = face.resize_clip(frames, image_size)
    else:
        # source_indices starts at 0: the onset frame is the reference.
        frames = aligner.align_clip(frames, reference_index=0, source=f"{clip.name} ({clip.path})")
    frames = plan.apply(frames)
    if clip.apex is not None:
        return frames, temporal.map_apex(clip.apex - clip.onset, plan), "annotated"
    return frames, temporal.estimate_apex(frames), "estimated"


def clip_record(clip, apex, apex_source):
    return {
        "clip_id": clip.clip_id,
        "subject": clip.subject,
        "label": clip.label,
        "emotion": clip.emotion,
        "apex": int(apex),
        "apex_source": apex_source,
        "file": cache.clip_relpath(clip.subject, clip.clip_id),
        "num_source_frames": clip.length,
    }


def preprocess_dataset(spec, out, image_size=224, num_frames=16, cropped=False, face_model=None, limit=None,
                       progress=True):
    """Preprocesses the clips of a DatasetSpec (the first `limit`) into the cache folder `out`.

    Clips already cached and valid are skipped. The next clip's frames are read
    in a background thread while the current one is aligned.

    Returns:
        PreprocessReport; index.csv lists every clip now in the cache, in the
        spec's order (also after an interrupt).
    """
    cache.prepare_cache(out, {"dataset": spec.name, "class_names": list(spec.class_names),
                              "image_size": image_size, "num_frames": num_frames, "cropped": bool(cropped)})
    clips = spec.clips if limit is None else spec.clips[:limit]
    files = [cache.clip_relpath(c.subject, c.clip_id) for c in clips]
    duplicates = sorted({f for f in files if files.count(f) > 1})
    if duplicates:
        raise ValueError(f"Several clips map to the same cache file (same subject and clip id): {duplicates}")
    report, records, todo = PreprocessReport(), {}, []
    for clip, file in zip(clips, files):
        record = cache.cached_record(out, file, num_frames, image_size)
        if record and record["label"] == clip.label and record["num_source_frames"] == clip.length:
            report.skipped.append(clip.name)
            records[file] = record
        else:
            todo.append(clip)
    aligner = None
    if todo and not cropped:
        started = time.perf_counter()
        aligner = face.FaceAligner(model_path=face_model, output_size=image_size)
        report.startup_seconds = time.perf_counter() - started
    start = time.perf_counter()
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:

            def read_ahead(clip):
                plan = temporal.temporal_plan(clip.length, num_frames)
                return plan, pool.submit(read_source_frames, clip, plan.source_indices)

            bar = tqdm(total=len(clips), initial=len(report.skipped), desc="preprocess", unit="clip",
                       disable=not progress, file=sys.stderr)
            pending = read_ahead(todo[0]) if todo else None
            for k, clip in enumerate(todo):
                plan, frames = pending
                pending = read_ahead(todo[k + 1]) if k + 1 < len(todo) else None
                try:
                    frames, apex, apex_source = finish_clip(clip, plan, frames.result(), image_size, aligner)
                    record = clip_record(clip, apex, apex_source)
                    cache.save_clip(out, record, frames)
                except CLIP_ERRORS as error:
                    report.failed.append((clip.name, str(error)))
                else:
                    report.processed.append(clip.name)
                    records[record["file"]] = record
                    report.source_frames += clip.length
                bar.update()
            bar.close()
    finally:
        report.seconds = time.perf_counter() - start
        report.records = [records[f] for f in files if f in records]
        cache.write_index(out, report.records)
        if aligner is not None:
            aligner.close()
    return report


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m cmnet_keras.preprocess", description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", required=True, choices=readers.DATASETS)
    parser.add_argument("--root", required=True, help="dataset folder (manifest: the CSV or its folder)")
    parser.add_argument("--out", required=True, help="cache folder to write")
    parser.add_argument("--cropped", action="store_true", help="use the release's cropped faces: no face alignment")
    parser.add_argument("--size", type=int, default=224, help="output side in pixels (default 224)")
    parser.add_argument("--frames", type=int, default=16, help="frames per clip N (default 16)")
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
    try:
        spec = readers.read_dataset(args.dataset, args.root, cropped=args.cropped)
        print(spec.summary())
        if not spec.clips:
            raise ValueError(f"no usable clips in {args.root}")
        report = preprocess_dataset(spec, args.out, args.size, args.frames, args.cropped, args.face_model,
                                    args.limit, progress=not args.quiet)
    except (ValueError, OSError) as error:  # broken sheet, missing folder, cache of other settings
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(report.summary())
    print(f"cache: {args.out} ({len(report.records)} clips in {cache.INDEX_FILE})")
    return 1 if report.failed and not report.records else 0


if __name__ == "__main__":
    sys.exit(main())
