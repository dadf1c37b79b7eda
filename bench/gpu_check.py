"""GPU check: the paper preset's training step under KERAS_BACKEND=jax, float32 and mixed_bfloat16.

Needs jax (with a GPU), keras and this package; not TensorFlow, tf.data or a dataset:
the clips are synthetic uint8 numpy arrays. For each policy it trains batch 8 (the
paper's) for a few steps, then doubles the batch; a batch that runs out of memory,
fails, reaches `--max-batch` or does not finish in the policy's share of `--budget`
seconds ends the doubling. Each batch runs in its own process, so each peak is its own.
It prints, per policy and batch: compile time, clips/s, peak GPU memory (jax
`memory_stats()["peak_bytes_in_use"]`) and the share of the GPU's dense bf16 peak that
the facial feature encoder's (FFE, ResNet-18) training FLOPs use. Those FLOPs are
counted analytically (every convolution: forward, weight gradient, input gradient but
for the first; padding taps included, as GPU kernels compute them) and checked against
jax's cost analysis of the FFE's gradient (which skips padding taps: ~7% fewer at 224 px).

Usage:
    bash bench/gpu_check.sh                    # paper preset: 224 px, 16 frames
    bash bench/gpu_check.sh --smoke            # tiny preset, 2 steps, batches 2 and 4 (CPU debugging)
"""

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time

POLICIES = ("float32", "mixed_bfloat16")
# Dense (no sparsity) bf16 tensor-core peak, TFLOP/s, by device kind (NVIDIA data sheets, SXM boards).
BF16_PEAK_TFLOPS = {"H100 PCIe": 756.0, "H100": 989.4, "H200": 989.4, "A100": 312.0}


def bf16_peak_tflops(device_kind):
    """The data-sheet dense bf16 peak for `device_kind`, or None when unknown."""
    for name, tflops in BF16_PEAK_TFLOPS.items():  # "H100 PCIe" before "H100"
        if name in device_kind:
            return tflops
    return None


def _config(args):
    from cmnet_keras import get_config

    return get_config("tiny" if args.smoke else "paper")


def ffe_train_flops_per_frame(ffe, image_size):
    """Analytic training FLOPs of the FFE for one frame: 2*MACs for each convolution's
    forward and weight gradient, and its input gradient except for the first convolution."""
    from keras import layers

    from cmnet_keras.layers.facial_feature_encoder import BasicBlock

    total, first = 0, True

    def conv(layer, shape):
        nonlocal total, first
        out = layer.compute_output_shape(shape)
        kh, kw, cin, cout = layer.kernel.shape
        forward = 2 * out[1] * out[2] * kh * kw * cin * cout
        total += forward * (2 if first else 3)
        first = False
        return out

    shape = (1, image_size, image_size, 3)
    for layer in [*ffe.stem, *ffe.stages]:
        if isinstance(layer, layers.Conv2D):
            shape = conv(layer, shape)
        elif isinstance(layer, BasicBlock):
            if layer.project is not None:
                conv(layer.project, shape)
            shape = conv(layer.conv2, conv(layer.conv1, shape))
        elif isinstance(layer, layers.MaxPooling2D):
            shape = layer.compute_output_shape(shape)
    return total


def ffe_train_flops_jax(ffe, image_size):
    """FLOPs of the FFE's gradient (one frame) by jax's cost analysis of the unoptimised HLO, or None."""
    import jax
    import jax.numpy as jnp

    trainable = [v.value for v in ffe.trainable_variables]
    non_trainable = [v.value for v in ffe.non_trainable_variables]
    frame = jnp.zeros((1, 1, image_size, image_size, 3), "float32")

    def loss(trainable):
        features, _ = ffe.stateless_call(trainable, non_trainable, frame, training=True)
        return jnp.sum(features)

    try:
        cost = jax.jit(jax.grad(loss)).lower(trainable).cost_analysis()
    except Exception as error:  # cost analysis is best effort across jax versions
        print(f"jax cost analysis unavailable: {error}", flush=True)
        return None
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return None if not cost or "flops" not in cost else float(cost["flops"])


