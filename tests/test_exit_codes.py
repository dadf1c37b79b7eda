"""One exit-code convention for every command: 0 done, 2 bad input, 3 some clips failed, 1 a bug."""

import os
import pathlib
import subprocess
import sys

import pytest

from cmnet_keras.commands import ablation, export, grid, merge, predict, preprocess, train
from fixtures import onset_after_offset, run_preprocess, write_bad_input_tree

REPO = pathlib.Path(__file__).resolve().parents[1]


def _code(main, argv):
    try:
        return main(argv)
    except SystemExit as stop:
        return stop.code


def bad_input_cases(tmp):
    missing = str(tmp / "missing")
    return {
        "train": (train.main, ["--cache", missing, "--out", str(tmp / "t")]),
        "ablation": (ablation.main, ["--table", "losses", "--cache", missing, "--out", str(tmp / "a")]),
        "tuning.grid": (grid.main, ["--cache", missing, "--out", str(tmp / "g")]),
        "preprocess": (preprocess.main, ["--dataset", "casme2", "--root", missing, "--out", str(tmp / "c")]),
        "export": (export.main, [missing + ".keras", "--out", str(tmp / "s")]),
        "predict": (predict.main, [missing + ".mp4", "--model", missing + ".keras"]),
        "merge": (merge.main, [missing, "--out", str(tmp / "m")]),
    }


@pytest.mark.parametrize("command", sorted(bad_input_cases(pathlib.Path("."))))
def test_bad_input_is_exit_code_2_with_one_line(command, tmp_path, capsys):
    main, argv = bad_input_cases(tmp_path)[command]
    assert _code(main, argv) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and "missing" in captured.err, captured.err
    assert "Traceback" not in captured.err
    assert len(captured.err.strip().splitlines()) == 1, captured.err


@pytest.mark.parametrize("command", sorted(bad_input_cases(pathlib.Path("."))))
def test_bad_argument_is_exit_code_2(command, tmp_path, capsys):
    main, argv = bad_input_cases(tmp_path)[command]
    assert _code(main, [*argv, "--no-such-option"]) == 2
    assert "unrecognized arguments: --no-such-option" in capsys.readouterr().err


def test_some_clips_failed_is_exit_code_3(tmp_path, capsys):
    root = write_bad_input_tree(tmp_path / "casme2")
    onset_after_offset(root)
    with pytest.warns(UserWarning):
        assert run_preprocess(root, tmp_path / "cache") == 3


# module, the function its main calls (replaced by one that raises an error no command expects), its arguments
BUGS = {
    "cmnet_keras.train": ("cmnet_keras.commands.cli", "config_from_args", ["--out", "x"]),
    "cmnet_keras.ablation": ("cmnet_keras.commands.cli", "config_from_args", ["--table", "losses", "--out", "x"]),
    "tuning.grid": ("cmnet_keras.embedded_cache", "ensure_embedded_cache", ["--embedded", "--out", "x"]),
    "cmnet_keras.preprocess": ("cmnet_keras.data.readers", "read_dataset", ["--dataset", "casme2", "--root", ".",
                                                                            "--out", "x"]),
    "cmnet_keras.export": ("keras.models", "load_model", ["README.md"]),
    "cmnet_keras.predict": ("cmnet_keras.inference", "predict_clip", ["in.mp4", "--model", "m.keras"]),
    "cmnet_keras.merge": ("cmnet_keras.training.merge", "merge_runs", ["a", "--out", "x"]),
}
INJECT = """
import importlib, runpy, sys
module, name, command = sys.argv[1], sys.argv[2], sys.argv[3]
def bug(*args, **kwargs):
    raise ZeroDivisionError("injected bug")
setattr(importlib.import_module(module), name, bug)
sys.argv = [command, *sys.argv[4:]]
runpy.run_module(command, run_name="__main__", alter_sys=True)
"""


@pytest.mark.slow
@pytest.mark.parametrize("command", sorted(BUGS))
def test_a_bug_is_exit_code_1_with_its_traceback(command, tmp_path):
    module, name, argv = BUGS[command]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", INJECT, module, name, command, *argv], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Traceback" in done.stderr and "ZeroDivisionError: injected bug" in done.stderr


def test_tuner_without_its_extra_is_one_line_naming_it(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "keras_tuner", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "tuning.search")
    assert grid.main(["--embedded", "--out", str(tmp_path / "search")]) == 2
    assert not (tmp_path / "search").exists()
    err = capsys.readouterr().err
    assert err.startswith("error: No module named 'keras_tuner'") and '".[tuning]"' in err
    assert len(err.strip().splitlines()) == 1
