"""Speed candidates for the demo train step, each as a ratio to the current step in the same run.

Every variant runs in its own process (thread counts, oneDNN and the Keras
backend are fixed at process start); the variants are interleaved, round after
round (A B C ... A B C ...), so that the load of a shared machine hits all of
them alike, and each reports the median over its rounds' steps. Variants that
change code the bench does not own are prototyped here as patches (`profile_step.PATCHES`).

Usage:
    PYTHONPATH=. python bench/speed_candidates.py                       # every variant, 2 rounds x 6 steps
    PYTHONPATH=. python bench/speed_candidates.py --variants baseline "threads 1/1" --rounds 3
"""

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from profile_step import cpu_seconds, machine, median, patches, synthetic_batch, system_seconds  # noqa: E402

# glibc malloc: blocks up to 32 MiB (its maximum) come from the heap, not from a fresh
# mmap each time, and freed memory is not given back: no page faults on every step.
KEEP_MEMORY = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(1 << 30),
               "MALLOC_TOP_PAD_": str(64 << 20)}

# name: (environment, (intra, inter) threads or None, patch names (profile_step.PATCHES))
VARIANTS = {
    "baseline": ({}, None, ()),
    "threads 1/1": ({}, (1, 1), ()),
    "threads 2/1": ({}, (2, 1), ()),
    "threads 1/2": ({}, (1, 2), ()),
    "threads 2/2": ({}, (2, 2), ()),
    "oneDNN off": ({"TF_ENABLE_ONEDNN_OPTS": "0"}, None, ()),
    "Keras batch norm (unfused)": ({}, None, ("keras_batch_norm",)),
    "JAX backend (jit)": ({"KERAS_BACKEND": "jax"}, None, ()),
    "PyTorch backend (eager)": ({"KERAS_BACKEND": "torch"}, None, ()),
    "oneDNN limited to AVX2": ({"ONEDNN_MAX_CPU_ISA": "AVX2"}, None, ()),
    "Keras batch norm, oneDNN AVX2": ({"ONEDNN_MAX_CPU_ISA": "AVX2"}, None, ("keras_batch_norm",)),
    "gray by slices": ({}, None, ("gray_by_slices",)),
    "mixed_bfloat16 policy": ({}, None, ("mixed_bfloat16",)),
    "mixed_bfloat16 + gray by slices": ({}, None, ("mixed_bfloat16", "gray_by_slices")),
    "malloc keeps freed memory": (KEEP_MEMORY, None, ()),
}


def run_variant(name, steps, warmup):
    """Times `steps` train steps of the demo preset in this process; prints one JSON line."""
    _, threads, patch_names = VARIANTS[name]
    import keras

    if keras.backend.backend() == "tensorflow" and threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads[0])
        tf.config.threading.set_inter_op_parallelism_threads(threads[1])
    active = patches(patch_names)  # open until this process ends
    from cmnet_keras.config import get_config
    from cmnet_keras.models import build_cmnet

    cfg = get_config("demo")
    keras.utils.set_random_seed(0)
    start = time.perf_counter()
    model = build_cmnet(cfg, steps_per_epoch=12)
    x, y = synthetic_batch(cfg)
    model.train_on_batch(x, y)
    first = time.perf_counter() - start
    for _ in range(warmup):
        model.train_on_batch(x, y)
    times, cpu, system = [], cpu_seconds(), system_seconds()
    for _ in range(steps):
        start = time.perf_counter()
        logs = model.train_on_batch(x, y, return_dict=True)
        times.append(time.perf_counter() - start)
    active.close()
    print(json.dumps({"variant": name, "backend": keras.backend.backend(), "times": times,
                      "cpu_s": (cpu_seconds() - cpu) / steps, "sys_s": (system_seconds() - system) / steps,
                      "build_and_first_step_s": first, "loss": float(logs["loss"])}))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--rounds", type=int, default=2, help="processes per variant, interleaved")
    parser.add_argument("--steps", type=int, default=6, help="timed steps per process")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps after the first")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.variant:
        return run_variant(args.variant, args.steps, args.warmup)
    if "baseline" not in args.variants:
        args.variants.insert(0, "baseline")
    before = machine()
    results = {name: {"times": [], "cpu_s": [], "sys_s": [], "first_s": [], "loss": None} for name in args.variants}
    for _ in range(args.rounds):
        for name in args.variants:
            environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **VARIANTS[name][0]}
            done = subprocess.run([sys.executable, __file__, "--variant", name, "--steps", str(args.steps),
                                   "--warmup", str(args.warmup)], capture_output=True, text=True, env=environment)
            if done.returncode:
                print(f"{name}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
                continue
            out = json.loads(done.stdout.strip().splitlines()[-1])
            results[name]["times"] += out["times"]
            results[name]["cpu_s"].append(out["cpu_s"])
            results[name]["sys_s"].append(out["sys_s"])
            results[name]["first_s"].append(out["build_and_first_step_s"])
            results[name]["loss"] = out["loss"]
    after = machine()
    print(f"\n{before['cpu']}, {before['cores']} cores, avx2={before['avx2']}, avx512f={before['avx512f']}; "
          f"load {before['load']} -> {after['load']}; demo preset, batch 8, {args.rounds} rounds x "
          f"{args.steps} steps per variant, interleaved\n")
    print("| variant | ms / step (median) | ratio to baseline | CPU s / step | of which sys | build + first step s "
          "| loss after |")
    print("| --- | --: | --: | --: | --: | --: | --: |")
    base = median(results["baseline"]["times"])
    for name, r in results.items():
        if not r["times"]:
            print(f"| {name} | failed | | | | | |")
            continue
        step = median(r["times"])
        print(f"| {name} | {1e3 * step:.0f} | {step / base:.2f} | {median(r['cpu_s']):.2f} | "
              f"{median(r['sys_s']):.2f} | {median(r['first_s']):.1f} | {r['loss']:.4f} |")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"before": before, "after": after, "results": results}, handle, indent=2)


if __name__ == "__main__":
    main()
