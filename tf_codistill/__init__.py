"""tf_codistill: codistillation as a distributed training algorithm on tf.distribute.

The package runs on tf_keras (the Keras 2 API); importing it makes ``tf.keras``
resolve to tf_keras too when TensorFlow has not been imported yet.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from tf_codistill.losses import get_distillation_loss  # noqa: E402
from tf_codistill.model import CodistillModel  # noqa: E402
from tf_codistill.strategies import get_strategy  # noqa: E402
from tf_codistill.teachers import FixedTeacher, InProcessPeers, TeacherSource  # noqa: E402

__all__ = [
    "CodistillModel",
    "FixedTeacher",
    "InProcessPeers",
    "TeacherSource",
    "get_distillation_loss",
    "get_strategy",
]
