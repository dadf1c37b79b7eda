"""FFE train-step time: torchvision's symmetric padding (ZeroPadding2D + "valid") vs Keras's "same".

Both variants have the same weights; only where the strided convs and the max
pool pad differs. Runs them interleaved in one process (TensorFlow backend,
`runtime.fused_batch_norm` as in training) and prints the median step time of
each and their ratio.

Usage:
    python bench/ffe_padding.py                          # demo FFE: width 16, 64 px, 8 clips x 16 frames
    python bench/ffe_padding.py --width 64 --size 112 --frames 4
"""

import argparse
import json
import os
import platform
import statistics
import time


def build(variant, width, size, frames):
    import keras
    from keras import layers

    from cmnet_keras.layers import facial_feature_encoder as module

    torch_conv = module.torch_conv
    if variant == "keras_same":
        module.torch_conv = lambda filters, kernel_size, strides=1: [layers.Conv2D(
            filters, kernel_size, strides, padding="same", use_bias=False, kernel_initializer="he_normal")]
    try:
        ffe = module.FacialFeatureEncoder(width, (2, 2, 2, 2))
    finally:
        module.torch_conv = torch_conv
    if variant == "keras_same":
        ffe.stem = [*ffe.stem[:-2], layers.MaxPooling2D(3, 2, padding="same")]
    ffe.build((None, frames, size, size, 3))
    return ffe, keras.optimizers.SGD(1e-3)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import numpy as np
    import tensorflow as tf

    from cmnet_keras.runtime import fused_batch_norm

    x = tf.constant(np.random.default_rng(0).uniform(0, 1, (args.clips, args.frames, args.size, args.size, 3)),
                    tf.float32)
    steps = {}
    with fused_batch_norm():
        for variant in ("torch_padding", "keras_same"):
            ffe, optimizer = build(variant, args.width, args.size, args.frames)

            @tf.function
            def step(ffe=ffe, optimizer=optimizer):
                with tf.GradientTape() as tape:
                    loss = tf.reduce_mean(tf.square(ffe(x, training=True)))
                optimizer.apply_gradients(zip(tape.gradient(loss, ffe.trainable_weights), ffe.trainable_weights))

            step()
            steps[variant] = step
        times = {variant: [] for variant in steps}
        for _ in range(args.steps):
            for variant, step in steps.items():
                start = time.perf_counter()
                step()
                times[variant].append(time.perf_counter() - start)
    medians = {variant: statistics.median(t) for variant, t in times.items()}
    ratio = medians["torch_padding"] / medians["keras_same"]
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    print(json.dumps({"cpu": cpu, "avx512f": "avx512f" in open("/proc/cpuinfo").read(),
                      "load_average": os.getloadavg(), **vars(args),
                      "median_step_s": medians, "ratio_torch_over_same": ratio},
                     indent=2))


if __name__ == "__main__":
    main()
