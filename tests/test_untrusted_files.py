"""Files from someone else: crafted checkpoints, cache indexes, workbooks and run directories are refused by name.

The checkpoints are made here with `zipfile` and pickle opcodes written by hand (the
opcodes `torch.save` writes, checked against torch itself where it is installed), so
no torch is needed. They are all read in one child process: a reader that crashes
(a segmentation fault reading past a storage) fails the tests instead of the run.
"""

import json
import os
import pathlib
import pickle
import re
import subprocess
import sys
import zipfile

import numpy as np
import pandas as pd
import pytest

from cmnet_keras import get_config, pretrained
from cmnet_keras.commands import train
from cmnet_keras.data import cache, composite, sheets
from cmnet_keras.models import build_cmnet
from cmnet_keras.training import RunDirError, run_dir

REPO = pathlib.Path(__file__).resolve().parents[1]
FLOATS = np.arange(4, dtype="<f4").tobytes()  # the 16-byte storage of most cases: 0, 1, 2, 3
BOMB = 16 << 20  # bytes of zeros an entry inflates to; they deflate to about 16 kB


def op_global(module, name):
    return pickle.GLOBAL + f"{module}\n{name}\n".encode()


def op_value(value):
    """The opcodes of a plain value (int, str, tuple of them): a protocol-2 pickle without its header and STOP."""
    return pickle.dumps(value, protocol=2)[2:-1]


def tensor_opcodes(storage="FloatStorage", key="0", numel=4, offset=0, size=(4,), stride=(1,)):
    """What torch.save writes for a tensor: `_rebuild_tensor_v2((storage id), offset, size, stride, False, {})`."""
    storage_id = (pickle.MARK + op_value("storage") + op_global("torch", storage) + op_value(key) + op_value("cpu")
                  + op_value(numel) + pickle.TUPLE + pickle.BINPERSID)
    hooks = op_global("collections", "OrderedDict") + pickle.EMPTY_TUPLE + pickle.REDUCE
    return (op_global("torch._utils", "_rebuild_tensor_v2") + pickle.MARK + storage_id + op_value(offset)
            + op_value(tuple(size)) + op_value(tuple(stride)) + pickle.NEWFALSE + hooks + pickle.TUPLE + pickle.REDUCE)


def state_pickle(tensors):
    """A pickled OrderedDict {name: the opcodes of its tensor}."""
    items = b"".join(op_value(name) + opcodes for name, opcodes in tensors.items())
    return (pickle.PROTO + b"\x02" + op_global("collections", "OrderedDict") + pickle.EMPTY_TUPLE + pickle.REDUCE
            + pickle.MARK + items + pickle.SETITEMS + pickle.STOP)


def call_pickle(module, name, argument):
    """A pickle that calls `module.name(argument)` when loaded by a reader that allows it."""
    return pickle.PROTO + b"\x02" + op_global(module, name) + op_value((argument,)) + pickle.REDUCE + pickle.STOP


