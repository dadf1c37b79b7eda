"""Kill-and-resume harness for the long-running command lines (preprocess, train, tuner).

`kill_and_resume` runs a command, SIGKILLs it (its whole process group) at
seeded random moments, starts it again each time, and finally lets it finish.
The caller then compares what it left with an uninterrupted run's output.

Example:

    attempts = kill_and_resume([sys.executable, "-m", "cmnet_keras.train", ...], kills=5, seed=0,
                               delay=(0.5, 4.0), ready=lambda pid: started(out, pid),
                               progress=lambda: count_done_files(out))
    assert sum(a.killed for a in attempts) == 5 and attempts[-1].returncode == 0
    assert leftovers(out) == [] and results(out) == results(uninterrupted_out)

`ready` may also hold the kill until some random amount of work is done (see
tests/test_kill_resume_preprocess.py), so kills land mid-work on any machine.
"""

import dataclasses
import os
import pathlib
import random
import signal
import subprocess
import tempfile
import time

TEMP_SUFFIX = ".tmp"
READY_POLL_S = 0.02


@dataclasses.dataclass
class Attempt:
    """One start of the command.

    Attributes:
        delay: seconds after the start at which the kill was due (None: let it finish).
        killed: whether it was SIGKILLed (False: it ended by itself first).
        returncode: its exit status (-9 when killed).
        seconds: how long it ran.
        progress: the caller's `progress()` after it ended (None without one).
        output: its stdout and stderr.
    """

    delay: float
    killed: bool
    returncode: int
    seconds: float
    progress: object
    output: str


def kill_and_resume(cmd, kills=5, seed=0, delay=(1.0, 5.0), env=None, cwd=None, timeout=600, progress=None,
                    ready=None, max_starts=None):
    """Runs `cmd`, SIGKILLing it `kills` times at random moments and resuming, then once to the end.

    Each run is started in its own process group (so children die with it) and
    killed `random.Random(seed).uniform(*delay)` seconds after it started, or
    after `ready(pid)` first returned true (polled; e.g. "the run took its lock",
    so that slow imports do not eat the delay). A run
    that ends by itself before its kill was due counts as a start without a
    kill; starts go on until `kills` kills landed (at most `max_starts`, default
    `3 * kills`), then a last run goes to its end.

    Args:
        cmd: the command (list of strings).
        kills: SIGKILLs to deliver.
        seed: seeds the delays.
        delay: (low, high) seconds after each start.
        env, cwd: for `subprocess.Popen`.
        timeout: seconds any one run may take.
        progress: optional callable, called after each run (e.g. counting
            finished output files), recorded in its Attempt.
        ready: optional callable taking the run's pid; the delay starts when it
            returns true.
        max_starts: give up (AssertionError) after this many starts without
            enough kills: the job is too short for the delays.

    Returns:
        list of Attempt, the last one the run that finished.
    """
    rng = random.Random(seed)
    max_starts = 3 * kills if max_starts is None else max_starts
    attempts = []
    while sum(a.killed for a in attempts) < kills:
        if len(attempts) >= max_starts:
            raise AssertionError(f"only {sum(a.killed for a in attempts)} of {kills} kills landed in {len(attempts)} "
                                 f"starts: the job ends before delays in {delay} s; make it longer or the delays shorter")
        attempts.append(_run(cmd, rng.uniform(*delay), env, cwd, timeout, progress, ready))
    attempts.append(_run(cmd, None, env, cwd, timeout, progress, ready))
    return attempts


def _wait_until_ready(process, ready, deadline):
    while process.poll() is None and time.monotonic() < deadline and not ready(process.pid):
        time.sleep(READY_POLL_S)


def _run(cmd, delay, env, cwd, timeout, progress, ready):
    start = time.monotonic()
    with tempfile.TemporaryFile() as log:  # a file, not a pipe: a chatty command never blocks on a full pipe
        process = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        if ready is not None and delay is not None:
            _wait_until_ready(process, ready, start + timeout)
        try:
            process.wait(timeout=timeout if delay is None else delay)
            killed = False
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            if delay is None:
                raise AssertionError(f"{cmd} ran longer than {timeout} s") from None
            killed = True
        log.seek(0)
        output = log.read().decode(errors="replace")
    return Attempt(delay, killed, process.returncode, time.monotonic() - start, progress() if progress else None,
                   output)


def leftovers(folder, names=()):
    """Temp files (hidden names holding `.tmp`) and any of `names` (e.g. lock files) still under `folder`."""
    folder = pathlib.Path(folder)
    found = list(folder.rglob(f".*{TEMP_SUFFIX}*"))  # also temps with a suffix after .tmp (".x.tmp.keras")
    found += [p for name in names for p in folder.rglob(name)]
    return sorted(found)


def tree_bytes(folder):
    """{relative path: bytes} of every file under `folder`, to compare two outputs byte for byte."""
    folder = pathlib.Path(folder)
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
