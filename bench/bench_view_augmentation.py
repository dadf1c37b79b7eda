"""View augmentation: ours (`ViewAugmentation`) vs. Keras 3's RandomColorJitter + RandomGrayscale (+ blur).

Times one call on [256, 64, 64, 3] float32 in [0, 1] (the demo's 2 x 8 clips x 16 frames),
traced with `tf.function` under TensorFlow (eager under the other backends: the layers'
seed generators are state), median of `--repeats` rounds (each variant once per round), all variants in one process,
and prints ratios to ours with the CPU and the load averages.

Variants:
- `ours`: colour jitter (p 0.8), grayscale (p 0.2), per-image Gaussian blur (p 0.5);
- `keras_jitter_gray`: RandomColorJitter (every image) + RandomGrayscale(0.2), no blur;
- `keras_all`: the same + RandomGaussianBlur(0.5, kernel 7, sigma 0.1-2; Keras draws
  one sigma per batch, not per image);
- `ours_jitter_gray`: ours without blur (blur_rate 0), to compare with `keras_jitter_gray`.

Usage:
    KERAS_BACKEND=tensorflow python bench/bench_view_augmentation.py
"""

import argparse
import json
import platform
import statistics
import subprocess
import time

import keras
import numpy as np

from cmnet_keras.layers import ViewAugmentation


def _keras_jitter(seed):
    # SimCLR strength s = 0.5: brightness, contrast, saturation 0.4, hue 0.1.
    return keras.layers.RandomColorJitter(
        value_range=(0, 1), brightness_factor=0.4, contrast_factor=0.4, saturation_factor=0.4,
        hue_factor=0.1, seed=seed)


def variants():
    gray = keras.layers.RandomGrayscale(0.2, seed=1)
    blur = keras.layers.RandomGaussianBlur(0.5, kernel_size=7, sigma=(0.1, 2.0), value_range=(0, 1), seed=2)
    jitter = _keras_jitter(0)
    ours = ViewAugmentation(seed=0)
    ours_no_blur = ViewAugmentation(blur_rate=0.0, seed=0)
    return {
        "ours": lambda x: ours(x, training=True),
        "ours_jitter_gray": lambda x: ours_no_blur(x, training=True),
        "keras_jitter_gray": lambda x: gray(jitter(x, training=True), training=True),
        "keras_all": lambda x: blur(gray(jitter(x, training=True), training=True), training=True),
    }


def _traced(fn):
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(fn)
    return fn  # stateful seed generators: JAX would need stateless_call; eager elsewhere


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)
    x = keras.ops.convert_to_tensor(np.random.default_rng(0).uniform(0, 1, (256, 64, 64, 3)).astype("float32"))
    fns = {name: _traced(fn) for name, fn in variants().items()}
    for fn in fns.values():
        keras.ops.convert_to_numpy(fn(x))  # trace / warm up
    runs = {name: [] for name in fns}
    for _ in range(args.repeats):  # round robin: a change of load hits every variant alike
        for name, fn in fns.items():
            start = time.perf_counter()
            keras.ops.convert_to_numpy(fn(x))
            runs[name].append(time.perf_counter() - start)
    times = {name: 1000 * statistics.median(r) for name, r in runs.items()}
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((line.split(":", 1)[1].strip() for line in cpu.splitlines() if line.startswith("Model name")), "?")
    print(json.dumps({
        "backend": keras.backend.backend(), "cpu": model, "avx512f": "avx512f" in cpu,
        "load": open("/proc/loadavg").read().split()[:3], "python": platform.python_version(),
        "ms_per_call": {k: round(v, 1) for k, v in times.items()},
        "ratio_to_ours": {k: round(v / times["ours"], 2) for k, v in times.items()},
    }, indent=1))


if __name__ == "__main__":
    main()
