"""The data of a run: one cache, the composite of several, or a cross-dataset pair, and the folds it runs.

A composite is built in `<out>/composite` (`cmnet_keras.data.composite`). It
is planned in memory first and written only when no run in `<out>` was made
with another one: a rerun with other composite options is refused and leaves
the composite, and so the runs made with it, as they were.
"""

import dataclasses
import json
import os
from pathlib import Path

from cmnet_keras.data import cache, composite
from cmnet_keras.data.folds import fold_subjects
from cmnet_keras.training.loso import parse_folds
from cmnet_keras.training.run_dir import CONFIG_FILE, check_settings

COMPOSITE_DIR = "composite"  # the composite cache of a run, in its out folder
_NOT_RUNS = (COMPOSITE_DIR, "folds")  # folders of `out` that hold no run directory


@dataclasses.dataclass(frozen=True)
class RunData:
    """What `training.run_loso` reads: the cache, what a fold holds out, and the folds to run (None: all)."""

    cache_dir: Path
    hold_out: str = "subject"
    folds: list | None = None

    def loso_options(self):
        """The fields of `records.RunOptions` for this data."""
        return {"hold_out": self.hold_out, "folds": self.folds}


def check_caches(option, caches):
    """Raises FileNotFoundError naming `option` and the first of `caches` without an index.csv."""
    for folder in caches:
        if not Path(folder, "index.csv").is_file():
            raise FileNotFoundError(f"{option} {folder}: no index.csv; run cmnet_keras.preprocess first")


def _runs_in(out):
    """Whether `out` holds a run directory (a config.json; run folders' contents and links are not searched)."""
    for _, folders, names in os.walk(out):
        if CONFIG_FILE in names:
            return True
        folders[:] = [f for f in folders if f not in _NOT_RUNS]
    return False


def plan_composite(caches, name=None, clips=None, datasets=None, allow_missing=False, progress=False):
    """`composite.plan_composite` with the defaults of the options left out (None).

    Args:
        caches: the datasets' cache folders.
        name, clips: the composite and clip set (default: the first of `COMPOSITES`, `CLIP_SETS`).
        datasets: the composite's datasets (default: all of the composite's, those without a cache named).
        allow_missing: go on without the datasets that have no cache.
        progress: a line on stderr per cache read.
    """
    return composite.plan_composite(caches, name=name or composite.COMPOSITES[0],
                                    clips=clips or composite.CLIP_SETS[0], datasets=datasets or composite.DATASETS,
                                    allow_missing=allow_missing, progress=progress)


def write_composite(out, planned, log=print, progress=False):
    """Writes a planned composite into `<out>/composite` and prints its summary; its folder.

    With `progress`, a line on stderr per cache linked.

    Raises:
        ConfigMismatchError: `<out>/composite` holds another composite and `out` holds runs (made with it);
            nothing is written.
    """
    folder = Path(out) / COMPOSITE_DIR
    meta_file = folder / cache.META_FILE
    if meta_file.is_file() and _runs_in(out):
        saved = {k: v for k, v in json.loads(meta_file.read_text()).items() if k != "format"}
        check_settings(saved, json.loads(json.dumps(planned.meta)),
                       f"{folder} is the composite of the runs in {out}, made with other caches or composite "
                       "options; use the same ones, or another --out.", labels=("run", "now"))
    composite.write_composite(planned, folder, progress)
    log(composite.format_summary(planned.summary, folder, planned.missing))
    return folder


def run_data(out, caches=None, name=None, clips=None, allow_missing=False, train_caches=None, test_cache=None,
             folds=None, default_cache=None, progress=False):
    """The data of a run; a composite is built in `<out>/composite` (`write_composite`).

    Args:
        out: the run's folder.
        caches: cache folders (`--cache`): one is the cache itself, several (or `name`) make their composite.
        name, clips, allow_missing: the composite's options (`--composite`, `--composite-clips`,
            `--allow-missing-datasets`), errors without a composite.
        train_caches, test_cache: a cross-dataset run (`--train-cache`, `--test-cache`, instead of `caches`): the
            composite of all, whose one fold holds out the test cache's dataset.
        folds: fold numbers to run (`--folds`, see `parse_folds`; None: all).
        default_cache: called for the cache when none is given (the embedded dataset).
        progress: say on stderr how the building of a composite goes (the caches read, the clips linked).

    Raises:
        ValueError: options that do not go together, or a test cache without list clips (names them).
        FileNotFoundError: a cache without an index.
    """
    if train_caches or test_cache is not None:
        return _cross_dataset(out, caches, name, clips, allow_missing, train_caches, test_cache, folds, progress)
    if name and not caches:
        raise ValueError(f"--composite {name} needs the datasets' caches (--cache DIR DIR DIR)")
    several = len(caches or ()) > 1 or bool(name)
    for option, value in (("--composite-clips", clips), ("--allow-missing-datasets", allow_missing)):
        if value and not several:
            raise ValueError(f"{option} applies to a composite (several --cache folders, or --composite), "
                             f"not to {'one --cache folder' if caches else 'the embedded dataset'}")
    if caches:
        check_caches("--cache", caches)
        cache_dir = write_composite(out, plan_composite(caches, name, clips, allow_missing=allow_missing,
                                                        progress=progress), progress=progress) \
            if several else Path(caches[0])
    else:
        cache_dir = Path(default_cache())
    if folds is not None:
        folds = parse_folds(folds, len(fold_subjects(cache.read_index(cache_dir))))
    return RunData(cache_dir, folds=folds)


def _cross_dataset(out, caches, name, clips, allow_missing, train_caches, test_cache, folds, progress):
    """`run_data` of a cross-dataset run."""
    if caches or not train_caches or test_cache is None:
        raise ValueError("a cross-dataset run takes --train-cache DIR [DIR ...] and --test-cache DIR, not --cache")
    if folds is not None:
        raise ValueError("--folds: a cross-dataset run has one fold (the test dataset)")
    every = [*train_caches, test_cache]
    check_caches("--train-cache/--test-cache", every)
    planned = plan_composite(every, name, clips, datasets=list(composite.find_caches(every)),
                             allow_missing=allow_missing, progress=progress)
    datasets = fold_subjects(planned.index, "dataset")
    test = cache.read_meta(test_cache)["dataset"]
    if test not in datasets:
        raise ValueError(f"--test-cache {test_cache}: none of its {test} clips is in the composite's clip list; "
                         "nothing to test on")
    return RunData(write_composite(out, planned, progress=progress), hold_out="dataset", folds=[datasets.index(test)])
