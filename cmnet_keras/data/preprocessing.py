"""Raw dataset -> clip cache: the library behind `python -m cmnet_keras.preprocess`.

Per clip: plan the N-frame timeline first, read only the source frames it
needs, align them with ONE eye-line crop found on the onset frame (or just
resize for cropped releases), blend the timeline, carry or estimate the apex,
and write the clip atomically with its provenance (the settings and sheet row
that made it).

A rerun reprocesses exactly the clips whose provenance differs from the run's
(any setting, including image size and frame count: the whole cache is then
redone and meta.json rewritten; or the clip's sheet row), whose cache files are
unreadable, or that are missing; every other clip is skipped. So a killed run
resumes, and nothing silently reuses an outdated clip. A clip that fails (no
face, unreadable frame, conflicting duplicate row) is reported by name and the
others go on; a cache that cannot be written (full disk, read-only folder)
stops the run with an error naming the path, leaving what was written intact.
"""

import collections
import contextlib
import dataclasses
import functools
import json
import pathlib
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from tqdm import tqdm

from cmnet_keras import assets, files, optional, version
from cmnet_keras.data import cache, face, media, temporal

cv2 = optional.require("cv2")

CLIP_ERRORS = (ValueError, OSError, cv2.error)
CROP_MARGIN = 0.1
APEX_RULE = "annotated: nearest timeline frame; else motion peak"  # temporal.map_apex / estimate_apex


@dataclasses.dataclass
class PreprocessReport:
    """What a run did, clip by clip.

    Attributes:
        processed: names of the clips written by this run.
        reprocessed: (name, why) for the processed clips that were in the cache
            but outdated or unreadable.
        skipped: names of the clips already cached with the same provenance.
        failed: (name, reason) of clips that could not be processed.
        unusable: the dataset reader's problems (rows or folders that are no clip).
        records: index rows of every clip now in the cache, in the spec's order.
    """

    processed: list = dataclasses.field(default_factory=list)
    reprocessed: list = dataclasses.field(default_factory=list)
    skipped: list = dataclasses.field(default_factory=list)
    failed: list = dataclasses.field(default_factory=list)
    unusable: list = dataclasses.field(default_factory=list)
    records: list = dataclasses.field(default_factory=list)
    source_frames: int = 0
    seconds: float = 0.0  # processing, after the face model is loaded
    startup_seconds: float = 0.0  # loading the face model

    @property
    def num_failed(self):
        return len(self.failed) + len(self.unusable)

    def summary(self):
        rate = self.source_frames / self.seconds if self.seconds > 0 else 0.0
        startup = f"; face model loaded in {self.startup_seconds:.1f} s" if self.startup_seconds else ""
        why = collections.Counter(reason for _, reason in self.reprocessed if not reason.startswith("unreadable"))
        unreadable = [f"\n  {name}: {reason}" for name, reason in self.reprocessed if reason.startswith("unreadable")]
        lines = [
            f"processed: {len(self.processed)} clips ({self.source_frames} source frames in "
            f"{self.seconds:.1f} s = {rate:.0f} frames/s{startup})",
            f"reprocessed (cached but outdated or unreadable): {len(self.reprocessed)}"
            + "".join(f"\n  {reason}: {count}" for reason, count in sorted(why.items())) + "".join(unreadable),
            f"skipped (already cached with the same settings and sheet row): {len(self.skipped)}",
            f"failed: {self.num_failed} ({len(self.unusable)} rows or folders not usable, "
            f"{len(self.failed)} clips failed in processing)",
        ]
        lines.extend(f"  {problem}" for problem in self.unusable)
        lines.extend(f"  {name}: {reason}" for name, reason in self.failed)
        return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class ClipOptions:
    """How every clip of a run is made (`preprocess_dataset`'s arguments of the same names)."""

    image_size: int
    num_frames: int
    cropped: bool
    face_model: pathlib.Path | str | None
    temporal_method: str

    def __post_init__(self):
        if self.temporal_method not in temporal.METHODS:
            raise ValueError(f"temporal_method must be one of {temporal.METHODS}, got {self.temporal_method!r}")


def read_source_frames(clip, indices):
    """Reads the clip's frames at 0-based positions `indices` (relative to the onset)."""
    positions = [clip.onset + int(i) for i in indices]
    if clip.frame_files is None:
        return media.read_video(clip.path, positions)
    paths = [clip.frame_files[p] for p in positions]
    frames = [media.read_image(path) for path in paths]
    sizes = {}
    for path, frame in zip(paths, frames):
        sizes.setdefault(frame.shape[:2], path.name)
    if len(sizes) > 1:
        listed = ", ".join(f"{name} {w}x{h}" for (h, w), name in sizes.items())
        raise media.FrameReadError(f"{clip.path}: frames differ in size (first of each size: {listed})")
    return np.stack(frames)


