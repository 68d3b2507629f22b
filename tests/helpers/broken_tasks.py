"""Tasks of one's own that cannot be used, for the train command's error tests."""

from tf_codistill.tasks.base import Task


class NoHeldOutData(Task):
    """Defines the model and the training data, not the held-out data."""

    def build_model(self, per_replica_batch):
        raise AssertionError("never built: the task is refused first")

    def train_dataset(self, context):
        raise AssertionError("never read: the task is refused first")

