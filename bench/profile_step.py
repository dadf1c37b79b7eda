"""Where one train step of the demo preset goes: per-part timing, FLOPs, utilisation.

Times, on the real input shapes of one step (demo preset, batch 8, 16 frames,
synthetic uint8 clips), the forward and the forward+backward pass of each part of
CMNet, each in its own `tf.function`, round-robin (part A, B, ..., A, B, ...) so
that the machine's load hits every part alike; then the full train step
(`model.train_function`, as `fit` runs it), the input pipeline alone and the
machine's float32 matmul peak, all in the same process. FLOPs are counted
analytically per layer (`step_flops`); training = 3 x forward for convolutions
and matmuls.

Usage:
    PYTHONPATH=. python bench/profile_step.py                      # demo preset, 15 rounds
    PYTHONPATH=. python bench/profile_step.py --steps 20 --json out.json
"""

import argparse
import collections
import contextlib
import glob
import json
import os
import platform
import re
import resource
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def machine():
    """CPU model, vector extensions (avx2 / avx512f), cores and the load averages now."""
    flags, model = set(), platform.processor()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return {
        "cpu": model,
        "avx2": "avx2" in flags,
        "avx512f": "avx512f" in flags,
        "cores": os.cpu_count(),
        "load": [round(v, 2) for v in os.getloadavg()],
    }


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def system_seconds():
    """Kernel CPU time of this process (page faults, thread wake-ups)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_stime


def median(values):
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else 0.5 * (values[mid - 1] + values[mid])


def matmul_peak(size=2048, repeats=7):
    """Best float32 matmul rate (GFLOP/s) of numpy and of tf.matmul on size x size."""
    import numpy as np
    import tensorflow as tf

    a = np.random.default_rng(0).standard_normal((size, size)).astype(np.float32)
    flops = 2.0 * size**3
    rates = {}
    for name, matmul in (("numpy", lambda: a @ a), ("tf", lambda: tf.matmul(ta, ta).numpy())):
        ta = tf.constant(a)
        matmul()
        best = min(_timed(matmul) for _ in range(repeats))
        rates[name] = flops / best / 1e9
    return rates


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# ---------------------------------------------------------------- FLOPs


def _conv_flops(conv, shape):
    """Forward FLOPs of a Conv2D on `shape` [S, H, W, C] and its output shape."""
    out = conv.compute_output_shape(shape)
    kh, kw = conv.kernel_size
    return 2 * shape[0] * out[1] * out[2] * out[3] * kh * kw * shape[3], out


def encoder_flops(layers, shape):
    """Forward FLOPs of Conv2D / Dense / BasicBlock layers in sequence on folded frames `shape`."""
    import keras

    from cmnet_keras.layers.facial_feature_encoder import BasicBlock

    total = 0
    for layer in layers:
        if isinstance(layer, keras.layers.Conv2D):
            flops, out = _conv_flops(layer, shape)
        elif isinstance(layer, BasicBlock):
            flops, mid = _conv_flops(layer.conv1, shape)
            more, out = _conv_flops(layer.conv2, mid)
            flops += more
            if layer.project is not None:
                flops += _conv_flops(layer.project, shape)[0]
        elif isinstance(layer, keras.layers.Dense):
            out = (*shape[:-1], layer.units)
            flops = 2 * shape[0] * shape[-1] * layer.units
        else:
            out = layer.compute_output_shape(shape)
            flops = 0
        total += flops
        shape = tuple(out)
    return total


def step_flops(model, cfg):
    """Forward FLOPs per part of one training step (convolutions and matmuls only) and the
    training total (3 x forward: the backward pass takes input and weight gradients)."""
    b, n, s = cfg.batch_size, cfg.num_frames, cfg.image_size
    blur = max(3, int(0.1 * s) // 2 * 2 + 1)
    m, d, u, f = cfg.num_negatives, cfg.ice_dim, cfg.lstm_units, model.ffe.output_dim
    forward = {
        "FFE": encoder_flops([*model.ffe.stem, *model.ffe.stages], (b * n, s, s, 3)),
        "ICE (3N frames)": encoder_flops([*model.ice.stages, model.ice.project], (3 * b * n, s, s, 3)),
        "view augmentation": 2 * b * n * s * s * 3 * (2 * blur + 9),  # two blur passes, hue matrix
        "negatives + L_ID": 2 * b * n * (m * n * d + n * d + (m + 1) * d),  # one-hot gather, cosines, logits
        "LSTM": 2 * b * n * (f + u) * 4 * u,
        "squeeze/extend/classifier": 2 * b * n * (d + f) + 2 * b * u * cfg.num_classes,
    }
    return forward, 3 * sum(forward.values())


def tf_profiler_flops(model, cfg):
    """Forward FLOPs of the two encoders by TF's graph FLOP counter (a check of `encoder_flops`)."""
    import tensorflow as tf

    b, n, s = cfg.batch_size, cfg.num_frames, cfg.image_size
    counts = {}
    for name, layer, frames in (("FFE", model.ffe, b * n), ("ICE (3N frames)", model.ice, 3 * b * n)):
        spec = tf.TensorSpec((frames, s, s, 3), tf.float32)
        graph = tf.function(lambda x, layer=layer: layer(x, training=False)).get_concrete_function(spec).graph
        options = {**tf.compat.v1.profiler.ProfileOptionBuilder.float_operation(), "output": "none"}
        counts[name] = tf.compat.v1.profiler.profile(graph=graph, options=options).total_float_ops
    return counts