def count_flops(args):
    """FFE training FLOPs per clip (analytic, and jax's count), on the CPU (prints one JSON line)."""
    from cmnet_keras.models import build_cmnet

    cfg = _config(args)
    model = build_cmnet(cfg, compile=False)
    analytic = ffe_train_flops_per_frame(model.ffe, cfg.image_size)
    counted = ffe_train_flops_jax(model.ffe, cfg.image_size)
    print(json.dumps({"frames": cfg.num_frames, "analytic_per_frame": analytic, "jax_per_frame": counted}), flush=True)


def _is_oom(error):
    text = f"{type(error).__name__} {error}".lower()
    return any(sign in text for sign in ("resource_exhausted", "out of memory", "out_of_memory"))


def run_batch(args):
    """Child process: trains `args.batch` clips under `args.policy`; prints one JSON line."""
    import jax
    import keras
    import numpy as np

    from cmnet_keras.models import build_cmnet

    keras.mixed_precision.set_global_policy(args.policy)
    device = jax.local_devices()[0]
    cfg = dataclasses.replace(_config(args), batch_size=args.batch)
    row = {"policy": args.policy, "batch": args.batch, "device": device.device_kind}
    rng = np.random.default_rng(0)
    size = cfg.image_size
    x = {"frames": rng.integers(0, 256, (args.batch, cfg.num_frames, size, size, 3), dtype=np.uint8),
         "apex": rng.integers(0, cfg.num_frames, (args.batch,)).astype("int32")}
    y = rng.integers(0, cfg.num_classes, (args.batch,)).astype("int32")
    try:
        model = build_cmnet(cfg)
        if args.policy != "float32":
            # jax's cuDNN LSTM has no bfloat16 ("Unknown output type bfloat16", jax 0.11.2).
            model.lstm.use_cudnn = False
        print(f"{args.policy} batch {args.batch}: data and model ready, first step (compiles)", file=sys.stderr,
              flush=True)
        first = time.perf_counter()
        model.train_on_batch(x, y)
        row["compile_s"] = time.perf_counter() - first
        for _ in range(args.warmup):
            model.train_on_batch(x, y)
        start = time.perf_counter()
        for _ in range(args.steps):
            logs = model.train_on_batch(x, y, return_dict=True)
        step = (time.perf_counter() - start) / args.steps
        row.update(status="ok", step_s=step, clips_per_s=args.batch / step, loss=float(logs["loss"]))
    except Exception as error:
        if not _is_oom(error):
            raise
        row.update(status="out of memory", error=str(error).splitlines()[0][:300])
    memory = device.memory_stats() or {}
    row.update(peak_bytes=memory.get("peak_bytes_in_use"), bytes_limit=memory.get("bytes_limit"))
    print(json.dumps(row), flush=True)


def next_batch(rows, first, max_batch):
    """The next batch to try, or None: `first`, then doubling while batches fit.

    Plain doubling on purpose: each size compiles a new step, and one jump to a large
    batch that then does not finish in time leaves nothing measured (batch 128 on the
    H200 did not finish in 213 s, see BENCHMARKS.md).
    """
    if not rows:
        return first
    if any(r["status"] != "ok" for r in rows):
        return None
    batch = 2 * rows[-1]["batch"]
    return batch if batch <= max_batch else None


