"""The preprocessed clip cache: one `.npz` per clip, `index.csv` and `meta.json`.

Layout of a cache folder:
    meta.json    dataset, class_names, image_size, num_frames, cropped
    index.csv    one row per clip (INDEX_COLUMNS); apex on the N-frame timeline
    clips/<subject>/<clip_id>.npz   frames uint8 [N, S, S, 3], apex, label and the
                                    clip's index row (so a killed run's index can be rebuilt)

Every file is written to a temporary file in the same folder and renamed over
the target (`os.replace`), so a reader never sees a half-written file.
"""

import hashlib
import json
import os
import pathlib
import re
import tempfile
import zipfile

import numpy as np
import pandas as pd

META_FILE = "meta.json"
INDEX_FILE = "index.csv"
CLIPS_DIR = "clips"
TEMP_SUFFIX = ".tmp"
INDEX_COLUMNS = ("clip_id", "subject", "label", "emotion", "apex", "apex_source", "file", "num_source_frames")
INT_COLUMNS = ("label", "apex", "num_source_frames")
META_KEYS = ("dataset", "class_names", "image_size", "num_frames", "cropped")
APEX_SOURCES = ("annotated", "estimated")


def atomic_write(path, write):
    """Calls `write(binary_file)` on a temp file beside `path`, then renames it to `path`.

    On any error (or interrupt) the temp file is removed and `path` is untouched.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            write(handle)
        os.replace(temp, path)
    except BaseException:
        pathlib.Path(temp).unlink(missing_ok=True)
        raise


def clip_relpath(subject, clip_id):
    """Relative path of a clip's file, e.g. `clips/sub01/EP02_01f.npz`."""
    safe = [re.sub(r"[^\w.\-]+", "_", str(part)).strip(".") or "_" for part in (subject, clip_id)]
    return f"{CLIPS_DIR}/{safe[0]}/{safe[1]}.npz"


def save_clip(cache_dir, record, frames):
    """Writes one clip atomically to `cache_dir / record["file"]`.

    Args:
        record: the clip's index row (all INDEX_COLUMNS).
        frames: uint8 [N, S, S, 3].
    """
    missing = [c for c in INDEX_COLUMNS if c not in record]
    if missing:
        raise ValueError(f"Clip record lacks {missing}: {record}")
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"Clip {record['file']}: frames must be uint8 [N, S, S, 3], got {frames.dtype} {frames.shape}")
    if not 0 <= int(record["apex"]) < len(frames):
        raise ValueError(f"Clip {record['file']}: apex {record['apex']} outside 0..{len(frames) - 1}")
    if record["apex_source"] not in APEX_SOURCES:
        raise ValueError(f"Clip {record['file']}: apex_source must be one of {APEX_SOURCES}, got {record['apex_source']!r}")
    arrays = {f"meta_{k}": np.asarray(str(record[k])) for k in INDEX_COLUMNS}
    arrays.update(frames=frames, apex=np.int32(record["apex"]), label=np.int32(record["label"]))
    atomic_write(pathlib.Path(cache_dir) / record["file"], lambda handle: np.savez(handle, **arrays))


def load_clip(cache_dir, row):
    """Loads a clip: dict with `frames` uint8 [N, S, S, 3], `apex` and `label` (ints).

    Args:
        row: an index row (dict or pandas Series) or the relative file name.
    """
    file = row if isinstance(row, (str, os.PathLike)) else row["file"]
    path = pathlib.Path(cache_dir) / file
    try:
        with open(path, "rb") as handle, np.load(handle) as data:
            return {"frames": data["frames"], "apex": int(data["apex"]), "label": int(data["label"])}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as error:
        raise ValueError(f"Corrupt or unreadable cache file {path}: {error}") from error


def cached_record(cache_dir, file, num_frames, image_size):
    """The index row stored in a cached clip if the file is loadable and has the right shape, else None."""
    path = pathlib.Path(cache_dir) / file
    if not path.is_file():
        return None
    try:
        with open(path, "rb") as handle, np.load(handle) as data:
            frames = data["frames"]
            record = {k: data[f"meta_{k}"].item() for k in INDEX_COLUMNS}
    except Exception:  # any unreadable file is redone
        return None
    if frames.dtype != np.uint8 or frames.shape != (num_frames, image_size, image_size, 3):
        return None
    for key in INT_COLUMNS:
        record[key] = int(record[key])
    return record if 0 <= record["apex"] < num_frames else None


def prepare_cache(cache_dir, meta):
    """Creates the cache folder, checks an existing meta.json agrees, removes stale temp files.

    Raises:
        ValueError: the folder holds a cache made with other settings (names the keys).
    """
    cache_dir = pathlib.Path(cache_dir)
    missing = [k for k in META_KEYS if k not in meta]
    if missing:
        raise ValueError(f"meta lacks {missing}: {meta}")
    meta = {**meta, "class_names": list(meta["class_names"])}
    if (cache_dir / META_FILE).is_file():
        old = read_meta(cache_dir)
        differ = {k: (old.get(k), meta[k]) for k in META_KEYS if old.get(k) != meta[k]}
        if differ:
            raise ValueError(
                f"Cache {cache_dir} was made with other settings (key: (cached, requested)) {differ}; "
                "use another --out folder"
            )
    cache_dir.mkdir(parents=True, exist_ok=True)
    for temp in cache_dir.rglob(f".*{TEMP_SUFFIX}"):
        temp.unlink(missing_ok=True)
    atomic_write(cache_dir / META_FILE, lambda handle: handle.write(json.dumps(meta, indent=2).encode()))


def read_meta(cache_dir):
    path = pathlib.Path(cache_dir) / META_FILE
    if not path.is_file():
        raise FileNotFoundError(f"No {META_FILE} in {cache_dir}: not a preprocessed cache (run cmnet_keras.preprocess)")
    return json.loads(path.read_text())


def write_index(cache_dir, records):
    """Writes index.csv atomically from index rows (dicts with INDEX_COLUMNS)."""
    table = pd.DataFrame(list(records), columns=list(INDEX_COLUMNS))
    atomic_write(pathlib.Path(cache_dir) / INDEX_FILE, lambda handle: table.to_csv(handle, index=False))


def read_index(cache_dir):
    """index.csv as a DataFrame (ids as strings, so `006` stays `006`)."""
    path = pathlib.Path(cache_dir) / INDEX_FILE
    if not path.is_file():
        raise FileNotFoundError(f"No {INDEX_FILE} in {cache_dir}: not a preprocessed cache (run cmnet_keras.preprocess)")
    dtypes = {c: (np.int64 if c in INT_COLUMNS else str) for c in INDEX_COLUMNS}
    table = pd.read_csv(path, dtype=dtypes, keep_default_na=False)
    missing = [c for c in INDEX_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path} lacks columns {missing}")
    return table


def cache_fingerprint(cache_dir):
    """sha256 of the cache's meta and index content: equal caches on other machines match."""
    index = read_index(cache_dir).sort_values("file").reset_index(drop=True)
    payload = json.dumps(read_meta(cache_dir), sort_keys=True) + index.to_csv(index=False)
    return hashlib.sha256(payload.encode()).hexdigest()
