"""The preprocessed clip cache (format 2): raw uint8 frames that TensorFlow reads natively.

Layout of a cache folder:
    meta.json    format, dataset, class_names, image_size, num_frames, cropped
                 and the run's settings (face model, crop margin, package version, ...)
    index.csv    one row per clip (INDEX_COLUMNS, then TEXT_COLUMNS); apex on the N-frame timeline
    clips/<subject>/<clip_id>.raw    frames uint8 [N, S, S, 3] in C order, no header
                                     (N and S from meta.json)
    clips/<subject>/<clip_id>.json   the clip's index row, the settings and sheet row
                                     that made it (provenance), shape and sha256 of the
                                     .raw file; written after it, removed before it is
                                     rewritten, so a sidecar always describes its frames
    .preprocess.lock                 held by a preprocess run (pid and host)

Every file is written atomically (`cmnet_keras.files`): a reader never sees half
of one. A cache of another format (format 1: one `.npz` per clip) is refused by
readers and by `cmnet_keras.preprocess`, with a line that says to rebuild it.
"""

import contextlib
import hashlib
import json
import os
import pathlib
import re
import socket
import time

import numpy as np
import pandas as pd

from cmnet_keras import files

FORMAT = 2
META_FILE = "meta.json"
INDEX_FILE = "index.csv"
CLIPS_DIR = "clips"
LOCK_FILE = ".preprocess.lock"
FRAMES_SUFFIX = ".raw"
SIDECAR_SUFFIX = ".json"
INDEX_COLUMNS = ("clip_id", "subject", "label", "emotion", "apex", "apex_source", "file", "num_source_frames")
INT_COLUMNS = ("label", "apex", "num_source_frames")
# Sheet text kept verbatim in the index, not used for training: absent from older caches, "" where a
# clip has none, and outside `cache_fingerprint` (a run on the cache resumes whatever they hold).
TEXT_COLUMNS = ("action_units",)
META_KEYS = ("dataset", "class_names", "image_size", "num_frames", "cropped")
APEX_SOURCES = ("annotated", "estimated")
UNREADABLE_LOCK_GRACE_S = 10.0  # a lock file still empty after this long was left by a killed run


class CacheError(ValueError):
    """A cache file is missing, truncated, unreadable or of an old format; the message names it."""


class CacheLockedError(RuntimeError):
    """Another preprocess run holds the cache's lock; the message names it (pid, host)."""


def clip_relpath(subject, clip_id):
    """Relative path of a clip's frames file, e.g. `clips/sub01/EP02_01f.raw`."""
    safe = [re.sub(r"[^\w.\-]+", "_", str(part)).strip(".") or "_" for part in (subject, clip_id)]
    return f"{CLIPS_DIR}/{safe[0]}/{safe[1]}{FRAMES_SUFFIX}"


def sidecar_path(cache_dir, file):
    """The JSON sidecar of the frames file `file` (relative to `cache_dir`)."""
    return (pathlib.Path(cache_dir) / file).with_suffix(SIDECAR_SUFFIX)


