"""Strategies: "mirrored" refuses to fall back to the CPU, "mirrored-cpu" splits it on request."""

import json
import subprocess
import sys

import pytest
import tensorflow as tf

from cmnet_keras import distribute

TWO_CPU_REPLICAS = """
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from cmnet_keras import distribute
strategy = distribute.get_strategy(sys.argv[1])
print(json.dumps({"replicas": strategy.num_replicas_in_sync, "devices": list(strategy.extended.worker_devices)}))
"""


def _no_gpu():
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU")


def test_mirrored_without_gpu_names_the_devices_found():
    _no_gpu()
    with pytest.raises(distribute.StrategyError) as error:
        distribute.get_strategy("mirrored")
    message = str(error.value)
    assert "no GPU" in message and "mirrored-cpu" in message
    assert "/device:CPU:0" in message


def test_unknown_strategy_is_refused():
    with pytest.raises(ValueError, match="'mirored'"):
        distribute.get_strategy("mirored")


def _strategy_over_two_cpus(name):
    return subprocess.run([sys.executable, "-c", TWO_CPU_REPLICAS, name], capture_output=True, text=True, timeout=300)


def test_mirrored_cpu_trains_on_two_cpu_replicas():
    done = _strategy_over_two_cpus("mirrored-cpu")
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["replicas"] == 2
    assert [d.rsplit("/", 1)[-1] for d in got["devices"]] == ["device:CPU:0", "device:CPU:1"]


def test_mirrored_does_not_fall_back_to_cpu_replicas():
    _no_gpu()
    done = _strategy_over_two_cpus("mirrored")
    assert done.returncode != 0
    assert "StrategyError" in done.stderr and "/device:CPU:1" in done.stderr


def test_train_command_with_mirrored_and_no_gpu_fails_before_writing(tmp_path, synthetic_cache):
    _no_gpu()
    cache_dir = synthetic_cache(tmp_path / "cache", ["sub01", "sub02"], clips_per_subject=1)
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "cmnet_keras.train", "--cache", str(cache_dir), "--preset", "tiny",
                           "--strategy", "mirrored", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "TensorFlow sees no GPU" in done.stderr and "mirrored-cpu" in done.stderr
    assert not out.exists()
