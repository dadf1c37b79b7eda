"""The MEGC 2019 composite dataset: CASME II + SAMM + SMIC-HS as 3 classes, built from their caches.

The clips and labels are the challenge's list (`megc2019_composite.csv` beside
this file; its header says where it comes from): 0 negative, 1 positive,
2 surprise. "challenge" (the default) is the challenge's 442 clips: the list's
441 rows plus SAMM `032_3_1` (negative), whose row the published table lacks;
"table" is the 441 rows only.

A composite is written as a cache folder that every reader of a cache takes
(`pipeline.make_dataset`, `folds.loso_folds`, `training.run_loso`):

    meta.json    dataset "megc2019", the 3 class names, the sources' image size
                 and frame count, and `composite` (the clip set, each source's
                 `cache_fingerprint`, and the summary of what was not found)
    missing_clips.csv  the list clips not found (dataset, subject, clip)
    index.csv    the cache index columns plus `dataset`; subject ids carry their
                 dataset (`casme2/sub01`, `samm/006`, `smic/s1`: the readers'
                 ids); `file` is `<dataset>/<file in that cache>`
    <dataset>    a symbolic link to that dataset's cache folder

Neither file holds a path of this machine, so equal caches give an equal
composite (and fingerprint) anywhere.

List clips are matched to a cache's index by (subject, clip id) with every
run of digits compared as a number: the list's SMIC `s01` / `s01_ne_01` are the
reader's `s1` / `s1_ne_01`, its SAMM subject `6` is the folder `006`.
"""

import collections
import dataclasses
import os
import pathlib
import re

import pandas as pd

from cmnet_keras import console, files
from cmnet_keras.data import cache
from cmnet_keras.options import CLIP_SETS, COMPOSITES

CLASS_NAMES = ("negative", "positive", "surprise")
DATASETS = ("casme2", "samm", "smic")
LIST_FILE = pathlib.Path(__file__).with_name("megc2019_composite.csv")
LIST_COLUMNS = ("dataset", "subject", "clip", "label")
MISSING_FILE = "missing_clips.csv"  # the list clips not found, in the composite's folder
EXAMPLES = 5  # ids shown of each list of the summary
MISSING_ROW = {"dataset": "samm", "subject": "32", "clip": "032_3_1", "label": 0}  # in the challenge's 442
# The challenge's mapping of each dataset's emotions to its 3 classes ("others" is left out).
EMOTION_CLASSES = {
    "casme2": {"disgust": 0, "repression": 0, "happiness": 1, "surprise": 2},
    "samm": {"anger": 0, "contempt": 0, "disgust": 0, "fear": 0, "sadness": 0, "happiness": 1, "surprise": 2},
    "smic": {"negative": 0, "positive": 1, "surprise": 2},
}


class MissingDatasetsError(ValueError):
    """A composite asked for datasets whose caches were not given; the message names them."""


def clip_list(clips="challenge"):
    """The challenge's clip list as a DataFrame (dataset, subject, clip as strings; label int).

    Args:
        clips: "challenge" (442 clips: SAMM 032_3_1 added back) or "table" (the published 441 rows).
    """
    if clips not in CLIP_SETS:
        raise ValueError(f"clips must be one of {CLIP_SETS}, got {clips!r}")
    table = pd.read_csv(LIST_FILE, comment="#", dtype=str, keep_default_na=False)
    if clips == "challenge":
        table = pd.concat([table, pd.DataFrame([MISSING_ROW]).astype(str)], ignore_index=True)
    return table.astype({"label": int})[list(LIST_COLUMNS)]


def id_key(text):
    """An id with every run of digits as a number: "s01_ne_01" and "s1_ne_01" -> "s1_ne_1"; "006" -> "6"."""
    return re.sub(r"\d+", lambda match: str(int(match.group())), str(text).strip()).lower()


