"""SavedModel export for TF Serving: fresh-process outputs, signature listing, CLI."""

import json
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

import cmnet_keras
from cmnet_keras import saved_model
from cmnet_keras.commands import export
from cmnet_keras.config import get_config
from cmnet_keras.models import build_cmnet

CLASSES = ("anger", "contempt", "happiness", "surprise", "others")
REPO = pathlib.Path(cmnet_keras.__file__).resolve().parents[1]
BIN = pathlib.Path(sys.executable).parent

FRESH_LOAD = """
import sys, numpy as np, tensorflow as tf
clips = np.load(sys.argv[1])["frames"]
signature = tf.saved_model.load(sys.argv[2]).signatures["serving_default"]
out = signature(frames=tf.constant(clips))
np.savez(sys.argv[3], **{k: v.numpy() for k, v in out.items()})
"""


def _env():
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny CMNet trained for one epoch on 4 noise clips, saved as .keras."""
    folder = tmp_path_factory.mktemp("export")
    config = get_config("tiny", num_classes=5, class_names=CLASSES)
    model = build_cmnet(config)
    rng = np.random.default_rng(0)
    x = {"frames": rng.integers(0, 256, (4, 16, 32, 32, 3), dtype=np.uint8),
         "apex": rng.integers(0, 16, (4,)).astype("int32")}
    model.fit(x, np.array([0, 1, 2, 3], "int32"), batch_size=2, epochs=1, verbose=0)
    model.save(folder / "model.keras")
    return model, folder


@pytest.fixture(scope="module")
def exported(trained):
    model, folder = trained
    return saved_model.export_saved_model(model, folder / "saved_models", name="cmnet", version=1)


def test_layout_and_class_names(exported):
    assert exported.name == "1" and exported.parent.name == "cmnet"
    assert (exported / "saved_model.pb").is_file()
    assert (exported / "variables" / "variables.index").is_file()
    assert (exported / "assets" / "class_names.txt").read_text().split() == list(CLASSES)
    assert json.loads((exported / "assets" / "cmnet_config.json").read_text())["image_size"] == 32
    assert saved_model.read_class_names(exported.parent) == list(CLASSES)
    assert not [p for p in exported.parent.iterdir() if p.name != "1"]  # no staging folder left


@pytest.mark.slow
def test_fresh_process_gives_the_keras_outputs(trained, exported, tmp_path):
    model, _ = trained
    clips = np.random.default_rng(1).integers(0, 256, (3, 16, 32, 32, 3), dtype=np.uint8)
    np.savez(tmp_path / "clips.npz", frames=clips)
    subprocess.run([sys.executable, "-c", FRESH_LOAD, str(tmp_path / "clips.npz"), str(exported),
                    str(tmp_path / "out.npz")], check=True, env=_env(), capture_output=True)
    served = np.load(tmp_path / "out.npz", allow_pickle=True)
    expected = model.predict({"frames": clips}, verbose=0)
    assert served["probs"].shape == (3, 5) and served["intensity"].shape == (3, 16)
    np.testing.assert_allclose(served["probs"], expected["probs"], atol=1e-5)
    np.testing.assert_allclose(served["intensity"], expected["intensity"], atol=1e-5)
    np.testing.assert_array_equal(served["class_index"], np.argmax(expected["probs"], axis=-1))
    assert served["class_index"].dtype == np.int32
    assert [n.decode() for n in served["class_name"]] == [CLASSES[i] for i in np.argmax(expected["probs"], -1)]


@pytest.mark.slow
def test_saved_model_cli_lists_the_signature(exported):
    text = subprocess.run([str(BIN / "saved_model_cli"), "show", "--all", "--dir", str(exported)], check=True,
                          capture_output=True, text=True).stdout
    signature = text[text.index("signature_def['serving_default']"):]
    signature = signature[:signature.index("Method name is: tensorflow/serving/predict")]

    def tensor(kind, name):
        block = signature[signature.index(f"{kind}['{name}'] tensor_info:"):]
        return block.split("\n")[1].split(":")[1].strip(), block.split("\n")[2].split(":")[1].strip()

    assert tensor("inputs", "frames") == ("DT_UINT8", "(-1, 16, 32, 32, 3)")
    assert tensor("outputs", "probs") == ("DT_FLOAT", "(-1, 5)")
    assert tensor("outputs", "class_index") == ("DT_INT32", "(-1)")
    assert tensor("outputs", "class_name") == ("DT_STRING", "(-1)")
    assert tensor("outputs", "intensity") == ("DT_FLOAT", "(-1, 16)")
    assert signature.count("inputs[") == 1


def test_cli_versions_and_refusals(trained, tmp_path, capsys):
    _, folder = trained
    model_file = str(folder / "model.keras")
    out = str(tmp_path / "served")
    assert export.main([model_file, "--name", "cmnet", "--version", "2", "--out", out]) == 0
    output = capsys.readouterr()
    # The stages on stderr as they go, in order; the time on the last line.
    target = tmp_path / "served" / "cmnet" / "2"
    assert output.err.splitlines() == [f"loading the model {model_file} ...",
                                       "tracing the serving signature (frames: uint8 [B, 16, 32, 32, 3]) ...",
                                       f"writing the SavedModel to {target} ..."]
    assert re.fullmatch(rf"Exported {re.escape(model_file)} -> {re.escape(str(target))} in \d+\.\d s .*\n",
                        output.out)
    assert export.main([model_file, "--name", "cmnet", "--version", "2", "--out", out]) == 2
    assert "already exists" in capsys.readouterr().err
    assert export.main([model_file, "--version", "0", "--out", out]) == 2
    assert "version must be a positive integer" in capsys.readouterr().err
    assert export.main([str(tmp_path / "missing.keras"), "--out", out]) == 2
    assert "missing.keras" in capsys.readouterr().err
    assert export.main([model_file, "--name", "cmnet", "--version", "10", "--out", out]) == 0
    assert saved_model.resolve_version_dir(tmp_path / "served" / "cmnet").name == "10"  # numeric, not string, order
