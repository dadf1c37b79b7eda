"""`--help` of every command answers without TensorFlow, Keras, JAX, PyTorch, mediapipe or OpenCV.

Importing any of them takes seconds; with them refused, each command still
prints its usage and exits 0, so its parser is built from light modules
(`cmnet_keras.options`) and the heavy ones load after parsing.
"""

import ast
import pathlib
import subprocess
import sys

import pytest

from cmnet_keras import config, options

COMMANDS = ["cmnet_keras.train", "cmnet_keras.preprocess", "cmnet_keras.ablation", "cmnet_keras.merge",
            "cmnet_keras.export", "cmnet_keras.predict", "cmnet_keras.data.embedded", "tuning.grid"]
REPO = pathlib.Path(__file__).resolve().parents[1]
HEAVY = ("tensorflow", "keras", "jax", "torch", "mediapipe", "cv2")
REFUSING_HEAVY_IMPORTS = f"""
import importlib.abc, runpy, sys

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {HEAVY!r}:
            raise ImportError(f"{{name}} imported before parsing")

sys.meta_path.insert(0, Refuse())
sys.argv = sys.argv[1:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""


@pytest.mark.slow
@pytest.mark.parametrize("module", COMMANDS)
def test_help_without_heavy_imports(module):
    done = subprocess.run([sys.executable, "-c", REFUSING_HEAVY_IMPORTS, module, "--help"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: python -m {module}"), done.stdout


def test_refused_imports_are_refused():
    done = subprocess.run([sys.executable, "-c", REFUSING_HEAVY_IMPORTS, "cmnet_keras.models", "--help"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "keras imported before parsing" in done.stderr


def test_option_names_are_those_of_the_definitions():
    assert list(options.PRESET_NAMES) == sorted(config.PRESETS)
    assert list(options.TENDENCY_NAMES) == sorted(config.TENDENCY)


def test_only_the_command_modules_define_main():
    """The library, and the modules that users type after `python -m` (aliases of the commands), define no `main`."""
    defining = {path.relative_to(REPO).as_posix() for folder in ("cmnet_keras", "tuning")
                for path in (REPO / folder).rglob("*.py")
                if any(isinstance(node, ast.FunctionDef) and node.name == "main"
                       for node in ast.parse(path.read_text()).body)}
    assert defining == {f"cmnet_keras/commands/{name}.py" for name in
                        ("train", "preprocess", "ablation", "merge", "export", "predict", "embedded", "grid")}
