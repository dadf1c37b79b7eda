"""tf.distribute strategies and mixed precision for the main job (TF-only module).

- "none": the default (single device) strategy.
- "mirrored": `tf.distribute.MirroredStrategy` over all local GPUs (the logical CPUs when
  there are none).
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

STRATEGIES = ("none", "mirrored", "multiworker")


def get_strategy(name):
    """The tf.distribute strategy for `name` (None for "none")."""
    if name not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {name!r}")
    if name == "none":
        return None
    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            f"--strategy {name} needs KERAS_BACKEND=tensorflow, the backend is {keras.backend.backend()!r}"
        )
    import tensorflow as tf

    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    tf_config = os.environ.get("TF_CONFIG")
    if not tf_config:
        raise ValueError("--strategy multiworker needs the TF_CONFIG environment variable (cluster and task)")
    try:
        json.loads(tf_config)
    except json.JSONDecodeError as err:
        raise ValueError(f"TF_CONFIG is not valid JSON ({err}): {tf_config!r}") from None
    return tf.distribute.MultiWorkerMirroredStrategy()


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


def set_mixed_precision(enabled):
    """Sets the global Keras dtype policy: "mixed_float16" if enabled, else "float32"."""
    keras.mixed_precision.set_global_policy("mixed_float16" if enabled else "float32")