def find_caches(cache_dirs):
    """{dataset: cache folder} from each cache's meta.json; refuses other datasets and a dataset given twice."""
    found = {}
    for folder in map(pathlib.Path, cache_dirs):
        dataset = cache.read_meta(folder)["dataset"]
        if dataset not in DATASETS:
            raise ValueError(f"cache {folder} holds dataset {dataset!r}; a composite takes caches of {DATASETS}")
        if dataset in found:
            raise ValueError(f"caches {found[dataset]} and {folder} are both of dataset {dataset!r}")
        found[dataset] = folder
    return found


def _match(dataset, folder, wanted, summary, missing):
    """Index rows of the list's clips of one dataset found in its cache, in list order.

    The list clips not found go to `missing` as (dataset, subject, clip); the rest of what is
    noticed to `summary`.
    """
    index = cache.read_index(folder)
    keys = collections.Counter(zip(index["subject"].map(id_key), index["clip_id"].map(id_key)))
    ambiguous = [key for key, count in keys.items() if count > 1]
    if ambiguous:
        raise ValueError(f"cache {folder}: clips {ambiguous[:5]} differ only in leading zeros; cannot match the list")
    rows = {key: row for key, row in zip(zip(index["subject"].map(id_key), index["clip_id"].map(id_key)),
                                         index.to_dict("records"))}
    matched, not_found = [], set()
    for item in wanted.itertuples(index=False):
        name = f"{dataset}/{item.subject}/{item.clip}"
        row = rows.get((id_key(item.subject), id_key(item.clip)))
        if row is None:
            not_found.add(name)
            missing.append({"dataset": dataset, "subject": item.subject, "clip": item.clip})
            continue
        expected = EMOTION_CLASSES[dataset].get(row["emotion"])
        if expected != item.label:
            summary["label_disagreements"].append(
                f"{name}: list {CLASS_NAMES[item.label]}, cache emotion {row['emotion']!r} (the list's label is used)")
        matched.append({**row, "subject": f"{dataset}/{row['subject']}", "label": int(item.label),
                        "emotion": CLASS_NAMES[item.label], "file": f"{dataset}/{row['file']}", "dataset": dataset})
    summary["missing_clips"][dataset] = len(wanted) - len(matched)
    for subject, clips in wanted.groupby("subject", sort=False):
        if all(f"{dataset}/{subject}/{c}" in not_found for c in clips["clip"]):
            summary["subjects_without_clips"].append(f"{dataset}/{subject}")
    dropped = [e for e in EMOTION_CLASSES[dataset] if e not in cache.read_meta(folder)["class_names"]]
    if dropped and not_found:
        summary["hints"].append(f"the {dataset} cache {folder} has no {', '.join(dropped)} clips: preprocess it "
                                "again with --all-emotions")
    return matched


def _link(out, dataset, target):
    """`out/<dataset>` as a symbolic link to the cache folder `target` (replaced atomically)."""
    link = out / dataset
    if os.path.lexists(link) and not link.is_symlink():
        raise files.OutputError(f"{link} exists and is not a link to a cache; remove it or use another folder")
    temp = out / f".{dataset}{files.TEMP_SUFFIX}"
    try:
        temp.unlink(missing_ok=True)
        os.symlink(pathlib.Path(target).resolve(), temp, target_is_directory=True)
        os.replace(temp, link)
    except OSError as error:
        raise files.OutputError.writing(link, error) from error


@dataclasses.dataclass
class Composite:
    """A composite as planned by `plan_composite`, before anything is written.

    Attributes:
        caches: {dataset: source cache folder}.
        index: the composite's index (a DataFrame: the sources' index columns, then `dataset`).
        meta: its meta.json; `meta["composite"]` is the summary plus each source's fingerprint.
        missing: the list clips not found, as {"dataset", "subject", "clip"} rows (`MISSING_FILE`).
    """

    caches: dict
    index: pd.DataFrame
    meta: dict
    missing: list

    @property
    def summary(self):
        """The summary (`build_composite`'s return value): meta's "composite" without the sources."""
        return {k: v for k, v in self.meta["composite"].items() if k != "sources"}