def write_checkpoint(path, data_pkl, storages, compress=zipfile.ZIP_STORED):
    """A checkpoint in torch's zip layout: archive/data.pkl, byteorder, data/<key> (stored, as torch writes)."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", data_pkl)
        archive.writestr("archive/byteorder", "little")
        for key, data in storages.items():
            archive.writestr(zipfile.ZipInfo(f"archive/data/{key}"), data, compress_type=compress)
        archive.writestr("archive/version", "3\n")
    return path


def one_tensor(path, data=FLOATS, compress=zipfile.ZIP_STORED, **record):
    """A checkpoint of one tensor "w" over the storage `data` (archive/data/0); `record`: `tensor_opcodes`'."""
    record = {"numel": len(data) // 4, **record}
    return write_checkpoint(path, state_pickle({"w": tensor_opcodes(**record)}), {"0": data}, compress)


def declare_size(path, name, size):
    """Rewrites the zip headers of entry `name` to declare `size` uncompressed bytes (its data unchanged)."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        local = archive.getinfo(name).header_offset
    data[local + 22:local + 26] = size.to_bytes(4, "little")  # the local header's uncompressed size
    central = [m.start() for m in re.finditer(b"PK\x01\x02", data)
               if data[m.start() + 46:m.start() + 46 + int.from_bytes(data[m.start() + 28:m.start() + 30], "little")]
               == name.encode()]
    data[central[0] + 24:central[0] + 28] = size.to_bytes(4, "little")  # the central directory's
    path.write_bytes(bytes(data))
    return path


def lying_header(path):
    """One tensor of 4 floats whose entry declares their 16 bytes but inflates to BOMB bytes."""
    one_tensor(path, data=bytes(BOMB), compress=zipfile.ZIP_DEFLATED, numel=4)
    return declare_size(path, "archive/data/0", 16)


def marker(path):
    return path.with_suffix(".ran")


TENSOR = r"tensor 'w': .*"
CASES = {  # case: (writes the checkpoint at a path, what its error says)
    "size past the end": (lambda p: one_tensor(p, size=(64,)),
                          TENSOR + r"offset 0, size \(64,\) and stride \(1,\) need 64 elements of its storage "
                                   r"archive/data/0, which holds 4"),
    "size far past the end": (lambda p: one_tensor(p, size=(10**8,)),
                              TENSOR + r"size \(100000000,\) .*need 100000000 elements"),
    "offset past the end": (lambda p: one_tensor(p, offset=4), TENSOR + r"offset 4, .* need 8 elements"),
    "stride walks off the storage": (lambda p: one_tensor(p, size=(2, 2), stride=(2, 4)),
                                     TENSOR + r"stride \(2, 4\) need 7 elements"),
    "negative stride": (lambda p: one_tensor(p, offset=3, stride=(-1,)),
                        TENSOR + r"stride \(-1,\): not integers in 0\.\.\d+"),
    "stride past numpy's arithmetic": (lambda p: one_tensor(p, size=(1,), stride=(10**30,)),
                                       TENSOR + r"stride \(10{30},\): not integers in 0\.\.\d+"),
    "stride-0 view of 10^12 elements": (lambda p: one_tensor(p, size=(10**6, 10**6), stride=(0, 0)),
                                        TENSOR + "holds 1000000000000 elements, .* a stride-0 view"),
    "element count larger than the entry": (lambda p: one_tensor(p, numel=100),
                                            TENSOR + "archive/data/0 declares 100 elements; the entry holds 4"),
    "length not a multiple of the dtype": (lambda p: one_tensor(p, data=FLOATS + b"\0\0", numel=4),
                                           TENSOR + r"archive/data/0 holds 18 bytes, not a multiple of 4 \(float32\)"),
    "dtype we do not map": (lambda p: one_tensor(p, storage="BFloat16Storage"), "refers to torch.BFloat16Storage"),
    "entry inflating past its header": (lying_header, TENSOR + "Bad CRC-32 for file 'archive/data/0'"),
    "entry larger than the file justifies": (
        lambda p: one_tensor(p, data=bytes(BOMB), compress=zipfile.ZIP_DEFLATED, size=(BOMB // 4,)),
        rf"refused unread: it would inflate to \d+ bytes, more than 16x .* archive/data/0, {BOMB} bytes"),
    "os.system": (lambda p: write_checkpoint(p, call_pickle("os", "system", f"touch {marker(p)}"), {}),
                  "refers to os.system"),
    "builtins.eval": (lambda p: write_checkpoint(p, call_pickle("builtins", "eval", f"open({str(marker(p))!r}, 'w')"),
                                                 {}), "refers to builtins.eval"),
    "subprocess.Popen": (lambda p: write_checkpoint(p, call_pickle("subprocess", "Popen", ("touch", str(marker(p)))),
                                                    {}), "refers to subprocess.Popen"),
}
READ_ALL = """
import json, sys
from cmnet_keras.pretrained import read_torch_state_dict
results = {}
for case, path in json.loads(sys.argv[1]).items():
    try:
        read_torch_state_dict(path)
        results[case] = None
    except Exception as error:
        results[case] = [type(error).__name__, str(error)]
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def crafted(tmp_path_factory):
    """{case: (its file, [exception name, message] or None)}: every case read in one child process."""
    folder = tmp_path_factory.mktemp("crafted")
    paths = {case: str(write(folder / f"{i}.pth")) for i, (case, (write, _)) in enumerate(CASES.items())}
    done = subprocess.run([sys.executable, "-c", READ_ALL, json.dumps(paths)], cwd=REPO, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, f"the reader crashed (exit code {done.returncode}): {done.stderr[-3000:]}"
    results = json.loads(done.stdout.strip().splitlines()[-1])
    return {case: (pathlib.Path(paths[case]), results[case]) for case in CASES}


@pytest.mark.parametrize("case", CASES)
def test_crafted_checkpoint_is_refused_by_name(crafted, case):
    path, result = crafted[case]
    assert result is not None, f"{case}: read without an error"
    kind, message = result
    assert kind == "ValueError" and message.startswith(f"{path}: "), message
    assert re.search(CASES[case][1], message), message
    assert not marker(path).exists()


def test_crafted_checkpoint_format_is_torch_s(tmp_path):
    """The hand-written opcodes are torch's: torch loads a valid file of them as the hand-computed tensors."""
    torch = pytest.importorskip("torch")
    floats, longs = np.arange(12, dtype="<f4").tobytes(), np.array([5, -7], "<i8").tobytes()
    path = write_checkpoint(tmp_path / "valid.pth", state_pickle({
        "w": tensor_opcodes(numel=12, offset=2, size=(2, 3), stride=(1, 2)),
        "b": tensor_opcodes("LongStorage", key="1", numel=2, size=(2,), stride=(1,)),
        "scalar": tensor_opcodes(numel=12, offset=11, size=(), stride=()),
    }), {"0": floats, "1": longs})
    expected = {"w": np.array([[2, 4, 6], [3, 5, 7]], np.float32), "b": np.array([5, -7]), "scalar": np.float32(11)}
    loaded = torch.load(path, weights_only=True)
    ours = pretrained.read_torch_state_dict(path)
    assert list(loaded) == list(ours) == list(expected)
    for key, value in expected.items():
        np.testing.assert_array_equal(loaded[key].numpy(), value, err_msg=key)
        np.testing.assert_array_equal(ours[key], value, err_msg=key)
        assert ours[key].dtype == value.dtype and ours[key].shape == value.shape


def test_crafted_checkpoint_stops_train_with_one_line(tmp_path):
    path = CASES["size far past the end"][0](tmp_path / "crafted.pth")
    done = subprocess.run([sys.executable, "-m", "cmnet_keras.train", "--preset", "paper", "--ffe-weights", str(path),
                           "--out", str(tmp_path / "run")], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 2, done.stderr[-3000:]
    lines = done.stderr.splitlines()  # TensorFlow's start-up lines, if any, then ours
    assert "Traceback" not in done.stderr and [line for line in lines if line.startswith("error")] == lines[-1:]
    assert lines[-1].startswith(f"error: {path}: tensor 'w': offset 0, size (100000000,)"), done.stderr[-3000:]
    assert not (tmp_path / "run").exists()


def test_workbook_inflating_far_past_its_size_is_refused_unread(tmp_path):
    path = tmp_path / "CASME2-coding-bomb.xlsx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as book:
        book.writestr("[Content_Types].xml", "<Types/>")
        book.writestr("xl/worksheets/sheet1.xml", bytes(BOMB))
    with pytest.raises(sheets.SheetError, match=rf"{re.escape(str(path))}: refused unread: .* more than 100x its "
                                                rf"\d+ bytes \(the largest part: xl/worksheets/sheet1.xml, {BOMB}"):
        sheets.read_sheet(path)


def _set_file(folder, file):
    index = pd.read_csv(folder / cache.INDEX_FILE, dtype=str, keep_default_na=False)
    index.loc[len(index) - 1, "file"] = file
    index.to_csv(folder / cache.INDEX_FILE, index=False)
    return len(index) + 1  # its line in index.csv


@pytest.mark.parametrize("file, problem", [
    ("/etc/passwd", "is an absolute path"),
    ("clips/../../elsewhere/clip.raw", "climbs out with '..'"),
    ("meta.json", "lies outside its clips/ folder"),
    ("clips/linked/clip.raw", "lies outside its clips/ folder"),  # clips/linked -> a folder beside the cache
])
def test_cache_index_file_outside_the_cache_is_refused(tmp_path, synthetic_cache, file, problem):
    folder = synthetic_cache(tmp_path / "cache", ["sub01"])
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", folder / "clips" / "linked")
    assert len(cache.read_index(folder)) == 2
    line = _set_file(folder, file)
    with pytest.raises(cache.CacheError, match=rf"index\.csv line {line}: file '{re.escape(file)}' {problem}; refused"):
        cache.read_index(folder)


@pytest.mark.parametrize("file, problem", [
    ("samm/clips/sub01/EP00.raw", r"lies outside the caches it was built from \(casme2/\)"),
    ("clips/sub01/EP00.raw", r"lies outside the caches it was built from \(casme2/\)"),
    ("casme2/../outside/EP00.raw", "climbs out with '..'"),
])
def test_composite_index_file_outside_its_sources_is_refused(tmp_path, synthetic_cache, file, problem):
    source = synthetic_cache(tmp_path / "casme2_cache", ["sub01"])
    index = cache.read_index(source).assign(dataset="casme2")
    index["file"] = "casme2/" + index["file"]
    meta = {**cache.read_meta(source), "dataset": "megc2019", "composite": {"datasets": ["casme2"]}}
    composite.write_composite(composite.Composite({"casme2": source}, index, meta, []), tmp_path / "composite")
    assert len(cache.read_index(tmp_path / "composite")) == 2  # its files read through the link
    line = _set_file(tmp_path / "composite", file)
    with pytest.raises(cache.CacheError, match=rf"line {line}: file '{re.escape(file)}' {problem}; refused"):
        cache.read_index(tmp_path / "composite")


STATE = {"epoch": 2, "history": {"loss": [1.5, 0.5]}, "train_seconds": 3.25, "checkpoint": "epoch_002.keras",
         "seed_states": [[1, 2]]}


@pytest.mark.parametrize("state, named", [
    ("{not json", "unreadable: "),
    ([STATE], "expected a JSON object, got a list"),
    ({**STATE, "epoch": "2"}, 'epoch must be an integer >= 1, got "2"'),
    ({**STATE, "history": {"loss": ["x"]}}, 'history must be an object of lists of numbers, got {"loss": ["x"]}'),
    ({**STATE, "checkpoint": "../../elsewhere/epoch_002.keras"},
     'checkpoint must be epoch_002.keras (its epoch\'s file beside it), got "../../elsewhere/epoch_002.keras"'),
])
def test_bad_state_json_is_named_before_a_checkpoint_loads(tmp_path, state, named):
    (tmp_path / run_dir.STATE_FILE).write_text(state if isinstance(state, str) else json.dumps(state))
    with pytest.raises(RunDirError, match=re.escape(f"{tmp_path / run_dir.STATE_FILE}: {named}")):
        run_dir.load_epoch_checkpoint(tmp_path)


def test_state_json_as_written_resumes(tmp_path):
    model = build_cmnet(get_config("tiny"), steps_per_epoch=1)
    run_dir.save_epoch_checkpoint(model, tmp_path, {key: STATE[key] for key in ("epoch", "history", "train_seconds")})
    loaded, state = run_dir.load_epoch_checkpoint(tmp_path)
    assert state == {**STATE, "seed_states": state["seed_states"]} and len(state["seed_states"]) >= 1
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_bad_config_json_stops_a_resume_with_one_line(tmp_path, synthetic_cache, capsys):
    folder = synthetic_cache(tmp_path / "cache", ["sub01", "sub02"])
    out = tmp_path / "run"
    out.mkdir()
    (out / run_dir.CONFIG_FILE).write_text(json.dumps({"settings": {"config": {}, "subjects": "sub01"}}))
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--cache", str(folder), "--preset", "tiny", "--verbose", "0", "--out", str(out)])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {out / run_dir.CONFIG_FILE}: settings must be an object with config (an object) and subjects "
        '(a list of strings), got {"config": {}, "subjects": "sub01"}']
