"""Atomic file writes: the one way this package writes a file that a reader may open.

Every file goes to a unique temporary file beside its target and is renamed over
it (`os.replace`), so a reader, or a run resumed after a kill, sees the old file
or the new one, never half of one. A write that fails (full disk, read-only
folder) leaves the target as it was and raises `OutputError` naming the path.
Files and folders get the permissions of a plain `open()` or `mkdir` under the
process's umask (temp files are created 0600: they are widened before the rename).
"""

import contextlib
import csv
import io
import json
import os
import pathlib
import tempfile

TEMP_SUFFIX = ".tmp"
FILE_MODE, FOLDER_MODE = 0o666, 0o777  # before the umask, as open() and mkdir use them


def umask():
    """The process's umask, read without changing it where /proc tells it (Linux)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # elsewhere: read by setting it, then put back
    os.umask(mask)
    return mask


def make_readable_as_umask(path):
    """Gives `path`, and everything below it if a folder, the modes a new file or folder gets under the umask."""
    mask = umask()
    path = pathlib.Path(path)
    for item in [path, *(path.rglob("*") if path.is_dir() else ())]:
        if not item.is_symlink():
            os.chmod(item, (FOLDER_MODE if item.is_dir() else FILE_MODE) & ~mask)


class OutputError(OSError):
    """A file could not be written (permissions, full disk); the message names the path."""

    @classmethod
    def writing(cls, path, error):
        """The OutputError for an OSError `error` raised while writing `path`."""
        return cls(error.errno, f"cannot write {path}: {error.strerror or error}")


@contextlib.contextmanager
def atomic_path(path, suffix=""):
    """Yields a temp path beside `path` for a writer that takes a path; renames it to `path` after.

    Args:
        path: the target file; its folder is created.
        suffix: appended to the temp name (e.g. ".keras", which `Model.save` requires).

    Raises:
        OutputError: the folder or file cannot be written; `path` is unchanged.
    """
    path = pathlib.Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX + suffix)
        os.close(descriptor)
    except OSError as error:
        raise OutputError.writing(path, error) from error
    try:
        yield pathlib.Path(temp)
        make_readable_as_umask(temp)
        os.replace(temp, path)
    except OSError as error:
        pathlib.Path(temp).unlink(missing_ok=True)
        raise OutputError.writing(path, error) from error
    except BaseException:
        pathlib.Path(temp).unlink(missing_ok=True)
        raise


def atomic_write(path, write):
    """Calls `write(binary_file)` on a temp file beside `path`, then renames it to `path` (`atomic_path`)."""
    with atomic_path(path) as temp, open(temp, "wb") as handle:
        write(handle)


def write_bytes(path, data):
    """Writes `data` (bytes) atomically."""
    atomic_write(path, lambda handle: handle.write(data))


def write_json(path, payload):
    """Writes `payload` as indented, key-sorted JSON atomically."""
    write_bytes(path, json.dumps(payload, indent=2, sort_keys=True).encode())


def write_csv(path, rows, fieldnames):
    """Writes dict rows as CSV atomically (keys outside `fieldnames` are ignored)."""
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=fieldnames, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_bytes(path, text.getvalue().encode())


def remove_stale_temps(folder):
    """Deletes temp files that a killed writer left under `folder` (hidden names holding `.tmp`)."""
    for temp in pathlib.Path(folder).rglob(f".*{TEMP_SUFFIX}*"):
        temp.unlink(missing_ok=True)
