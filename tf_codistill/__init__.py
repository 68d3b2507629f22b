"""tf_codistill: codistillation as a distributed training algorithm on tf.distribute.

The package runs on tf_keras (the Keras 2 API); importing it makes ``tf.keras``
resolve to tf_keras too when TensorFlow has not been imported yet. The public
names load lazily, so ``python -m tf_codistill.train`` can set TensorFlow's
environment before TensorFlow is imported.
"""

import importlib
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

_EXPORTS = {
    "CodistillModel": "tf_codistill.core.model",
    "FixedTeacher": "tf_codistill.core.teachers",
    "InProcessPeers": "tf_codistill.core.teachers",
    "PriorTeacher": "tf_codistill.core.teachers",
    "TeacherSource": "tf_codistill.core.teachers",
    "CheckpointPeers": "tf_codistill.exchange.peers",
    "get_distillation_loss": "tf_codistill.core.losses",
    "get_strategy": "tf_codistill.runner.strategies",
    "Group": "tf_codistill.runner.group",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'tf_codistill' has no attribute {name!r}")
