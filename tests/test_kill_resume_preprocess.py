"""`python -m cmnet_keras.preprocess` SIGKILLed at random moments and resumed equals an uninterrupted run (issue 10)."""

import json
import random
import sys

import pandas as pd
import pytest

from cmnet_keras.commands import preprocess
from cmnet_keras.data import cache
from fixtures import REPO, REPO_ENV, casme2_sheet_frame, preprocess_args, write_frames
from killharness import kill_and_resume, leftovers, tree_bytes

NUM_CLIPS, CLIP_FRAMES = 1000, 20  # 2-10 s of work on a 2-core machine, after 5-13 s of imports


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


def lock_pid(out):
    try:
        return json.loads((out / cache.LOCK_FILE).read_text()).get("pid")
    except (OSError, ValueError):
        return None


def clips_done(out):
    return sum(1 for _ in (out / cache.CLIPS_DIR).rglob("*.json")) if (out / cache.CLIPS_DIR).is_dir() else 0


class AfterRandomProgress:
    """`ready` for the harness: true once the run holds the lock and finished 1..MAX_CLIPS_PER_RUN more clips
    (drawn per start), so every kill lands mid-work however fast the machine is."""

    MAX_CLIPS_PER_RUN = 150  # 5 kills leave at least 250 of the 1000 clips to the last run

    def __init__(self, out, seed):
        self.out, self.rng, self.pid, self.target = out, random.Random(seed), None, None

    def __call__(self, pid):
        if pid != self.pid:
            self.pid, self.target = pid, clips_done(self.out) + self.rng.randint(1, self.MAX_CLIPS_PER_RUN)
        return lock_pid(self.out) == pid and clips_done(self.out) >= self.target


@pytest.mark.slow
def test_killed_and_resumed_preprocess_equals_an_uninterrupted_run(tmp_path):
    root = write_many_clips(tmp_path / "casme2")
    reference = tmp_path / "reference"
    assert preprocess.main(preprocess_args(root, reference)) == preprocess.EXIT_OK
    out = tmp_path / "cache"
    attempts = kill_and_resume(  # killed 0..50 ms after a random number of finished clips
        [sys.executable, "-m", "cmnet_keras.preprocess", *preprocess_args(root, out)], kills=5, seed=0,
        delay=(0.0, 0.05), env=REPO_ENV, cwd=REPO, ready=AfterRandomProgress(out, seed=1), progress=lambda: clips_done(out))
    killed = [a for a in attempts if a.killed]
    done = [a.progress for a in killed]
    print("clips done at each kill:", done, "delays after the trigger:", [round(a.delay, 3) for a in killed])
    assert len(killed) == 5 and len(attempts) == 6
    assert all(a < b for a, b in zip(done, done[1:])) and 0 < done[-1] < NUM_CLIPS, done  # kills landed mid-work
    assert attempts[-1].returncode == preprocess.EXIT_OK, attempts[-1].output
    assert f"skipped (already cached with the same settings and sheet row): {done[-1]}" in attempts[-1].output
    assert "Taking over the lock" in attempts[-1].output  # the killed run left its lock
    assert leftovers(out, [cache.LOCK_FILE]) == []
    assert tree_bytes(out) == tree_bytes(reference)
