"""The embedded dataset's cache for a run without `--cache`: generated and preprocessed on first use."""

import pathlib

from cmnet_keras.config import PRESETS
from cmnet_keras.data.generator.dataset import MANIFEST, generate_embedded_dataset
from cmnet_keras.data.preprocessing import preprocess_dataset
from cmnet_keras.data.readers import read_dataset
from cmnet_keras.data.truth import attach_truth, read_truth_table


def ensure_embedded_cache(image_size, num_frames, data_dir="data", seed=0):
    """The embedded dataset, generated and preprocessed on first use, with every clip's true intensity.

    Generation restarts if it was interrupted (the sheet is written last);
    preprocessing resumes, skipping clips already cached.

    Returns:
        the cache folder `<data_dir>/embedded_cache` (`embedded_cache_<S>px` for an
        image size other than the demo preset's).
    """
    data_dir = pathlib.Path(data_dir)
    root = data_dir / "embedded"
    suffix = "" if image_size == PRESETS["demo"]["image_size"] else f"_{image_size}px"
    cache = data_dir / f"embedded_cache{suffix}"
    if not any(root.glob("CASME2-coding-*")):
        print(f"Generating the embedded dataset into {root} ...", flush=True)
        generate_embedded_dataset(root, seed=seed, overwrite=True, verbose=True)
    spec = read_dataset("casme2", root)
    attach_truth(spec, read_truth_table(root / MANIFEST))
    report = preprocess_dataset(spec, cache, image_size=image_size, num_frames=num_frames)
    if report.processed or report.num_failed:
        print(report.summary(), flush=True)
    return cache