# ---------------------------------------------------------------- patches


@contextlib.contextmanager
def gray_by_slices():
    """Prototype for view_augmentation.py: the luma as three channel slices, not a sum over a
    size-3 last axis (TF's reduction over the innermost axis is slow on CPU). Same values up
    to float rounding."""
    from cmnet_keras.layers import view_augmentation

    def gray(x):
        weights = view_augmentation._GRAY
        return x[..., 0:1] * weights[0] + x[..., 1:2] * weights[1] + x[..., 2:3] * weights[2]

    original = view_augmentation._gray
    view_augmentation._gray = gray
    try:
        yield
    finally:
        view_augmentation._gray = original


@contextlib.contextmanager
def mixed_bfloat16():
    """The "mixed_bfloat16" dtype policy (bfloat16 compute, float32 weights): not float-exact."""
    import keras

    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(policy)


def patches(names):
    """One context for the named patches (`PATCHES`)."""
    stack = contextlib.ExitStack()
    for name in names:
        stack.enter_context(PATCHES[name]())
    return stack


@contextlib.contextmanager
def keras_batch_norm():
    """Models built inside have Keras's `BatchNormalization` in the encoders, not the fused one (the step before
    `cmnet_keras/layers/fused_batch_normalization.py`)."""
    import keras

    from cmnet_keras.layers import fused_batch_normalization

    fused = fused_batch_normalization.BatchNormalization
    fused_batch_normalization.BatchNormalization = keras.layers.BatchNormalization
    try:
        yield
    finally:
        fused_batch_normalization.BatchNormalization = fused


PATCHES = {"keras_batch_norm": keras_batch_norm, "gray_by_slices": gray_by_slices,
           "mixed_bfloat16": mixed_bfloat16}


# ---------------------------------------------------------------- parts