def save_clip(cache_dir, record, frames, provenance=None, true_intensity=None):
    """Writes one clip: its frames file, then its sidecar (both atomic).

    Args:
        record: the clip's index row (all INDEX_COLUMNS, any TEXT_COLUMNS; `file` from `clip_relpath`).
        frames: uint8 [N, S, S, 3].
        provenance: JSON-able dict of what made the clip (settings, sheet row).
        true_intensity: the clip's true intensity on its N frames (`data.truth`), or None: it has none.

    Raises:
        files.OutputError: a file cannot be written (names it); files already
            written are unchanged.
    """
    missing = [c for c in INDEX_COLUMNS if c not in record]
    if missing:
        raise ValueError(f"Clip record lacks {missing}: {record}")
    if not str(record["file"]).endswith(FRAMES_SUFFIX):
        raise ValueError(f"Clip {record['file']}: file must end with {FRAMES_SUFFIX} (use clip_relpath)")
    frames = np.ascontiguousarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"Clip {record['file']}: frames must be uint8 [N, S, S, 3], got {frames.dtype} {frames.shape}")
    if not 0 <= int(record["apex"]) < len(frames):
        raise ValueError(f"Clip {record['file']}: apex {record['apex']} outside 0..{len(frames) - 1}")
    if record["apex_source"] not in APEX_SOURCES:
        raise ValueError(f"Clip {record['file']}: apex_source must be one of {APEX_SOURCES}, got {record['apex_source']!r}")
    truth = {}
    if true_intensity is not None:
        true_intensity = np.asarray(true_intensity, np.float64)
        if true_intensity.shape != (len(frames),) or not np.all(np.isfinite(true_intensity)):
            raise ValueError(f"Clip {record['file']}: true_intensity must be {len(frames)} finite values, "
                             f"got shape {true_intensity.shape}")
        truth = {"true_intensity": np.round(true_intensity, 6).tolist()}
    record = {k: (int(record[k]) if k in INT_COLUMNS else str(record[k]))
              for k in INDEX_COLUMNS + TEXT_COLUMNS if k in record}
    data = frames.tobytes()
    sidecar = sidecar_path(cache_dir, record["file"])
    sidecar.unlink(missing_ok=True)  # no moment where an old sidecar describes new frames
    files.write_bytes(pathlib.Path(cache_dir) / record["file"], data)
    files.write_json(sidecar, {"record": record, "provenance": provenance, "shape": list(frames.shape),
                               "sha256": hashlib.sha256(data).hexdigest(), **truth})


def read_sidecar(cache_dir, file):
    """The sidecar of a cached clip, checked against its frames file; None if the clip is not cached.

    Returns:
        dict with `record` (index row), `provenance`, `shape`, `sha256`; or None
        when neither the sidecar nor the frames file exists, or only the frames
        file does (a run killed before the sidecar was written).

    Raises:
        CacheError: the sidecar is unreadable, or the frames file is missing,
            of the wrong length or content (names the file).
    """
    path, sidecar = pathlib.Path(cache_dir) / file, sidecar_path(cache_dir, file)
    if not sidecar.is_file():
        return None
    try:
        info = json.loads(sidecar.read_text())
        record, shape = info["record"], tuple(int(n) for n in info["shape"])
        data = path.read_bytes()
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CacheError(f"Unreadable cache clip {path} or its sidecar: {error}") from error
    if len(data) != int(np.prod(shape)):
        raise CacheError(f"Truncated cache clip {path}: {len(data)} bytes, expected {int(np.prod(shape))} for {shape}")
    if hashlib.sha256(data).hexdigest() != info.get("sha256"):
        raise CacheError(f"Corrupt cache clip {path}: its sha256 differs from the one in {sidecar.name}")
    if record.get("file") != str(file):
        raise CacheError(f"Cache clip sidecar {sidecar} describes {record.get('file')!r}, not {file!r}")
    return info


def read_true_intensity(cache_dir, files):
    """The stored true intensity of each clip in `files` (relative frames files): [N] float64 or None.

    Raises:
        CacheError: a sidecar is missing or unreadable (names it).
    """
    truths = []
    for file in files:
        sidecar = sidecar_path(cache_dir, file)
        try:
            values = json.loads(sidecar.read_text()).get("true_intensity")
        except (OSError, ValueError, AttributeError) as error:
            raise CacheError(f"Unreadable cache clip sidecar {sidecar}: {error}") from error
        truths.append(None if values is None else np.asarray(values, np.float64))
    return truths


def read_frames(path, shape):
    """Reads a frames file as uint8 `shape` with numpy (no header parsing).

    Raises:
        CacheError: the file is missing or has another length (names it).
    """
    path, shape = pathlib.Path(path), tuple(int(n) for n in shape)
    try:
        frames = np.fromfile(path, dtype=np.uint8)
    except OSError as error:
        raise CacheError(f"Unreadable cache clip {path}: {error}") from error
    if frames.size != int(np.prod(shape)):
        raise CacheError(f"Truncated cache clip {path}: {frames.size} bytes, expected {int(np.prod(shape))} "
                         f"for {shape}; rerun python -m cmnet_keras.preprocess to redo it")
    return frames.reshape(shape)