def _child(args, *extra, timeout, env=None):
    """Runs this script with `extra` arguments; returns the JSON lines it printed (also on timeout)."""
    cmd = [sys.executable, __file__, *extra, "--steps", str(args.steps), "--warmup", str(args.warmup),
           "--max-batch", str(args.max_batch)] + (["--smoke"] if args.smoke else [])
    rows = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}) as child:
        try:
            out, _ = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            out, _ = child.communicate()
            print(f"{' '.join(extra)}: stopped after {timeout:.0f} s", flush=True)
        if child.returncode not in (0, None, -9):
            print(f"{' '.join(extra)}: exit status {child.returncode}", flush=True)
    for line in out.splitlines():
        if line.startswith("{"):
            rows.append(json.loads(line))
        else:
            print(line, flush=True)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny preset, 2 steps, batches 2 and 4")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per batch (default 5; --smoke 2)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps after the compiling one")
    parser.add_argument("--max-batch", type=int, default=None, help="largest batch to try (default 1024; --smoke 4)")
    parser.add_argument("--budget", type=float, default=380.0, help="seconds for everything (policies share it)")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="the GPU's dense bf16 peak (default: by device kind, see BF16_PEAK_TFLOPS)")
    parser.add_argument("--json", help="also write every row and the FLOP counts here")
    parser.add_argument("--policy", choices=POLICIES, help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--count-flops", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.steps = args.steps or (2 if args.smoke else 5)
    args.max_batch = args.max_batch or (4 if args.smoke else 1024)
    if args.steps < 1 or args.warmup < 0 or args.budget <= 0:
        parser.error(f"need --steps >= 1, --warmup >= 0, --budget > 0; got {args.steps}, {args.warmup}, {args.budget}")
    if os.environ.get("KERAS_BACKEND") != "jax":
        parser.error(f"run under KERAS_BACKEND=jax (gpu_check.sh sets it); got {os.environ.get('KERAS_BACKEND')!r}")
    if args.count_flops:
        return count_flops(args)
    if args.policy:
        return run_batch(args)

    start = time.time()
    flops = _child(args, "--count-flops", timeout=args.budget, env={"JAX_PLATFORMS": "cpu"})[0]  # leaves the GPU
    per_clip = flops["analytic_per_frame"] * flops["frames"]
    jax_count = flops["jax_per_frame"]
    print(f"FFE training FLOPs per frame: {flops['analytic_per_frame'] / 1e9:.4g} G analytic, "
          f"{'n/a' if jax_count is None else f'{jax_count / 1e9:.4g} G'} by jax cost analysis; "
          f"per clip ({flops['frames']} frames): {per_clip / 1e9:.4g} G", flush=True)
    rows = []
    first = 2 if args.smoke else _config(args).batch_size
    for i, policy in enumerate(POLICIES):
        deadline = time.time() + (args.budget - (time.time() - start)) / (len(POLICIES) - i)
        done, last = [], 0.0
        while (batch := next_batch(done, first, args.max_batch)) is not None:
            if time.time() + 1.5 * last > deadline:
                done.append({"policy": policy, "batch": batch, "status": "not run: time budget"})
                break
            began = time.time()
            print(f"{time.strftime('%H:%M:%S')} {policy} batch {batch}", flush=True)
            got = _child(args, "--policy", policy, "--batch", str(batch), timeout=max(deadline - began, 0) + 60)
            done += got or [{"policy": policy, "batch": batch, "status": "failed (see above)"}]  # counts as too big
            print(json.dumps(done[-1]), flush=True)
            last = time.time() - began
        rows += done
    device = next((r["device"] for r in rows if "device" in r), "unknown")
    peak = args.peak_tflops or bf16_peak_tflops(device)
    print(f"\n{device}; dense bf16 peak used: {'n/a (give --peak-tflops)' if peak is None else f'{peak:.1f} TFLOP/s'}")
    print("| policy | batch | status | compile s | s/step | clips/s | peak GPU memory GiB | FFE share of bf16 peak |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        ok = r["status"] == "ok"
        share = f"{100 * per_clip * r['clips_per_s'] / (peak * 1e12):.1f}%" if ok and peak else "-"
        memory = f"{r['peak_bytes'] / 2**30:.2f}" if r.get("peak_bytes") else "-"
        print(f"| {r['policy']} | {r['batch']} | {r['status']} | {r.get('compile_s', 0):.1f} | "
              f"{r.get('step_s', 0):.3f} | {r.get('clips_per_s', 0):.1f} | {memory} | {share} |")
    for policy in POLICIES:
        fits = [r["batch"] for r in rows if r["policy"] == policy and r["status"] == "ok"]
        print(f"{policy}: largest batch that ran: {max(fits) if fits else 'none'}")
    print(f"total {time.time() - start:.0f} s")
    if args.json:
        from cmnet_keras.files import write_json

        write_json(args.json, {"flops": flops, "peak_tflops": peak, "rows": rows})
    if not any(r["status"] == "ok" for r in rows):
        sys.exit("no batch ran")


if __name__ == "__main__":
    main()