def synthetic_batch(cfg, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    b, n, s = cfg.batch_size, cfg.num_frames, cfg.image_size
    x = {
        "frames": rng.integers(0, 256, (b, n, s, s, 3)).astype("uint8"),
        "apex": rng.integers(0, n, (b,)).astype("int32"),
    }
    return x, rng.integers(0, cfg.num_classes, (b,)).astype("int32")


def part_functions(model, x, y):
    """{part: (forward, forward_and_backward)} tf.functions on the part's real inputs of one step."""
    import tensorflow as tf
    from keras import ops

    from cmnet_keras.layers import gather_negatives
    from cmnet_keras.losses import classification_loss, intensity_distillation_loss, wilcoxon_rank_sum_loss

    cfg = model.config
    frames_u8, apex = tf.constant(x["frames"]), tf.constant(x["apex"])
    labels = tf.constant(y)
    frames = model.clip_flip(ops.cast(frames_u8, "float32") / 255.0, training=True)
    views = model.augment(ops.concatenate([frames, frames], 0), training=True)
    ice_in = ops.concatenate([frames, views], 0)
    z_all = model.ice(ice_in, training=True)
    texture = model.ffe(frames, training=True)
    enhanced = texture * model.extend(model.squeeze(z_all[: cfg.batch_size]))
    rng = tf.random.Generator.from_seed(1)
    cotangent = {name: rng.normal(t.shape) for name, t in (("texture", texture), ("z", z_all))}

    def grads(loss_fn, variables, watched=()):
        with tf.GradientTape() as tape:
            tape.watch(list(watched))
            loss = loss_fn()
        return tape.gradient(loss, [*variables, *watched])

    def encoder(layer, inputs, ct):
        return lambda: tf.reduce_sum(layer(inputs, training=True) * ct)

    def negatives_loss():
        z, z1, z2 = ops.split(z_all, 3, axis=0)
        return intensity_distillation_loss(z1, z2, gather_negatives(z, model.sampler(z)), cfg.tau)

    def intensity_loss():
        k = model.squeeze(z_all[: cfg.batch_size])
        wrst = wilcoxon_rank_sum_loss(model.prototype(apex), k, cfg.alpha, cfg.xi, cfg.rank_temperature, cfg.p_mode)
        return wrst + tf.reduce_sum(texture * model.extend(k) * cotangent["texture"])

    def classify_loss():
        return classification_loss(labels, model.classifier(model.lstm(enhanced, training=True)))

    small = [*model.squeeze.trainable_variables, *model.extend.trainable_variables,
             *model.prototype.trainable_variables]
    head = [*model.lstm.trainable_variables, *model.classifier.trainable_variables]
    parts = {
        "input cast + clip flip": (lambda: model.clip_flip(ops.cast(frames_u8, "float32") / 255.0, training=True),
                                   None),
        "FFE": (encoder(model.ffe, frames, cotangent["texture"]), model.ffe.trainable_variables, ()),
        "view augmentation": (lambda: model.augment(ops.concatenate([frames, frames], 0), training=True), None),
        "ICE (3N frames)": (encoder(model.ice, ice_in, cotangent["z"]), model.ice.trainable_variables, ()),
        "negatives + L_ID": (negatives_loss, [], (z_all,)),
        "squeeze, extend, prototype, L_Wrst": (intensity_loss, small, (z_all, texture)),
        "LSTM + classifier + L_C": (classify_loss, head, (enhanced,)),
    }
    functions = {}
    for name, (loss_fn, variables, *watched) in parts.items():
        forward = tf.function(loss_fn)
        both = None if variables is None else tf.function(
            lambda loss_fn=loss_fn, variables=variables, watched=watched[0]: grads(loss_fn, variables, watched)
        )
        functions[name] = (forward, both)
    gradients = [tf.zeros_like(v) + 1e-6 for v in model.trainable_variables]
    update = tf.function(lambda: model.optimizer.apply(gradients, model.trainable_variables))
    functions["optimizer update (AdamW)"] = (None, update)
    return functions


def full_step_functions(model, x, y):
    """(forward, train step): the model's forward pass and loss, and `model.train_function` on a
    one-batch repeating dataset (fit's code path without file reading)."""
    import tensorflow as tf

    data = tf.data.Dataset.from_tensors((x, y)).repeat()
    iterator = iter(data)
    model.make_train_function()
    train_function = model.train_function

    @tf.function
    def forward():
        inputs, labels = next(iterator)
        return model.compute_loss(inputs, labels, model(inputs, training=True))

    return forward, lambda: train_function(iterator)


def _materialise(result):
    import tensorflow as tf

    for t in tf.nest.flatten(result):
        if hasattr(t, "numpy"):
            t.numpy()
            return


def time_round_robin(functions, steps, warmup=2):
    """Median seconds of each callable, called in turn `steps` times after `warmup` rounds."""
    times = {name: [] for name in functions}
    for step in range(warmup + steps):
        for name, fn in functions.items():
            start = time.perf_counter()
            _materialise(fn())
            if step >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: median(t) for name, t in times.items()}, times


def input_pipeline_seconds(cfg, batches=30):
    """Seconds per batch of `make_epochs_dataset` alone over a synthetic cache of 90 clips."""
    from cmnet_keras.data import cache
    from cmnet_keras.data.pipeline import make_epochs_dataset

    x, _ = synthetic_batch(cfg)
    with tempfile.TemporaryDirectory() as folder:
        cache.prepare_cache(folder, {"dataset": "synthetic", "class_names": list(cfg.class_names),
                                     "image_size": cfg.image_size, "num_frames": cfg.num_frames, "cropped": True})
        records = []
        for i in range(90):
            record = {"clip_id": f"c{i}", "subject": f"s{i % 9}", "label": i % cfg.num_classes,
                      "emotion": "x", "apex": i % cfg.num_frames, "apex_source": "annotated",
                      "file": f"clips/s{i % 9}/c{i}.npz", "num_source_frames": cfg.num_frames}
            cache.save_clip(folder, record, x["frames"][i % cfg.batch_size])
            records.append(record)
        cache.write_index(folder, records)
        data = make_epochs_dataset(folder, cache.read_index(folder), cfg.batch_size, seeds=list(range(5)))
        iterator = iter(data)
        for _ in range(5):
            next(iterator)
        start = time.perf_counter()
        for _ in range(batches):
            next(iterator)
        return (time.perf_counter() - start) / batches