def load_clip(cache_dir, row):
    """Loads a clip with numpy: dict with `frames` uint8 [N, S, S, 3], `apex` and `label` (ints).

    For single clips (tests, prediction); training reads batches through
    `cmnet_keras.data.inputs`.

    Args:
        row: an index row (dict or pandas Series) or the relative file name.

    Raises:
        CacheError: the clip or its sidecar is missing, truncated or unreadable (names the file).
    """
    file = str(row if isinstance(row, (str, os.PathLike)) else row["file"])
    sidecar = sidecar_path(cache_dir, file)
    try:
        info = json.loads(sidecar.read_text())
        shape, record = info["shape"], info["record"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CacheError(f"Unreadable cache clip sidecar {sidecar}: {error}") from error
    frames = read_frames(pathlib.Path(cache_dir) / file, shape)
    return {"frames": frames, "apex": int(record["apex"]), "label": int(record["label"])}


def prepare_cache(cache_dir, meta):
    """Creates the cache folder and writes meta.json (with the current FORMAT).

    Args:
        meta: META_KEYS, and optionally `settings` (the run's provenance).

    Returns:
        the previous meta.json as a dict, or None if there was none.
    """
    cache_dir = pathlib.Path(cache_dir)
    missing = [k for k in META_KEYS if k not in meta]
    if missing:
        raise ValueError(f"meta lacks {missing}: {meta}")
    previous = json.loads((cache_dir / META_FILE).read_text()) if (cache_dir / META_FILE).is_file() else None
    files.write_json(cache_dir / META_FILE, {**meta, "class_names": list(meta["class_names"]), "format": FORMAT})
    return previous


def read_meta(cache_dir):
    """meta.json of a cache in the current format.

    Raises:
        FileNotFoundError: no meta.json.
        CacheError: a cache of another format (says to rerun preprocess).
    """
    path = pathlib.Path(cache_dir) / META_FILE
    if not path.is_file():
        raise FileNotFoundError(f"No {META_FILE} in {cache_dir}: not a preprocessed cache (run cmnet_keras.preprocess)")
    meta = json.loads(path.read_text())
    if meta.get("format", 1) != FORMAT:
        raise CacheError(
            f"Cache {cache_dir} is in format {meta.get('format', 1)}; this version reads format {FORMAT} only: "
            "rebuild it (delete it and rerun python -m cmnet_keras.preprocess)."
        )
    return meta


def write_index(cache_dir, records):
    """Writes index.csv atomically from index rows (dicts with INDEX_COLUMNS; TEXT_COLUMNS "" where absent)."""
    table = pd.DataFrame(list(records), columns=list(INDEX_COLUMNS + TEXT_COLUMNS))
    table[list(TEXT_COLUMNS)] = table[list(TEXT_COLUMNS)].fillna("")
    files.atomic_write(pathlib.Path(cache_dir) / INDEX_FILE, lambda handle: table.to_csv(handle, index=False))


def read_index(cache_dir):
    """index.csv as a DataFrame (ids and TEXT_COLUMNS as strings, so `006` stays `006` and AU `12` stays `12`).

    Raises:
        FileNotFoundError: no index.csv.
        CacheError: a row's `file` is not a clip inside the cache (names the line and the file).
    """
    path = pathlib.Path(cache_dir) / INDEX_FILE
    if not path.is_file():
        raise FileNotFoundError(f"No {INDEX_FILE} in {cache_dir}: not a preprocessed cache (run cmnet_keras.preprocess)")
    dtypes = {c: (np.int64 if c in INT_COLUMNS else str) for c in INDEX_COLUMNS + TEXT_COLUMNS}
    table = pd.read_csv(path, dtype=dtypes, keep_default_na=False)
    missing = [c for c in INDEX_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path} lacks columns {missing}")
    _check_files(cache_dir, table["file"])
    return table


def _check_files(cache_dir, names):
    """Raises CacheError for an index `file` that is not a clip inside the cache (a cache may come from others).

    A cache's clips lie under its `clips/`; a composite's under its links to the caches it was built
    from (`<dataset>/`, its meta's datasets). A file is refused when it is absolute, climbs out with
    `..`, or, links followed, lies outside the one of those folders it starts with (which may be a link).
    """
    cache_dir = pathlib.Path(cache_dir)
    meta = cache_dir / META_FILE
    composite = json.loads(meta.read_text()).get("composite") if meta.is_file() else None
    if composite:
        roots = {d: os.path.realpath(cache_dir / d) for d in composite["datasets"]}
        where = "the caches it was built from (" + ", ".join(f"{d}/" for d in roots) + ")"
    else:
        roots, where = {CLIPS_DIR: os.path.realpath(cache_dir / CLIPS_DIR)}, f"its {CLIPS_DIR}/ folder"
    for line, name in enumerate(names, 2):
        path = pathlib.PurePosixPath(name)
        if path.is_absolute():
            problem = "is an absolute path"
        elif ".." in path.parts:
            problem = "climbs out with '..'"
        elif len(path.parts) < 2 or path.parts[0] not in roots or \
                os.path.commonpath([roots[path.parts[0]], os.path.realpath(cache_dir / name)]) != roots[path.parts[0]]:
            problem = f"lies outside {where}"
        else:
            continue
        raise CacheError(f"{cache_dir / INDEX_FILE} line {line}: file {name!r} {problem}; refused")


def cache_fingerprint(cache_dir):
    """sha256 of the cache's meta (format and settings included) and index content.

    Equal caches on other machines match; a cache rebuilt with other settings does not.
    TEXT_COLUMNS are left out: they do not change what a model is trained on.
    """
    index = read_index(cache_dir)[list(INDEX_COLUMNS)].sort_values("file").reset_index(drop=True)
    payload = json.dumps(read_meta(cache_dir), sort_keys=True) + index.to_csv(index=False)
    return hashlib.sha256(payload.encode()).hexdigest()


def _pid_alive(pid):
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


@contextlib.contextmanager
def lock(cache_dir, log=print):
    """Holds the cache's `.preprocess.lock` (created with O_EXCL) while the block runs.

    A lock left by a process that no longer runs on this host is taken over
    (with a message through `log`); any other lock fails at once.

    Raises:
        CacheLockedError: another run holds the lock (names its pid and host).
        files.OutputError: the folder or lock cannot be written.
    """
    cache_dir = pathlib.Path(cache_dir)
    path = cache_dir / LOCK_FILE
    owner = {"pid": os.getpid(), "host": socket.gethostname()}
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise files.OutputError.writing(cache_dir, error) from error
    while True:
        try:
            descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, files.FILE_MODE)
            break
        except FileExistsError:
            holder = _stale_lock_holder(path, owner["host"])
            if holder is None:
                continue  # vanished meanwhile: try again
            if holder is False:
                raise CacheLockedError(_locked_message(cache_dir, path)) from None
            log(f"Taking over the lock {path} left by process {holder} on {owner['host']}, which no longer runs")
            path.unlink(missing_ok=True)
        except OSError as error:
            raise files.OutputError.writing(path, error) from error
    try:
        with os.fdopen(descriptor, "w") as handle:
            json.dump(owner, handle)
    except OSError as error:
        path.unlink(missing_ok=True)
        raise files.OutputError.writing(path, error) from error
    try:
        yield path
    finally:
        with contextlib.suppress(OSError, ValueError):
            if json.loads(path.read_text()) == owner:
                path.unlink()


def _read_lock(path):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}


def _stale_lock_holder(path, host):
    """None: the lock vanished; False: held (or unknown); else the dead holder's pid (a stale lock)."""
    holder = _read_lock(path)
    if holder is None:
        return None
    if not holder:  # empty or half-written: its writer is creating it, or was killed doing so
        try:
            age = time.time() - path.stat().st_mtime
        except FileNotFoundError:
            return None
        return "unknown" if age > UNREADABLE_LOCK_GRACE_S else False
    if holder.get("host") == host and not _pid_alive(holder.get("pid", -1)):
        return holder.get("pid")
    return False


def _locked_message(cache_dir, path):
    holder = _read_lock(path) or {}
    return (f"Cache {cache_dir} is being written by another preprocess run (pid {holder.get('pid', '?')} on host "
            f"{holder.get('host', '?')}; lock file {path}). Wait for it to finish, or delete the lock file if "
            "that process is gone.")
