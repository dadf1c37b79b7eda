"""Packaging: an sdist builds a wheel on its own, the wheel installs and imports, its metadata
has ranges (no pins, no TensorFlow build forced) that contain the tested pins of constraints.txt,
and a missing optional dependency names the extra that brings it."""

import email
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from cmnet_keras import optional

ROOT = Path(__file__).resolve().parents[1]
EXTRAS = {"cpu", "gpu", "preprocess", "tuning", "test"}


def _pip(*args, cwd):
    done = subprocess.run([sys.executable, "-m", "pip", *args], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The wheel built from an sdist of a copy of the repository (no build artefacts left in it)."""
    tmp = tmp_path_factory.mktemp("build")
    src = tmp / "src"
    src.mkdir()
    for name in ("setup.py", "README.md", "MANIFEST.in", "constraints.txt"):
        shutil.copy(ROOT / name, src)
    for package in ("cmnet_keras", "tuning"):
        shutil.copytree(ROOT / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run([sys.executable, "setup.py", "-q", "sdist", "-d", str(tmp / "sdist")], cwd=src,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (sdist,) = (tmp / "sdist").glob("*.tar.gz")
    _pip("wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(tmp / "wheel"), str(sdist),
         cwd=tmp)
    (built,) = (tmp / "wheel").glob("cmnet_keras-*.whl")
    return built


@pytest.fixture(scope="module")
def metadata(wheel):
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return email.message_from_bytes(archive.read(name))


def _requirements(metadata):
    """{extra or "": [Requirement]} of the wheel's Requires-Dist."""
    out = {}
    for line in metadata.get_all("Requires-Dist"):
        requirement = Requirement(line)
        extra = ""
        if requirement.marker is not None:
            extra = next(e for e in EXTRAS if requirement.marker.evaluate({"extra": e}))
        out.setdefault(extra, []).append(requirement)
    return out


def _constraints():
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    pins = [Requirement(line) for line in lines if line.strip() and not line.startswith("#")]
    return {pin.name.lower().replace("_", "-"): pin for pin in pins}


@pytest.mark.slow
def test_wheel_installs_into_a_fresh_folder_and_imports(wheel, tmp_path):
    target = tmp_path / "site"
    _pip("install", "-q", "--no-deps", "--no-index", "--target", str(target), str(wheel), cwd=tmp_path)
    code = "import cmnet_keras, tuning; print(cmnet_keras.__file__); print(tuning.__file__); print(cmnet_keras.CMNet)"
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(target), "PATH": ""},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    module_file, tuning_file = done.stdout.splitlines()[:2]
    assert Path(module_file).is_relative_to(target) and Path(tuning_file).is_relative_to(target)
    entry_points = next(target.glob("cmnet_keras-*.dist-info")) / "entry_points.txt"
    assert "cmnet-train = cmnet_keras.commands.train:main" in entry_points.read_text()


@pytest.mark.slow
def test_metadata_has_ranges_and_lets_the_extras_choose_tensorflow(metadata):
    assert metadata["Requires-Python"] == ">=3.11"
    assert set(metadata.get_all("Provides-Extra")) == EXTRAS
    requirements = _requirements(metadata)
    specifiers = [spec for reqs in requirements.values() for r in reqs for spec in r.specifier]
    assert specifiers and all(spec.operator not in ("==", "===") for spec in specifiers)
    assert not any(r.name.startswith("tensorflow") for r in requirements[""])
    assert [(r.name, r.extras) for r in requirements["gpu"]] == [("tensorflow", {"and-cuda"})]
    assert [r.name for r in requirements["cpu"]] == ["tensorflow-cpu"]
    assert {"torch", "jax", "jaxlib", "pytest"} <= {r.name for r in requirements["test"]}


@pytest.mark.slow
def test_tested_pins_lie_inside_the_ranges(metadata):
    pins = _constraints()
    for extra, requirements in _requirements(metadata).items():
        for requirement in requirements:
            pin = pins[requirement.name.lower()]
            (version,) = [spec.version for spec in pin.specifier]
            assert requirement.specifier.contains(version, prereleases=True), (extra, str(requirement), str(pin))


@pytest.mark.slow
def test_every_optional_import_names_an_extra_that_brings_it(metadata):
    requirements = _requirements(metadata)
    for module, (distributions, extras) in optional.OPTIONAL.items():
        provided = {Requirement(d).name for d in distributions.split(" or ")}
        for extra in extras:
            assert provided & {r.name for r in requirements[extra]}, (module, extra)


def test_missing_optional_dependency_names_the_extra():
    code = ("import sys; sys.modules['cv2'] = None\n"
            "import cmnet_keras.data.media")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: No module named 'cv2'") and '".[preprocess]"' in last


def test_installed_optional_dependency_imports():
    assert optional.require("cv2").__name__ == "cv2"
    with pytest.raises(ValueError, match="'numpy' is not an optional dependency"):
        optional.require("numpy")


@pytest.mark.slow
def test_requirements_txt_is_the_tested_cpu_environment():
    """It only names constraints.txt and the extras, and resolves in this environment (installed from the pins)
    with no index: every requirement is already satisfied at its pin, only the package itself would install."""
    lines = [line for line in (ROOT / "requirements.txt").read_text().splitlines() if not line.startswith("#")]
    assert lines == ["-c constraints.txt", "-e .[cpu,preprocess,tuning]"]
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-index", "--no-build-isolation",
                           "-r", "requirements.txt"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "Would install cmnet-keras-0.1.0"
