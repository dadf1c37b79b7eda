"""`python -m cmnet_keras.preprocess` SIGKILLed at random moments and resumed equals an uninterrupted run (issue 10)."""

import json
import os
import pathlib
import sys

import pandas as pd
import pytest

from cmnet_keras import preprocess
from cmnet_keras.data import cache
from killharness import kill_and_resume, leftovers, tree_bytes
from test_readers import casme2_sheet_frame, write_frames

REPO = pathlib.Path(__file__).resolve().parents[1]
NUM_CLIPS, CLIP_FRAMES = 1000, 20  # about 10 s of work on a loaded 2-core machine, after ~5-13 s of imports


def write_many_clips(root):
    """A cropped CASME II tree of NUM_CLIPS clips (folders linked to one real 20-frame folder)."""
    table = pd.DataFrame({
        "subject": [1 + i // 50 for i in range(NUM_CLIPS)],
        "filename": [f"EP{i:04d}" for i in range(NUM_CLIPS)],
        "onset": 1, "apex": [1 + i % CLIP_FRAMES for i in range(NUM_CLIPS)], "offset": CLIP_FRAMES,
        "emotion": [("happiness", "others", "surprise", "disgust")[i % 4] for i in range(NUM_CLIPS)],
        "action_units": "1",
    })
    root.mkdir(parents=True)
    casme2_sheet_frame(table).to_csv(root / "CASME2-coding-20140508.csv", index=False)
    frames = root / "frames"
    write_frames(frames, range(1, CLIP_FRAMES + 1), "reg_img", ".png", size=16)
    for row in table.itertuples():
        folder = root / "Cropped" / f"sub{row.subject:02d}" / row.filename
        folder.parent.mkdir(parents=True, exist_ok=True)
        folder.symlink_to(frames, target_is_directory=True)
    return root


def args(root, out):
    return ["--dataset", "casme2", "--root", str(root), "--out", str(out), "--cropped", "--size", "8", "--quiet"]


def lock_pid(out):
    try:
        return json.loads((out / cache.LOCK_FILE).read_text()).get("pid")
    except (OSError, ValueError):
        return None


@pytest.mark.slow
def test_killed_and_resumed_preprocess_equals_an_uninterrupted_run(tmp_path):
    root = write_many_clips(tmp_path / "casme2")
    reference = tmp_path / "reference"
    assert preprocess.main(args(root, reference)) == preprocess.EXIT_OK
    out = tmp_path / "cache"
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
    attempts = kill_and_resume(
        [sys.executable, "-m", "cmnet_keras.preprocess", *args(root, out)], kills=5, seed=0, delay=(0.1, 1.5),
        env=env, cwd=REPO, ready=lambda pid: lock_pid(out) == pid,
        progress=lambda: len(list(out.rglob("*.json"))) - 1)  # sidecars, not meta.json
    killed = [a for a in attempts if a.killed]
    print("clips done at each kill:", [a.progress for a in killed], "delays:", [round(a.delay, 2) for a in killed])
    assert len(killed) >= 5
    done = [a.progress for a in killed]
    assert done == sorted(done) and sum(0 < d < NUM_CLIPS for d in done) >= 3, done  # kills landed mid-work
    assert attempts[-1].returncode == preprocess.EXIT_OK, attempts[-1].output
    assert f"skipped (already cached with the same settings and sheet row): {done[-1]}" in attempts[-1].output
    assert any("Taking over the lock" in a.output for a in attempts[1:])  # a killed run leaves its lock
    assert leftovers(out, [cache.LOCK_FILE]) == []
    assert tree_bytes(out) == tree_bytes(reference)
