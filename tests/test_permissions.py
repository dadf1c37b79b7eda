"""Files and folders the package writes get the umask's modes (a server running as another user reads them)."""

import contextlib
import os
import stat

import pytest

from cmnet_keras import saved_model
from cmnet_keras.commands import export, train
from cmnet_keras.config import get_config
from cmnet_keras.models import build_cmnet

# umask -> (file mode, folder mode) of a plain open() / mkdir under it
MODES = {0o022: (0o644, 0o755), 0o077: (0o600, 0o700)}


@contextlib.contextmanager
def umask(mask):
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def wrong_modes(root, mask):
    """Every path under `root` (root included) whose permission bits are not those of `MODES[mask]`."""
    file_mode, folder_mode = MODES[mask]
    paths = [root, *root.rglob("*")]
    assert len(paths) > 3, f"nothing written under {root}"
    return {str(p.relative_to(root.parent)): oct(stat.S_IMODE(p.stat().st_mode)) for p in paths
            if stat.S_IMODE(p.stat().st_mode) != (folder_mode if p.is_dir() else file_mode)}


@pytest.mark.parametrize("mask", sorted(MODES))
def test_cache_and_export_follow_the_umask(tmp_path, synthetic_cache, mask):
    with umask(mask):
        cache_dir = synthetic_cache(tmp_path / "cache", ["s1", "s2"])
        model = build_cmnet(get_config("tiny", num_classes=3, class_names=("a", "b", "c")))
        version = saved_model.export_saved_model(model, tmp_path / "saved_models", name="cmnet", version=1)
    assert wrong_modes(cache_dir, mask) == {}
    assert wrong_modes(version.parent, mask) == {}
    assert (version / "saved_model.pb").is_file() and (version / "assets" / "class_names.txt").is_file()


def test_run_final_model_and_its_export_are_world_readable_under_umask_022(tmp_path, synthetic_cache):
    with umask(0o022):
        cache_dir = synthetic_cache(tmp_path / "cache", ["s1", "s2"])
        out = tmp_path / "run"
        train.main(["--cache", str(cache_dir), "--preset", "tiny", "--epochs", "1", "--folds", "0",
                    "--final-model", "--verbose", "0", "--out", str(out)])
        assert export.main([str(out / "model.keras"), "--out", str(tmp_path / "saved_models")]) == 0
    assert (out / "model.keras").is_file() and (out / "results.json").is_file()
    assert wrong_modes(out, 0o022) == {}
    assert wrong_modes(tmp_path / "saved_models", 0o022) == {}
