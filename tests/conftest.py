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


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """(WET files, vocabulary) of the tiny LM set-up (tests/helpers/lm.py), made once."""
    from tests.helpers import lm
    return lm.make_corpus(tmp_path_factory.mktemp("lm"))


@pytest.fixture(scope="session")
def finished_lm(tmp_path_factory, corpus):
    """(config, metrics) of one tiny LM group (tests/helpers/lm.py, seed 0) trained to its
    end, every checkpoint kept: the run several modules' tests would each train again.

    Tests read it or copy it; none may change it."""
    import dataclasses
    from tests.helpers import lm
    from tf_codistill.runner import train_lib
    config = lm.lm_config(tmp_path_factory.mktemp("finished_lm"), *corpus)
    config = dataclasses.replace(config, trainer=dataclasses.replace(config.trainer,
                                                                     keep_checkpoints=0))
    return config, train_lib.run(config)
