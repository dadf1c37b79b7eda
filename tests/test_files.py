"""The atomic writer (`cmnet_keras.files`) under real crashes: a reader sees the old file or the new one, whole."""

import signal
import subprocess
import sys

import pytest

from cmnet_keras import files

OLD, NEW = b"old contents\n" * 1000, b"new contents\n" * 3000
# Writes NEW over argv[1] with files.write_bytes, SIGKILLed at the moment named by argv[2]. files.py is loaded
# on its own (standard library only), without the package and TensorFlow.
CRASH = """
import importlib.util, os, signal, sys
spec = importlib.util.spec_from_file_location("files", FILES)
files = importlib.util.module_from_spec(spec)
spec.loader.exec_module(files)

def die(*args):
    os.kill(os.getpid(), signal.SIGKILL)

if sys.argv[2] == "before rename":
    os.replace = die
    files.write_bytes(sys.argv[1], NEW)
else:  # "while writing": half the bytes are in the temp file
    files.atomic_write(sys.argv[1], lambda handle: (handle.write(NEW[:len(NEW) // 2]), handle.flush(), die()))
""".replace("NEW", repr(NEW)).replace("FILES", repr(files.__file__))


def _crash(path, moment):
    done = subprocess.run([sys.executable, "-c", CRASH, str(path), moment], capture_output=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]


def _temps(folder):
    return sorted(p.name for p in folder.iterdir() if p.name != "target.bin")


@pytest.mark.parametrize("moment, left", [("before rename", NEW), ("while writing", NEW[:len(NEW) // 2])])
def test_a_crash_leaves_the_old_file_whole_and_a_temp_that_is_cleaned_up(tmp_path, moment, left):
    path = tmp_path / "target.bin"
    path.write_bytes(OLD)
    _crash(path, moment)
    assert path.read_bytes() == OLD
    (temp,) = _temps(tmp_path)  # the killed writer's, beside the target: the whole new file before the rename
    assert temp.startswith(".target.bin.") and temp.endswith(files.TEMP_SUFFIX)
    assert (tmp_path / temp).read_bytes() == left
    files.remove_stale_temps(tmp_path)
    assert _temps(tmp_path) == [] and path.read_bytes() == OLD
    files.write_bytes(path, NEW)
    assert path.read_bytes() == NEW and _temps(tmp_path) == []


def test_a_failing_writer_leaves_the_old_file_and_no_temp(tmp_path):
    path = tmp_path / "target.bin"
    path.write_bytes(OLD)

    def fail(handle):
        handle.write(NEW)
        raise KeyError("the writer failed")

    with pytest.raises(KeyError, match="the writer failed"):
        files.atomic_write(path, fail)
    assert path.read_bytes() == OLD and _temps(tmp_path) == []

    def full_disk(handle):
        raise OSError(28, "No space left on device")

    with pytest.raises(files.OutputError, match=f"cannot write {path}: No space left on device"):
        files.atomic_write(path, full_disk)
    assert path.read_bytes() == OLD and _temps(tmp_path) == []
