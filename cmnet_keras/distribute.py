"""tf.distribute strategies for the main job (TF-only module).

- "none": the default (single device) strategy.
- "mirrored": `tf.distribute.MirroredStrategy` over all local GPUs; an error when
  TensorFlow sees none (a broken CUDA install must not train on the CPU unnoticed).
- "mirrored-cpu": `tf.distribute.MirroredStrategy` over the logical CPU devices, asked
  for explicitly (tests split the CPU with `tf.config.set_logical_device_configuration`).
- "multiworker": `tf.distribute.MultiWorkerMirroredStrategy` from the `TF_CONFIG`
  environment variable; every worker runs the same command. The chief writes the
  run directory, the other workers write theirs under `<out>/workers/<task_id>`.

`--batch-size` is the global batch size: it is split over the replicas.

Known limitation: with Keras 3.15 and more than one worker, `fit` fails before
the first step when the inputs are a dict (CMNet's `{"frames", "apex"}`): the
TF trainer's symbolic build all-reduces the nested batch
(keras-team/keras#20329). A single worker and MirroredStrategy work.
"""

import contextlib
import json
import os

import keras

STRATEGIES = ("none", "mirrored", "mirrored-cpu", "multiworker")


class StrategyError(ValueError):
    """The strategy asked for cannot run here (no GPU, no TF_CONFIG, another backend)."""


def get_strategy(name):
    """The tf.distribute strategy for `name` (None for "none").

    Raises:
        StrategyError: an unknown name, or a strategy that cannot run here (`mirrored_devices`).
    """
    if name not in STRATEGIES:
        raise StrategyError(f"strategy must be one of {STRATEGIES}, got {name!r}")
    if name == "none":
        return None
    if keras.backend.backend() != "tensorflow":
        raise StrategyError(
            f"--strategy {name} needs KERAS_BACKEND=tensorflow, the backend is {keras.backend.backend()!r}"
        )
    import tensorflow as tf

    if name.startswith("mirrored"):
        return tf.distribute.MirroredStrategy(mirrored_devices(name))
    tf_config = os.environ.get("TF_CONFIG")
    if not tf_config:
        raise StrategyError("--strategy multiworker needs the TF_CONFIG environment variable (cluster and task)")
    try:
        json.loads(tf_config)
    except json.JSONDecodeError as err:
        raise StrategyError(f"TF_CONFIG is not valid JSON ({err}): {tf_config!r}") from None
    return tf.distribute.MultiWorkerMirroredStrategy()


def mirrored_devices(name):
    """Device names for "mirrored" (the GPUs) or "mirrored-cpu" (the logical CPUs).

    Raises:
        StrategyError: "mirrored" and TensorFlow sees no GPU; the message names the devices found.
    """
    import tensorflow as tf

    kind = "CPU" if name == "mirrored-cpu" else "GPU"
    devices = [d.name for d in tf.config.list_logical_devices(kind)]
    if not devices:
        found = [d.name for d in tf.config.list_logical_devices()]
        raise StrategyError(
            f"--strategy {name}: TensorFlow sees no {kind}, only {found}. Install the GPU build "
            f"(pip install -e \".[gpu]\") and check tf.config.list_physical_devices('GPU'); "
            f"to train on CPU replicas on purpose, use --strategy mirrored-cpu"
        )
    return devices


def strategy_scope(strategy):
    """`strategy.scope()`, or a no-op context for no strategy."""
    return contextlib.nullcontext() if strategy is None else strategy.scope()


def worker_id(strategy):
    """None on the chief (or without a multi-worker strategy), else the worker's task id."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return None
    task_type, task_id = resolver.task_type, resolver.task_id
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    if task_type == "chief" or (task_type == "worker" and task_id == 0 and not has_chief):
        return None
    return f"{task_type}_{task_id}"
