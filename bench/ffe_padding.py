"""FFE train-step time: torchvision's symmetric padding (ZeroPadding2D + "valid") vs Keras's "same".

Both variants have the same weights; only where the strided convs and the max
pool pad differs. Runs them interleaved in one process (TensorFlow backend,
the fused batch norm as in training) and prints the median step time of
each, their ratio, and the ratio of the fastest steps (the least disturbed by
other processes).

Usage:
    python bench/ffe_padding.py                          # demo FFE: width 16, 64 px, 8 clips x 16 frames
    python bench/ffe_padding.py --width 64 --size 112 --frames 4
    python bench/ffe_padding.py --cmnet                  # the whole demo CMNet train step
"""

import argparse
import contextlib
import json
import os
import platform
import statistics
import time


@contextlib.contextmanager
def keras_same_layout():
    """FFEs created inside pad with Keras's "same" (the layout before the torchvision one)."""
    from keras import layers

    from cmnet_keras.layers import facial_feature_encoder as module

    torch_conv, init = module.torch_conv, module.FacialFeatureEncoder.__init__

    def same_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.stem = [*self.stem[:-2], layers.MaxPooling2D(3, 2, padding="same")]

    module.torch_conv = lambda filters, kernel_size, strides=1: [layers.Conv2D(
        filters, kernel_size, strides, padding="same", use_bias=False, kernel_initializer="he_normal")]
    module.FacialFeatureEncoder.__init__ = same_init
    try:
        yield
    finally:
        module.torch_conv, module.FacialFeatureEncoder.__init__ = torch_conv, init


def ffe_step(args):
    """A traced FFE-only train step (mean square of the features, SGD)."""
    import keras
    import numpy as np
    import tensorflow as tf

    from cmnet_keras.layers import FacialFeatureEncoder

    x = tf.constant(np.random.default_rng(0).uniform(0, 1, (args.clips, args.frames, args.size, args.size, 3)),
                    tf.float32)
    ffe, optimizer = FacialFeatureEncoder(args.width, (2, 2, 2, 2)), keras.optimizers.SGD(1e-3)
    ffe.build(x.shape)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(ffe(x, training=True)))
        optimizer.apply_gradients(zip(tape.gradient(loss, ffe.trainable_weights), ffe.trainable_weights))

    return step


def cmnet_step(args):
    """The demo preset's CMNet train step (`train_on_batch`, all three losses)."""
    import numpy as np

    from cmnet_keras.config import get_config
    from cmnet_keras.models import build_cmnet

    config = get_config("demo")
    rng = np.random.default_rng(0)
    size, frames = config.image_size, config.num_frames
    x = {"frames": rng.integers(0, 256, (config.batch_size, frames, size, size, 3), dtype=np.uint8),
         "apex": rng.integers(0, frames, config.batch_size).astype(np.int32)}
    y = rng.integers(0, config.num_classes, config.batch_size).astype(np.int32)
    model = build_cmnet(config, steps_per_epoch=100)
    return lambda: model.train_on_batch(x, y)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--cmnet", action="store_true", help="time the demo CMNet train step instead of the FFE's")
    args = parser.parse_args()
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    make_step = cmnet_step if args.cmnet else ffe_step
    steps = {}
    steps["torch_padding"] = make_step(args)
    with keras_same_layout():
        steps["keras_same"] = make_step(args)
    for step in steps.values():
        step()
    times = {variant: [] for variant in steps}
    for _ in range(args.steps):
        for variant, step in steps.items():
            start = time.perf_counter()
            step()
            times[variant].append(time.perf_counter() - start)
    medians = {variant: statistics.median(t) for variant, t in times.items()}
    minima = {variant: min(t) for variant, t in times.items()}
    ratio = medians["torch_padding"] / medians["keras_same"]
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    print(json.dumps({"cpu": cpu, "avx512f": "avx512f" in open("/proc/cpuinfo").read(),
                      "load_average": os.getloadavg(), **vars(args),
                      "median_step_s": medians, "min_step_s": minima, "ratio_torch_over_same": ratio,
                      "min_ratio_torch_over_same": minima["torch_padding"] / minima["keras_same"]},
                     indent=2))


if __name__ == "__main__":
    main()