def _part_of(scope):
    """The model part an op belongs to, from its name scope (layer names appear in op names)."""
    match = re.search(r"cm_net(?:_\d+)*/([a-z_]+?)(?:_\d+)*/", scope)
    if match:
        return match.group(1)
    if "adam" in scope or "sgd" in scope:
        return "optimizer"
    return "other (loss, metrics, gradient sums)"


def _kind_of(scope, op_type):
    if "Conv2D" in op_type or "MatMul" in op_type:
        return "conv/matmul"
    if "batch_normalization" in scope:
        return "batch norm"
    return "other ops"


def trace_step(step, steps, logdir):
    """Op time of `steps` calls of `step` under the TF profiler, summed by (part, fwd/bwd, kind).

    Reads the trace's XPlane: every op event on the executor threads, named
    `scope/op:OpType`; ops under `gradient_tape/` are the backward pass. With
    inter-op parallelism two ops may run at once, so op time can exceed wall time.
    """
    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    tf.profiler.experimental.start(logdir)
    for _ in range(steps):
        _materialise(step())
    tf.profiler.experimental.stop()
    space = xplane_pb2.XSpace()
    with open(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True)[0], "rb") as handle:
        space.ParseFromString(handle.read())
    totals = collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                scope, _, op_type = name.rpartition(":")
                if not scope or "::" in name:
                    continue  # executor bookkeeping, not an op
                key = (_part_of(scope), "bwd" if "gradient_tape/" in scope else "fwd", _kind_of(scope, op_type))
                totals[key] += event.duration_ps / 1e12 / steps
    return totals


def profile(args):
    import keras

    from cmnet_keras.config import get_config
    from cmnet_keras.models import build_cmnet

    cfg = get_config(args.preset, batch_size=args.batch_size)
    x, y = synthetic_batch(cfg)
    info = {"machine": machine(), "preset": args.preset, "batch_size": cfg.batch_size,
            "image_size": cfg.image_size, "backend": keras.backend.backend(),
            "tf_threads": _tf_threads(), "patches": args.patch}
    info["matmul_gflops_before"] = matmul_peak()
    keras.utils.set_random_seed(0)
    model = build_cmnet(cfg, steps_per_epoch=12)
    forward_step, train_step = full_step_functions(model, x, y)
    callables = {"step": train_step, "step forward": forward_step}
    for name, (forward, both) in part_functions(model, x, y).items():
        if forward is not None:
            callables[f"{name} | fwd"] = forward
        if both is not None:
            callables[f"{name} | fwd+bwd"] = both
    for fn in callables.values():
        _materialise(fn())  # traced now, before any patch
    if args.patch:
        with patches(args.patch):
            keras.utils.set_random_seed(0)
            patched = build_cmnet(cfg, steps_per_epoch=12)
            callables["step, patched"] = full_step_functions(patched, x, y)[1]
            _materialise(callables["step, patched"]())
    cpu = cpu_seconds()
    medians, _ = time_round_robin(callables, args.steps)
    info["cpu_s_per_round"] = (cpu_seconds() - cpu) / (args.steps + 2)
    info["medians_s"] = medians
    info["op_seconds"] = {}
    for name in ("step", "step, patched") if args.patch else ("step",):
        with tempfile.TemporaryDirectory() as logdir:
            traced = trace_step(callables[name], args.trace_steps, logdir)
        info["op_seconds"][name] = [[*key, value] for key, value in sorted(traced.items())]
    info["input_pipeline_s_per_batch"] = input_pipeline_seconds(cfg)
    info["matmul_gflops_after"] = matmul_peak()
    forward_flops, train_flops = step_flops(model, cfg)
    info["forward_flops"] = forward_flops
    info["train_flops"] = train_flops
    info["tf_profiler_forward_flops"] = tf_profiler_flops(model, cfg)
    info["machine"]["load_after"] = [round(v, 2) for v in os.getloadavg()]
    report(info)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(info, handle, indent=2)
    return info


def _tf_threads():
    import tensorflow as tf

    return {"intra": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter": tf.config.threading.get_inter_op_parallelism_threads(),
            "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default")}


