"""Train-step time and peak memory of CMNet vs. classification only vs. a plain model.

Each variant runs in its own subprocess (peak RSS = that process's ru_maxrss):
- `cmnet`: the full CMNet step (FFE on N frames, augmentation, ICE on 3N frames,
  negatives, prototype, eqs. 1, 9, 10);
- `cmnet_ce_only`: the same model with lambdas = (0, 0, 1) (no views, ICE on N frames);
- `plain`: a plain Keras functional model of the same shape: ResNet-18 on the N
  frames, a 4-conv encoder on 3N frames, LSTM, Dense; cross-entropy only.

Usage:
    python bench/bench_train_step.py                   # paper: 16x224x224, batch 8
    python bench/bench_train_step.py --image-size 64 --steps 2 --warmup 1
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

VARIANTS = ("cmnet", "cmnet_ce_only", "plain")


def _config(args, variant):
    from cmnet_keras import get_config

    lambdas = (0.0, 0.0, 1.0) if variant == "cmnet_ce_only" else get_config("paper").lambdas
    return get_config("paper", image_size=args.image_size, batch_size=args.batch_size, lambdas=lambdas)


def _plain_model(cfg):
    """ResNet-18 on N frames, 4-conv encoder on 3N frames, LSTM; plain Keras layers."""
    import keras
    from keras import layers

    n, size = cfg.num_frames, cfg.image_size

    def conv_bn(x, filters, kernel, strides, relu=True):
        x = layers.Conv2D(filters, kernel, strides, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        return layers.ReLU()(x) if relu else x

    def resnet18(x):
        x = conv_bn(x, 64, 7, 2)
        x = layers.MaxPooling2D(3, 2, padding="same")(x)
        for stage, width in enumerate((64, 128, 256, 512)):
            for block in range(2):
                strides = 2 if stage > 0 and block == 0 else 1
                shortcut = x if strides == 1 and x.shape[-1] == width else conv_bn(x, width, 1, strides, relu=False)
                y = conv_bn(x, width, 3, strides)
                y = conv_bn(y, width, 3, 1, relu=False)
                x = layers.ReLU()(layers.Add()([y, shortcut]))
        return layers.GlobalAveragePooling2D()(x)

    def four_conv(x):
        for filters in cfg.ice_filters:
            x = conv_bn(x, filters, 3, 2)
        return layers.Dense(cfg.ice_dim)(layers.GlobalAveragePooling2D()(x))

    def reshape(t, shape):  # frames into / out of the batch axis
        return layers.Lambda(lambda t: keras.ops.reshape(t, (-1, *shape)))(t)

    frames = keras.Input((n, size, size, 3))
    x = layers.Rescaling(1 / 255.0)(frames)
    texture = reshape(resnet18(reshape(x, (size, size, 3))), (n, 512))
    views = layers.Concatenate(axis=1)([x, x, x])  # 3N frames
    clues = reshape(four_conv(reshape(views, (size, size, 3))), (3, n, cfg.ice_dim))
    clues = layers.Dense(512)(layers.Lambda(lambda t: keras.ops.mean(t, axis=1))(clues))
    v = layers.LSTM(cfg.lstm_units)(layers.Multiply()([texture, clues]))
    probs = layers.Dense(cfg.num_classes, activation="softmax")(v)
    return keras.Model(frames, probs), {"ffe": n, "ice": 3 * n}


def _frames_per_clip(model, x):
    """Frames each encoder processes per clip in a training forward pass (instrumented calls)."""
    seen = {}
    for name in ("ffe", "ice"):
        layer = getattr(model, name)
        original = layer.call

        def call(frames, training=False, name=name, original=original):
            seen[name] = int(frames.shape[0]) * int(frames.shape[1])
            return original(frames, training=training)

        layer.call = call
    one = {key: value[:1] for key, value in x.items()}
    model(one, training=True)
    for name in ("ffe", "ice"):
        del getattr(model, name).call
    return seen


def _cpu_seconds():
    """User + system CPU time of this process (all threads): work done, whatever the contention."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_variant(args):
    import numpy as np

    import keras
    from cmnet_keras.models import build_cmnet
    from cmnet_keras.optimizers import default_optimizer

    cfg = _config(args, args.variant)
    rng = np.random.default_rng(0)
    size, batch = cfg.image_size, cfg.batch_size
    x = {
        "frames": rng.integers(0, 256, (batch, cfg.num_frames, size, size, 3)).astype("uint8"),
        "apex": rng.integers(0, cfg.num_frames, (batch,)).astype("int32"),
    }
    y = rng.integers(0, cfg.num_classes, (batch,)).astype("int32")
    if args.variant == "plain":
        model, frames = _plain_model(cfg)
        model.compile(default_optimizer(cfg), loss="sparse_categorical_crossentropy", jit_compile=False)
        x = x["frames"].astype("float32")
    else:
        model = build_cmnet(cfg)
        frames = _frames_per_clip(model, x)
    for _ in range(args.warmup):
        model.train_on_batch(x, y)
    start, cpu = time.perf_counter(), _cpu_seconds()
    for _ in range(args.steps):
        model.train_on_batch(x, y)
    step = (time.perf_counter() - start) / args.steps
    cpu = (_cpu_seconds() - cpu) / args.steps
    print(
        json.dumps(
            {
                "variant": args.variant,
                "backend": keras.backend.backend(),
                "step_s": step,
                "cpu_s": cpu,
                "clip_s": step / batch,
                "clips_per_s": batch / step,
                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "ffe_frames_per_clip": frames["ffe"],
                "ice_frames_per_clip": frames["ice"],
                "params": model.count_params(),
            }
        )
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="timed train steps per variant")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (tracing)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 0 or args.batch_size < 1 or args.image_size < 32:
        parser.error(f"need steps >= 1, warmup >= 0, batch-size >= 1, image-size >= 32; got {vars(args)}")
    if args.variant:
        return run_variant(args)

    results = {}
    for variant in args.variants:
        cmd = [sys.executable, __file__, "--variant", variant, "--steps", str(args.steps),
               "--warmup", str(args.warmup), "--batch-size", str(args.batch_size),
               "--image-size", str(args.image_size)]
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            sys.exit(f"variant {variant} failed:\n{done.stderr[-3000:]}")
        results[variant] = json.loads(done.stdout.strip().splitlines()[-1])

    print(f"\nTrain step, 16x{args.image_size}x{args.image_size}, batch {args.batch_size}, "
          f"{args.warmup} warm-up + {args.steps} timed steps, backend {results[args.variants[0]]['backend']}, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs\n")
    print("| variant | s/step | CPU s/step | s/clip | clips/s | peak RSS (MiB) | FFE frames/clip | ICE frames/clip | params |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results.values():
        print(f"| {r['variant']} | {r['step_s']:.2f} | {r['cpu_s']:.2f} | {r['clip_s']:.3f} | {r['clips_per_s']:.3f} | "
              f"{r['peak_rss_mib']:.0f} | {r['ffe_frames_per_clip']} | {r['ice_frames_per_clip']} | {r['params']:,} |")
    if {"cmnet", "cmnet_ce_only"} <= set(results):
        ratio = results["cmnet"]["step_s"] / results["cmnet_ce_only"]["step_s"]
        cpu = results["cmnet"]["cpu_s"] / results["cmnet_ce_only"]["cpu_s"]
        mem = results["cmnet"]["peak_rss_mib"] / results["cmnet_ce_only"]["peak_rss_mib"]
        print(f"\nfull / classification-only: time x{ratio:.2f} (target <= 1.5), CPU x{cpu:.2f}, peak RSS x{mem:.2f}")
    if {"cmnet", "plain"} <= set(results):
        share = results["cmnet"]["clips_per_s"] / results["plain"]["clips_per_s"]
        cpu = results["plain"]["cpu_s"] / results["cmnet"]["cpu_s"]
        print(f"full CMNet throughput = {100 * share:.0f}% of plain (target >= 80%); by CPU time {100 * cpu:.0f}%")


if __name__ == "__main__":
    main()
