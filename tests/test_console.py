"""The commands' console: no TensorFlow or mediapipe C++ log lines, warnings as one line of our own."""

import os
import pathlib
import re
import subprocess
import sys

import pytest

from fixtures import write_casme2_tree

REPO = pathlib.Path(__file__).resolve().parents[1]
# What TensorFlow's and mediapipe's C++ logging prints (seen on this machine before the change).
NATIVE = re.compile(r"^([IWE]0000 |WARNING: All log messages before absl|WARNING: Logging before InitGoogle|"
                    r"INFO: Created TensorFlow Lite|To enable the following instructions)", re.M)


@pytest.mark.slow
def test_preprocess_with_face_detection_prints_only_our_lines(tmp_path, face_model):
    root = tmp_path / "casme2"
    write_casme2_tree(root)
    missing = next((root / "CASME2_RAW_selected" / "sub01").iterdir())
    for frame in missing.iterdir():
        frame.unlink()
    missing.rmdir()
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "CMNET_NATIVE_LOGS")}
    done = subprocess.run([sys.executable, "-m", "cmnet_keras.preprocess", "--dataset", "casme2", "--root", str(root),
                           "--out", str(tmp_path / "cache"), "--size", "8", "--limit", "2", "--quiet",
                           "--face-model", str(face_model)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 3, done.stderr  # 8 px frames hold no face: the clips fail, named
    assert NATIVE.search(done.stderr) is None, done.stderr
    assert f"warning: " in done.stderr and f"clip folder not found: {missing}" in done.stderr
    assert "UserWarning" not in done.stderr and "warnings.warn" not in done.stderr
    shown = subprocess.run([sys.executable, "-m", "cmnet_keras.preprocess", "--dataset", "casme2", "--root",
                            str(root), "--out", str(tmp_path / "cache2"), "--size", "8", "--limit", "1", "--quiet",
                            "--face-model", str(face_model)], cwd=REPO, env={**env, "CMNET_NATIVE_LOGS": "1"},
                           capture_output=True, text=True, timeout=300)
    assert NATIVE.search(shown.stderr), shown.stderr  # asked for: shown