def report(info):
    med = info["medians_s"]
    step = med["step"]
    m = info["machine"]
    print(f"\n{m['cpu']}, {m['cores']} cores, avx2={m['avx2']}, avx512f={m['avx512f']}; load {m['load']} -> "
          f"{m['load_after']}; {info['preset']} preset, batch {info['batch_size']}, {info['image_size']} px, "
          f"backend {info['backend']}, threads {info['tf_threads']}\n")
    print("| part | forward ms | forward+backward ms | share of step |")
    print("| --- | --: | --: | --: |")
    total = 0.0
    for name in dict.fromkeys(k.split(" | ")[0] for k in med if " | " in k):
        fwd, both = med.get(f"{name} | fwd"), med.get(f"{name} | fwd+bwd")
        cost = both if both is not None else fwd
        total += cost
        print(f"| {name} | {'' if fwd is None else f'{1e3 * fwd:.1f}'} | "
              f"{'' if both is None else f'{1e3 * both:.1f}'} | {100 * cost / step:.0f}% |")
    pipeline = info["input_pipeline_s_per_batch"]
    print(f"| sum of parts | | {1e3 * total:.1f} | {100 * total / step:.0f}% |")
    print(f"| **train step** (`train_function`) | {1e3 * med['step forward']:.1f} | **{1e3 * step:.1f}** | 100% |")
    print(f"| input pipeline alone (overlaps the step via prefetch) | | {1e3 * pipeline:.1f} | "
          f"{100 * pipeline / step:.0f}% |")
    if "step, patched" in med:
        patched = med["step, patched"]
        print(f"| **train step with {', '.join(info['patches'])}** | | **{1e3 * patched:.1f}** | "
              f"{100 * patched / step:.0f}% |")
    peak = max(*info["matmul_gflops_before"].values(), *info["matmul_gflops_after"].values())
    flops = info["train_flops"]
    print("\nForward FLOPs: " + ", ".join(f"{k} {v / 1e9:.3f} G" for k, v in info["forward_flops"].items()))
    print("TF's graph FLOP counter, forward: " + ", ".join(
        f"{k} {v / 1e9:.3f} G" for k, v in info["tf_profiler_forward_flops"].items()))
    print(f"Train step: {flops / 1e9:.2f} GFLOP (3 x forward) in {1e3 * step:.0f} ms = "
          f"{flops / step / 1e9:.1f} GFLOP/s; float32 matmul peak {peak:.0f} GFLOP/s "
          f"(2048^2, best of 7; before {info['matmul_gflops_before']}, after {info['matmul_gflops_after']}) "
          f"-> utilisation {100 * flops / step / 1e9 / peak:.1f}%")
    if "step, patched" in med:
        print(f"With {', '.join(info['patches'])}: {1e3 * med['step, patched']:.0f} ms = "
              f"{flops / med['step, patched'] / 1e9:.1f} GFLOP/s -> utilisation "
              f"{100 * flops / med['step, patched'] / 1e9 / peak:.1f}%")
    for name, op_seconds in info["op_seconds"].items():
        op_table(name, op_seconds)
    print(f"CPU seconds per round of all parts: {info['cpu_s_per_round']:.2f}")


def op_table(name, op_seconds):
    """Prints op time by part, forward / backward and kind of op."""
    parts = collections.defaultdict(lambda: collections.Counter())
    for part, direction, kind, seconds in op_seconds:
        parts[part][direction] += seconds
        parts[part][kind] += seconds
    total = sum(sum(v[d] for d in ("fwd", "bwd")) for v in parts.values())
    print(f"\nOp time per traced train step ({name}; TF profiler), {1e3 * total:.0f} ms in all:\n")
    print("| part | forward ms | backward ms | share | of which conv/matmul | batch norm | other ops |")
    print("| --- | --: | --: | --: | --: | --: | --: |")
    for part, c in sorted(parts.items(), key=lambda item: -(item[1]["fwd"] + item[1]["bwd"])):
        both = c["fwd"] + c["bwd"]
        print(f"| {part} | {1e3 * c['fwd']:.1f} | {1e3 * c['bwd']:.1f} | {100 * both / total:.1f}% | "
              f"{1e3 * c['conv/matmul']:.1f} | {1e3 * c['batch norm']:.1f} | {1e3 * c['other ops']:.1f} |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=15, help="timed rounds (medians over these)")
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--trace-steps", type=int, default=5, help="train steps traced by the TF profiler")
    parser.add_argument("--patch", nargs="*", default=["keras_batch_norm"], choices=list(PATCHES),
                        help="also time the step built under these patches (default: Keras's batch norm)")
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.batch_size < 1:
        parser.error(f"need steps >= 1 and batch-size >= 1, got {args.steps}, {args.batch_size}")
    profile(args)


if __name__ == "__main__":
    main()
