"""The input pipeline under a thread that builds Python ASTs (issue 10: numpy's header parser raced autograph).

CPython 3.11's AST construction is not safe while other threads build ASTs
(python/cpython#106905); the old pipeline parsed every `.npz` header with
`ast.literal_eval` inside a parallel `tf.data` map and failed here within a few
passes. The cache is now read by TensorFlow ops only.
"""

import ast
import pathlib
import threading

import numpy as np

from cmnet_keras.data import cache
from cmnet_keras.data.pipeline import make_dataset

NUM_CLIPS, NUM_FRAMES, SIZE, PASSES, BATCH = 40, 16, 8, 50, 4  # 2000 clip loads


def write_cache(folder, rng):
    cache.prepare_cache(folder, {"dataset": "stress", "class_names": ["a", "b"], "image_size": SIZE,
                                 "num_frames": NUM_FRAMES, "cropped": True})
    written, records = [], []
    for i in range(NUM_CLIPS):
        frames = rng.integers(0, 256, (NUM_FRAMES, SIZE, SIZE, 3), dtype=np.uint8)
        record = {"clip_id": f"c{i:03d}", "subject": f"s{i % 5}", "label": i % 2, "emotion": "ab"[i % 2],
                  "apex": i % NUM_FRAMES, "apex_source": "annotated", "file": cache.clip_relpath(f"s{i % 5}", f"c{i:03d}"),
                  "num_source_frames": NUM_FRAMES}
        cache.save_clip(folder, record, frames)
        written.append(frames)
        records.append(record)
    cache.write_index(folder, records)
    return np.stack(written), records


def test_pipeline_survives_a_thread_parsing_python(tmp_path):
    written, records = write_cache(tmp_path / "cache", np.random.default_rng(0))
    source = pathlib.Path(ast.__file__).read_text()
    stop, parse_errors, parses = threading.Event(), [], [0]

    def parse_forever():
        while not stop.is_set():
            try:
                ast.parse(source)
                parses[0] += 1
            except Exception as error:  # noqa: BLE001 - every failure is what this test counts
                parse_errors.append(repr(error))

    dataset = make_dataset(tmp_path / "cache", batch_size=BATCH)
    thread = threading.Thread(target=parse_forever, daemon=True)
    thread.start()
    pipeline_errors, loads, mismatched = [], 0, 0
    try:
        for _ in range(PASSES):
            try:
                frames, apex, label = [], [], []
                for inputs, labels in dataset.as_numpy_iterator():
                    frames.append(inputs["frames"])
                    apex.append(inputs["apex"])
                    label.append(labels)
                    loads += len(labels)
            except Exception as error:  # noqa: BLE001
                pipeline_errors.append(str(error).splitlines()[0])
                continue
            mismatched += not np.array_equal(np.concatenate(frames), written)
            assert np.concatenate(apex).tolist() == [r["apex"] for r in records]
            assert np.concatenate(label).tolist() == [r["label"] for r in records]
    finally:
        stop.set()
        thread.join()
    print(f"{loads} clip loads, {parses[0]} parses, {len(pipeline_errors)} failed passes, "
          f"{len(parse_errors)} parse errors, {mismatched} passes with other frames")
    assert not pipeline_errors, f"{len(pipeline_errors)} of {PASSES} passes failed, e.g. {pipeline_errors[:3]}"
    assert not parse_errors, f"{len(parse_errors)} ast.parse calls failed, e.g. {parse_errors[:3]}"
    assert mismatched == 0
    assert loads == PASSES * NUM_CLIPS and parses[0] > 0


def test_no_python_op_in_the_input_graph(tmp_path):
    write_cache(tmp_path / "cache", np.random.default_rng(1))
    from cmnet_keras.data.pipeline import make_epochs_dataset

    index = cache.read_index(tmp_path / "cache")
    for dataset in (make_dataset(tmp_path / "cache", shuffle=True, repeat=True),
                    make_epochs_dataset(tmp_path / "cache", index, 4, seeds=[1, 2])):
        graph = dataset._as_serialized_graph().numpy()  # the GraphDef, functions included
        assert b"PyFunc" not in graph and b"ReadFile" in graph and b"DecodeRaw" in graph


def test_no_python_inside_tf_data_anywhere():
    """No tf.numpy_function / py_function / from_generator in the package or the tuner."""
    root = pathlib.Path(__file__).resolve().parents[1]
    sources = [p for folder in ("cmnet_keras", "tuning") for p in (root / folder).rglob("*.py")]
    assert len(sources) > 10
    found = [f"{p.relative_to(root)}: {name}" for p in sources for name in ("numpy_function", "py_function",
                                                                           "from_generator") if name in p.read_text()]
    assert found == []