def clip_plan(clip, num_frames, temporal_method):
    """The clip's timeline plan (`temporal.temporal_plan`); "apex" anchors it on an annotated apex."""
    apex = None if clip.apex is None else clip.apex - clip.onset
    return temporal.temporal_plan(clip.length, num_frames, apex=apex, method=temporal_method)


def finish_clip(clip, plan, frames, image_size, aligner):
    """Aligns (or resizes) the frames read for `plan`, builds the timeline, its apex and its true intensity.

    Returns:
        (frames, apex, apex source, the true intensity of the N frames or None).
    """
    if aligner is None:
        frames = face.resize_clip(frames, image_size)
    else:
        # source_indices starts at 0: the onset frame is the reference.
        frames = aligner.align_clip(frames, reference_index=0, source=f"{clip.name} ({clip.path})")
    frames = plan.apply(frames)
    truth = None if clip.truth is None else plan.resample(clip.truth.curve())
    if clip.apex is not None:
        return frames, temporal.map_apex(clip.apex - clip.onset, plan), "annotated", truth
    return frames, temporal.estimate_apex(frames), "estimated", truth


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
        "action_units": clip.action_units,
    }


def run_settings(spec, image_size, num_frames, cropped, face_model=None, temporal_method="uniform"):
    """The settings and code version every clip of this run is made with (JSON-able).

    `face_model` is resolved (and fetched if needed) only when aligning.
    """
    aligned = not cropped
    return {
        "format": cache.FORMAT,
        "package_version": version.__version__,
        "dataset": spec.name,
        "class_names": list(spec.class_names),
        "image_size": int(image_size),
        "num_frames": int(num_frames),
        "alignment": "eye-line crop on the onset frame" if aligned else "resize (cropped release)",
        "face_model_sha256": assets.sha256_of(assets.face_landmarker_path(face_model)) if aligned else None,
        "crop_margin": CROP_MARGIN if aligned else None,
        "temporal": temporal_method,
        "apex_rule": APEX_RULE,
    }


def clip_source(clip):
    """The sheet row (or folder) facts a clip is made from; a change reprocesses it."""
    return {"onset": clip.onset, "apex": clip.apex, "offset": clip.offset, "label": clip.label,
            "emotion": clip.emotion, "num_frames": clip.num_frames,
            "truth": None if clip.truth is None else clip.truth.as_dict()}


def outdated_reason(info, settings, source):
    """Why a cached clip (its sidecar `info`) must be redone for `settings` and `source`; None if it is current."""
    provenance = info.get("provenance") or {}
    changed = sorted(k for k in settings if provenance.get("settings", {}).get(k) != settings[k])
    if changed:
        return "settings changed: " + ", ".join(changed)
    changed = sorted(k for k in source if provenance.get("source", {}).get(k) != source[k])
    if changed:
        return "sheet row changed: " + ", ".join(changed)
    return None


def split_duplicates(clips):
    """Clips that map to one cache file (a repeated sheet row, or ids equal once made file-safe).

    Returns:
        (clips to process, unusable rows (messages), failed clips (name, reason)):
        identical rows keep the first and list the others as unusable; rows
        that conflict (other label, frames or folder) all fail.
    """
    by_file = collections.defaultdict(list)
    for clip in clips:
        by_file[cache.clip_relpath(clip.subject, clip.clip_id)].append(clip)
    keep, unusable, failed = [], [], []
    for clip in clips:
        group = by_file[cache.clip_relpath(clip.subject, clip.clip_id)]
        first = group[0]
        if len(group) == 1:
            keep.append(clip)
        elif any(clip_source(c) != clip_source(first) or c.path != first.path for c in group):
            rows = " and ".join(c.source or str(c.path) for c in group)
            failed.append((clip.name, f"conflicting rows for one clip ({rows}): none is used"))
        elif clip is first:
            keep.append(clip)
        else:
            unusable.append(f"{clip.source or clip.path}: duplicate of {first.source or first.path} ({clip.name}); "
                            "the first is used")
    return keep, unusable, failed


