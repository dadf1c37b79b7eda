"""Clip loading speed: the format 2 pipeline (TF ops only) vs the format 1 one (.npz via tf.numpy_function).

Writes the same synthetic clips both ways into a temporary folder and reads
every clip `--passes` times through each pipeline in one run, alternating,
and prints clips/s and the ratio. The format 1 reader is rebuilt here as it was
(`np.load` in a `tf.numpy_function` inside a parallel map) as the baseline.

    python bench/bench_pipeline.py [--clips 200] [--size 64] [--passes 3] [--batch 8]
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


def clips_per_second(dataset):
    start, count = time.perf_counter(), 0
    for _, label in dataset:
        count += int(label.shape[0])
    return count / (time.perf_counter() - start)


def machine():
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
                 platform.processor())
    avx512 = "avx512f" in open("/proc/cpuinfo").read()
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    return f"{model}, {os.cpu_count()} cores, avx512f {'yes' if avx512 else 'no'}; {load}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args(argv)
    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        folder = pathlib.Path(tmp)
        npz = write_caches(folder, args.clips, args.size)
        new, old = make_dataset(folder, batch_size=args.batch), format1_dataset(npz, args.size, args.batch)
        clips_per_second(new), clips_per_second(old)  # warm-up: file cache, tracing
        rates = {"format 2 (TF ops)": [], "format 1 (.npz, numpy_function)": []}
        for _ in range(args.passes):
            rates["format 2 (TF ops)"].append(clips_per_second(new))
            rates["format 1 (.npz, numpy_function)"].append(clips_per_second(old))
    print(f"{args.clips} clips [{NUM_FRAMES}, {args.size}, {args.size}, 3] uint8, batch {args.batch}, "
          f"{args.passes} passes each (median clips/s):")
    medians = {name: float(np.median(r)) for name, r in rates.items()}
    for name, median in medians.items():
        print(f"  {name}: {median:.0f} clips/s  (passes: {', '.join(f'{r:.0f}' for r in rates[name])})")
    print(f"  ratio format 2 / format 1: {medians['format 2 (TF ops)'] / medians['format 1 (.npz, numpy_function)']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
