"""Keras `steps_per_execution` for the demo's `fit`: seconds per 12-step epoch, 1 against N steps per call.

Each variant runs in its own process, rounds interleaved (1 N 1 N ...), on 90
synthetic clips of the demo preset with fused batch norm, as the LOSO loop
trains; the first epoch (tracing) is left out of the median.

Usage:
    PYTHONPATH=. python bench/steps_per_execution.py [--variants 1 12] [--rounds 3] [--epochs 5]
"""

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from profile_step import machine, median  # noqa: E402

STEPS = 12
CLIPS = 90


def run_variant(steps_per_execution, epochs):
    """Fits `epochs` epochs in this process; prints one JSON line with the seconds of each."""
    import keras
    import numpy as np
    import tensorflow as tf

    from cmnet_keras.config import get_config
    from cmnet_keras.models.cmnet import build_cmnet

    config = get_config("demo")
    rng = np.random.default_rng(0)
    side = config.image_size
    x = {"frames": rng.integers(0, 256, (CLIPS, config.num_frames, side, side, 3)).astype("uint8"),
         "apex": rng.integers(0, config.num_frames, (CLIPS,)).astype("int32")}
    y = rng.integers(0, config.num_classes, (CLIPS,)).astype("int32")
    keras.utils.set_random_seed(0)
    times = []

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.start)

    model = build_cmnet(config, steps_per_epoch=STEPS)
    if steps_per_execution > 1:
        model.compile(optimizer=model.optimizer, jit_compile=False, steps_per_execution=steps_per_execution)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(config.batch_size).repeat()
    model.fit(data, epochs=epochs, steps_per_epoch=STEPS, verbose=0, callbacks=[EpochTimer()])
    print(json.dumps({"steps_per_execution": steps_per_execution, "epoch_s": times}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", type=int, nargs="+", default=[1, STEPS])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        return run_variant(args.child, args.epochs)
    before = machine()
    epochs = {v: [] for v in args.variants}
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    for _ in range(args.rounds):
        for variant in args.variants:
            out = subprocess.run([sys.executable, __file__, "--child", str(variant), "--epochs", str(args.epochs)],
                                 env=env, capture_output=True, text=True, check=True).stdout
            epochs[variant].extend(json.loads(out.strip().splitlines()[-1])["epoch_s"][1:])
    print(f"{before} -> {machine()}")
    base = median(epochs[args.variants[0]])
    print("| steps_per_execution | s / epoch (median) | ratio |\n| --: | --: | --: |")
    for variant, times in epochs.items():
        print(f"| {variant} | {median(times):.3f} | {median(times) / base:.3f} |")


if __name__ == "__main__":
    main()