def preprocess_dataset(spec, out, image_size=224, num_frames=16, cropped=False, face_model=None, limit=None,
                       progress=True, log=functools.partial(print, flush=True), temporal_method="uniform"):
    """Preprocesses the clips of a DatasetSpec (the first `limit`) into the cache folder `out`.

    `temporal_method` is "uniform" (the paper's sampling, the default) or "apex"
    (`temporal.temporal_plan`); it is part of every clip's provenance.

    Holds the cache's lock while it runs. The next clip's frames are read in a
    background thread while the current one is aligned.

    Returns:
        PreprocessReport; index.csv lists every clip now in the cache, in the
        spec's order (also after an interrupt).

    Raises:
        cache.CacheLockedError: another run is writing `out`.
        cache.CacheError: `out` is a cache of another format (the message says to rebuild it).
        files.OutputError: `out` cannot be written (names the path); the files
            written before stay as they were.
    """
    out = pathlib.Path(out)
    clips, duplicates, conflicts = split_duplicates(spec.clips if limit is None else spec.clips[:limit])
    report = PreprocessReport(unusable=list(spec.dropped.problems) + duplicates, failed=conflicts)
    options = ClipOptions(image_size, num_frames, cropped, face_model, temporal_method)
    settings = None if not clips else run_settings(spec, image_size, num_frames, cropped, face_model, temporal_method)
    with cache.lock(out, log=log):
        files.remove_stale_temps(out)
        with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):  # none yet, or unreadable: rewritten
            cache.read_meta(out)  # CacheError for a cache of another format
        records, todo = {}, []
        for clip in clips:
            reason = _cached_state(out, clip, settings, records)
            if reason is None:
                report.skipped.append(clip.name)
            else:
                todo.append((clip, reason))
        order = [cache.clip_relpath(c.subject, c.clip_id) for c in clips]

        def write_index():  # every clip cached and current now, in the spec's order
            report.records = [records[f] for f in order if f in records]
            cache.write_index(out, report.records)

        write_index()
        cache.prepare_cache(out, {"dataset": spec.name, "class_names": list(spec.class_names),
                                  "image_size": image_size, "num_frames": num_frames, "cropped": bool(cropped),
                                  "settings": settings})
        try:
            _process(out, todo, options, settings, report, records, progress, total=len(clips))
        except BaseException:
            with contextlib.suppress(files.OutputError):  # the first error is the one to report
                write_index()
            raise
        write_index()
    return report


def _cached_state(out, clip, settings, records):
    """None if the clip is cached and current (its record put in `records`), else why it must be (re)done.

    The record's action units come from the current sheet row: they do not change the frames.
    """
    file = cache.clip_relpath(clip.subject, clip.clip_id)
    try:
        info = cache.read_sidecar(out, file)
    except cache.CacheError as error:
        return f"unreadable cache file: {error}"
    if info is None:
        return "new"
    reason = outdated_reason(info, settings, clip_source(clip))
    if reason is None:
        records[file] = {**info["record"], "action_units": clip.action_units}
    return reason


def _process(out, todo, options, settings, report, records, progress, total):
    """Makes the clips of `todo` ((clip, why) pairs) with `options` into the cache `out`, recording them in
    `report` and `records` (see `preprocess_dataset`)."""
    aligner = None
    if todo and not options.cropped:
        started = time.perf_counter()
        aligner = face.FaceAligner(model_path=options.face_model, output_size=options.image_size, margin=CROP_MARGIN)
        report.startup_seconds = time.perf_counter() - started
    start = time.perf_counter()
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:

            def read_ahead(clip):
                plan = clip_plan(clip, options.num_frames, options.temporal_method)
                return plan, pool.submit(read_source_frames, clip, plan.source_indices)

            bar = tqdm(total=total, initial=total - len(todo), desc="preprocess", unit="clip",
                       disable=not progress, file=sys.stderr)
            pending = read_ahead(todo[0][0]) if todo else None
            for k, (clip, reason) in enumerate(todo):
                plan, frames = pending
                pending = read_ahead(todo[k + 1][0]) if k + 1 < len(todo) else None
                try:
                    frames, apex, apex_source, truth = finish_clip(clip, plan, frames.result(), options.image_size,
                                                                   aligner)
                    record = clip_record(clip, apex, apex_source)
                    cache.save_clip(out, record, frames, {"settings": settings, "source": clip_source(clip)},
                                    true_intensity=truth)
                except files.OutputError:
                    raise
                except CLIP_ERRORS as error:
                    report.failed.append((clip.name, str(error)))
                else:
                    report.processed.append(clip.name)
                    if reason != "new":
                        report.reprocessed.append((clip.name, reason))
                    records[record["file"]] = record
                    report.source_frames += clip.length
                bar.update()
            bar.close()
    finally:
        report.seconds = time.perf_counter() - start
        if aligner is not None:
            aligner.close()
