"""Test setup: tf_keras everywhere and two logical CPU devices for MirroredStrategy.

Both must happen before TensorFlow initializes its runtime, so they live here.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
if _cpus:
    tf.config.set_logical_device_configuration(
        _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def mirrored_strategy():
    """One MirroredStrategy over the two logical CPUs for the whole session.

    Several MirroredStrategy objects in one process reuse collective instance
    keys and abort each other's all-reduces, so tests share this one.
    """
    from tf_codistill.runner.strategies import get_strategy
    strategy = get_strategy("mirrored")
    assert strategy.num_replicas_in_sync == 2
    return strategy