def plan_composite(cache_dirs, name="megc2019", clips="challenge", datasets=DATASETS, allow_missing=False,
                   progress=False):
    """The composite of the caches `cache_dirs`, in memory: reads them, writes nothing.

    With `progress`, a line on stderr per cache read: the list clips found in it.

    Args and raises: see `build_composite`.
    """
    if name not in COMPOSITES:
        raise ValueError(f"composite must be one of {COMPOSITES}, got {name!r}")
    unknown = [d for d in datasets if d not in DATASETS]
    if unknown:
        raise ValueError(f"datasets {unknown} are not in the {name} composite ({DATASETS})")
    caches = find_caches(cache_dirs)
    extra = [d for d in caches if d not in datasets]
    if extra:
        raise ValueError(f"caches of {extra} given, but the composite is made of {list(datasets)}")
    missing = [d for d in datasets if d not in caches]
    if missing and not allow_missing:
        raise MissingDatasetsError(f"the {name} composite needs caches of {list(datasets)}; none given for "
                                   f"{missing}. Give them, or allow a run on {sorted(caches)} only "
                                   "(--allow-missing-datasets)")
    metas = {d: cache.read_meta(caches[d]) for d in datasets if d in caches}
    shapes = {d: (int(m["image_size"]), int(m["num_frames"])) for d, m in metas.items()}
    if len(set(shapes.values())) > 1:
        raise ValueError("caches differ in (image_size, num_frames): " +
                         ", ".join(f"{caches[d]} {s}" for d, s in shapes.items()))
    table = clip_list(clips)
    summary = {"name": name, "clip_set": clips, "datasets": list(metas), "missing_datasets": missing,
               "list_clips": 0, "clips": 0, "missing_clips": {}, "missing_clips_file": MISSING_FILE,
               "subjects_without_clips": [], "label_disagreements": [], "hints": [], "counts": {}, "subjects": {}}
    records, not_found = [], []
    say = console.progress_lines(progress)
    for dataset in metas:
        wanted = table[table["dataset"] == dataset]
        summary["list_clips"] += len(wanted)
        matched = _match(dataset, caches[dataset], wanted, summary, not_found)
        say(f"read the {dataset} cache {caches[dataset]}: {len(matched)} of its {len(wanted)} list clips found")
        labels = collections.Counter(r["label"] for r in matched)
        summary["counts"][dataset] = {c: labels[i] for i, c in enumerate(CLASS_NAMES)}
        summary["subjects"][dataset] = len({r["subject"] for r in matched})
        records += matched
    summary["clips"] = len(records)
    if not records:
        raise ValueError(f"none of the {summary['list_clips']} list clips is in the caches {list(caches.values())}")
    image_size, num_frames = next(iter(shapes.values()))
    meta = {"dataset": name, "class_names": list(CLASS_NAMES), "image_size": image_size, "num_frames": num_frames,
            "cropped": all(bool(m["cropped"]) for m in metas.values()),
            "composite": {**summary, "sources": {d: cache.cache_fingerprint(caches[d]) for d in metas}}}
    return Composite({d: caches[d] for d in metas}, pd.DataFrame(records), meta, not_found)


def write_composite(composite, out, progress=False):
    """Writes a planned composite into the cache folder `out` (meta.json last); files are replaced atomically.

    With `progress`, a line on stderr per cache linked: its clips, and the clips linked so far.
    """
    out = pathlib.Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise files.OutputError.writing(out, error) from error
    say = console.progress_lines(progress)
    clips = composite.index["dataset"].value_counts()
    linked = 0
    for dataset, folder in composite.caches.items():
        _link(out, dataset, folder)
        count = int(clips.get(dataset, 0))
        linked += count
        say(f"linked {out / dataset} -> {folder}: {count} clips ({linked} of {len(composite.index)})")
    files.atomic_write(out / cache.INDEX_FILE, lambda handle: composite.index.to_csv(handle, index=False))
    files.write_csv(out / MISSING_FILE, composite.missing, ("dataset", "subject", "clip"))
    cache.prepare_cache(out, composite.meta)


