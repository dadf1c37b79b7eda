"""tf.distribute strategies for the main job (TF-only module).

- "none": the default (single device) strategy.
- "mirrored": `tf.distribute.MirroredStrategy` over all local GPUs; an error when
  TensorFlow sees none (a broken CUDA install must not train on the CPU unnoticed).
- "mirrored-cpu": `tf.distribute.MirroredStrategy` over the logical CPU devices, asked
  for explicitly (tests split the CPU with `tf.config.set_logical_device_configuration`).
- "multiworker": `tf.distribute.MultiWorkerMirroredStrategy` from the `TF_CONFIG`
  environment variable (`multi_worker_strategy`); every worker runs the same
  command. Only the chief writes the run directory (`output_dir`).

`--batch-size` is the global batch size: it is split over the replicas. Under
"multiworker" each worker reads every clip and keeps its replicas' share of
each batch (tf.data's DATA auto-shard policy, set by `data.pipeline`).
"""

import contextlib
import json
import os
import tempfile
from pathlib import Path

from cmnet_keras import optional
from cmnet_keras.options import STRATEGIES


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
    try:
        tf = optional.tensorflow_only(f"--strategy {name} (tf.distribute)")
    except optional.TensorFlowOnlyError as error:
        raise StrategyError(str(error)) from None

    if name.startswith("mirrored"):
        return tf.distribute.MirroredStrategy(mirrored_devices(name))
    tf_config = os.environ.get("TF_CONFIG")
    if not tf_config:
        raise StrategyError("--strategy multiworker needs the TF_CONFIG environment variable (cluster and task)")
    try:
        json.loads(tf_config)
    except json.JSONDecodeError as err:
        raise StrategyError(f"TF_CONFIG is not valid JSON ({err}): {tf_config!r}") from None
    return multi_worker_strategy()


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
    return _task_id(getattr(strategy, "cluster_resolver", None))


def is_chief(name):
    """Whether this process is the chief under strategy `name`: always, except on another
    "multiworker" worker (told by `TF_CONFIG`, without building the strategy)."""
    if name != "multiworker":
        return True
    import tensorflow as tf

    return _task_id(tf.distribute.cluster_resolver.TFConfigClusterResolver()) is None


def _task_id(resolver):
    if resolver is None or not resolver.task_type:
        return None
    task_type, task_id = resolver.task_type, resolver.task_id
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    if task_type == "chief" or (task_type == "worker" and task_id == 0 and not has_chief):
        return None
    return f"{task_type}_{task_id}"


def output_dir(out, strategy):
    """The folder this process writes its run to: `out` on the chief (and without a multi-worker
    strategy), a new temp folder on the other workers (`cmnet_<task>_*` in the system's temp folder).

    Every worker saves what the chief saves, so that the workers stay in step, but only the
    chief's files are kept: the caller removes the temp folder when done; a killed worker
    leaves it, and nothing reads it again.
    """
    worker = worker_id(strategy)
    return Path(out) if worker is None else Path(tempfile.mkdtemp(prefix=f"cmnet_{worker}_"))


def multi_worker_strategy():
    """`tf.distribute.MultiWorkerMirroredStrategy` whose `reduce` also takes what Keras 3.15's
    TF trainer gives it, which the TF strategy refuses with more than one worker
    (keras-team/keras#20329):

    - nested values: `fit` and `evaluate` reduce a first data batch, `({"frames", "apex"}, label)`,
      only to read its shapes; each tensor is reduced on its own (as `MirroredStrategy` does);
    - dtypes the collective ops lack (uint8 frames): reduced as int32 and cast back;
    - scalars with `axis=0` (the per-step loss and metrics): reduced over the replicas.
    """
    import tensorflow as tf

    collective_dtypes = (tf.bfloat16, tf.float16, tf.float32, tf.float64, tf.int32, tf.int64)

    class MultiWorkerStrategy(tf.distribute.MultiWorkerMirroredStrategy):
        def reduce(self, reduce_op, value, axis=None):
            reduce_one = super().reduce

            def reduce_tensor(per_replica):
                local = self.experimental_local_results(per_replica)[0]
                tensor_axis = None if local.shape.rank == 0 else axis
                if local.dtype in collective_dtypes:
                    return reduce_one(reduce_op, per_replica, tensor_axis)
                wide = self.run(tf.function(lambda t: tf.cast(t, tf.int32)), args=(per_replica,))
                return tf.cast(reduce_one(reduce_op, wide, tensor_axis), local.dtype)

            return tf.nest.map_structure(reduce_tensor, value)

    return MultiWorkerStrategy()
