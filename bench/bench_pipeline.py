"""Clip loading speed: the format 2 pipeline (TF ops only) vs the format 1 one (.npz via tf.numpy_function).

Writes the same synthetic clips both ways into a temporary folder and reads
every clip `--passes` times through each pipeline in one run, alternating,
and prints clips/s and the ratio. The format 1 reader is rebuilt here as it was
(`np.load` in a `tf.numpy_function` inside a parallel map) as the baseline.

    PYTHONPATH=. python bench/bench_pipeline.py [--clips 400] [--size 64] [--passes 9] [--batch 8]

(PYTHONPATH=. makes sure the checkout's `cmnet_keras` is measured, not an installed one;
the package path is printed.)
"""

import argparse
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from cmnet_keras.data import cache  # noqa: E402
from cmnet_keras.data.pipeline import make_dataset  # noqa: E402

NUM_FRAMES = 16


def write_caches(folder, clips, size):
    rng = np.random.default_rng(0)
    cache.prepare_cache(folder, {"dataset": "bench", "class_names": ["a", "b"], "image_size": size,
                                 "num_frames": NUM_FRAMES, "cropped": True})
    records, npz = [], []
    for i in range(clips):
        frames = rng.integers(0, 256, (NUM_FRAMES, size, size, 3), dtype=np.uint8)
        record = {"clip_id": f"c{i}", "subject": f"s{i % 10}", "label": i % 2, "emotion": "ab"[i % 2], "apex": 3,
                  "apex_source": "annotated", "file": cache.clip_relpath(f"s{i % 10}", f"c{i}"),
                  "num_source_frames": NUM_FRAMES}
        cache.save_clip(folder, record, frames)
        path = folder / "npz" / f"c{i}.npz"
        path.parent.mkdir(exist_ok=True)
        np.savez(path, frames=frames, apex=np.int32(3), label=np.int32(i % 2))
        records.append(record)
        npz.append(str(path))
    cache.write_index(folder, records)
    return npz


def format1_dataset(paths, size, batch):
    """The format 1 reader as it was: np.load of each .npz inside tf.numpy_function, parallel map."""
    shape = (NUM_FRAMES, size, size, 3)

    def load_frames(path):
        with open(path.decode(), "rb") as handle, np.load(handle) as data:
            return data["frames"]

    def load(path):
        frames = tf.numpy_function(load_frames, [path], tf.uint8, stateful=False)
        frames.set_shape(shape)
        return {"frames": frames, "apex": tf.constant(3, tf.int32)}, tf.constant(0, tf.int32)

    dataset = tf.data.Dataset.from_tensor_slices(paths).map(load, num_parallel_calls=tf.data.AUTOTUNE,
                                                            deterministic=True)
    return dataset.batch(batch).prefetch(tf.data.AUTOTUNE)


def measure(dataset):
    """(clips per wall second, CPU milliseconds per clip, all threads of this process) over one pass."""
    start, cpu, count = time.perf_counter(), time.process_time(), 0
    for _, label in dataset:
        count += int(label.shape[0])
    return count / (time.perf_counter() - start), 1000 * (time.process_time() - cpu) / count


def machine():
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
                 platform.processor())
    avx512 = "avx512f" in open("/proc/cpuinfo").read()
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    return f"{model}, {os.cpu_count()} cores, avx512f {'yes' if avx512 else 'no'}; {load}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=400)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--passes", type=int, default=9)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args(argv)
    print(machine())
    print(f"cmnet_keras from {pathlib.Path(cache.__file__).parents[2]}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = pathlib.Path(tmp)
        npz = write_caches(folder, args.clips, args.size)
        new, old = make_dataset(folder, batch_size=args.batch), format1_dataset(npz, args.size, args.batch)
        measure(new), measure(old)  # warm-up: file cache, tracing
        passes = {"format 2 (TF ops)": [], "format 1 (.npz, numpy_function)": []}
        for _ in range(args.passes):
            passes["format 2 (TF ops)"].append(measure(new))
            passes["format 1 (.npz, numpy_function)"].append(measure(old))
    print(f"{args.clips} clips [{NUM_FRAMES}, {args.size}, {args.size}, 3] uint8, batch {args.batch}, "
          f"{args.passes} passes each, alternating (medians):")
    medians = {name: np.median(np.array(p), axis=0) for name, p in passes.items()}
    for name, (rate, cpu) in medians.items():
        print(f"  {name}: {rate:.0f} clips/s, {cpu:.2f} CPU ms/clip  "
              f"(clips/s per pass: {', '.join(f'{r:.0f}' for r, _ in passes[name])})")
    (new_rate, new_cpu), (old_rate, old_cpu) = medians.values()
    print(f"  format 2 / format 1: {new_rate / old_rate:.2f}x clips/s, {new_cpu / old_cpu:.2f}x CPU per clip")
    return 0


if __name__ == "__main__":
    sys.exit(main())