def build_composite(cache_dirs, out, name="megc2019", clips="challenge", datasets=DATASETS, allow_missing=False,
                    log=print, progress=False):
    """Writes the composite of the caches `cache_dirs` into the cache folder `out` (see the module docstring).

    Args:
        cache_dirs: preprocessed caches of CASME II, SAMM and/or SMIC-HS (any order).
        out: the composite's folder.
        name: a name of `COMPOSITES`.
        clips: "challenge" (442 clips) or "table" (441), see `clip_list`.
        datasets: the datasets the composite is made of (cross-dataset runs name fewer).
        allow_missing: go on without the datasets of `datasets` that have no cache.
        log: prints the summary.
        progress: a line on stderr per cache read, then per cache linked (`plan_composite`, `write_composite`).

    Returns:
        the summary dict (also in meta.json): datasets, missing_datasets, list_clips, clips, missing_clips (the
        count per dataset; the clips are listed in `out/MISSING_FILE`, named by missing_clips_file),
        subjects_without_clips, label_disagreements, hints, counts per dataset and class, subjects per dataset.

    Raises:
        MissingDatasetsError: a dataset of `datasets` has no cache and `allow_missing` is False.
        ValueError: no list clip is found, or the caches differ in image size or frame count (names them).
    """
    composite = plan_composite(cache_dirs, name, clips, datasets, allow_missing, progress)
    write_composite(composite, out, progress)
    log(format_summary(composite.summary, out, composite.missing))
    return composite.summary


def _first(items, count=EXAMPLES):
    return ": " + ", ".join(items[:count]) + (f", ... ({len(items) - count} more)" if len(items) > count else "")


def format_summary(summary, folder=None, missing=None):
    """The summary as text: clips per dataset and class, then what was not found, counted.

    Args:
        summary: the summary of `build_composite`.
        folder: the composite's folder, to name the file of the missing clips by its path.
        missing: the missing clips (`Composite.missing`): with them, the first few ids of each list are shown
            (the summary printed once, when the composite is built); without, the counts only.
    """
    lines = [f"{summary['name']} composite ({summary['clip_set']} clip list): {summary['clips']} of "
             f"{summary['list_clips']} list clips found, {sum(summary['subjects'].values())} subjects"]
    for dataset, counts in summary["counts"].items():
        lines.append(f"  {dataset}: {sum(counts.values())} clips of {summary['subjects'][dataset]} subjects ("
                     + ", ".join(f"{c} {n}" for c, n in counts.items()) + ")")
    if summary["missing_datasets"]:
        lines.append(f"  datasets left out (no cache given): {summary['missing_datasets']}")
    counts = {d: n for d, n in summary["missing_clips"].items() if n}
    if counts:
        where = pathlib.Path(folder, summary["missing_clips_file"]) if folder else \
            f"the composite's {summary['missing_clips_file']}"
        ids = _first([f"{c['dataset']}/{c['subject']}/{c['clip']}" for c in missing]) if missing else ""
        lines.append(f"  list clips not in the caches ({sum(counts.values())}; "
                     + ", ".join(f"{d} {n}" for d, n in counts.items()) + f"; all in {where}){ids}")
    for key, what in (("subjects_without_clips", "list subjects without clips"),
                      ("label_disagreements", "clips whose cache emotion maps to another class")):
        if summary[key]:
            lines.append(f"  {what} ({len(summary[key])}){_first(summary[key]) if missing is not None else ''}")
    lines += [f"  hint: {h}" for h in summary["hints"]]
    return "\n".join(lines)


def composite_summary(cache_dir):
    """The composite summary in a cache's meta.json, or None for a cache of one dataset."""
    return cache.read_meta(cache_dir).get("composite")
