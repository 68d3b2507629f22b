"""The paper's ImageNet set-up: ResNet-50 with the Goyal et al. large-batch recipe."""

from __future__ import annotations

from data_pipelines.imagenet import ImageNetNotFoundError, imagenet_dataset, imagenet_files
from tf_codistill.config import ConfigError
from tf_codistill.models.resnet import build_image_model, imagenet_metrics
from tf_codistill.schedules import GoyalSchedule
from tf_codistill.tasks.base import Task, group_input_context


class ImageNetTask(Task):
    """Top-1 accuracy on the validation split; --learning_rate is per 256 examples."""

    def check_inputs(self):
        try:
            imagenet_files(self.config.data.data_dir, "train")
            imagenet_files(self.config.data.data_dir, "validation")
        except ImageNetNotFoundError as error:
            raise ConfigError(str(error)) from None

    def build_model(self, per_replica_batch):
        model = self.config.model
        return build_image_model(model.image_model, model.num_classes, model.image_size,
                                 seed=self.config.trainer.seed * 1000 + self.config.group,
                                 weight_decay=model.weight_decay)

    def learning_rate(self):
        trainer = self.config.trainer
        return GoyalSchedule(trainer.batch_size, trainer.warmup_steps,
                             trainer.lr_decay_boundaries,
                             base_learning_rate=trainer.learning_rate)

    def train_dataset(self, context):
        return self._dataset("train", group_input_context(self.config, context))

    def eval_dataset(self, context):
        return self._dataset("validation", context)

    def metrics(self):
        return imagenet_metrics()

    def _dataset(self, split, context):
        model = self.config.model
        return imagenet_dataset(self.config.data.data_dir, split, self.config.trainer.batch_size,
                                model.image_size, num_classes=model.num_classes,
                                seed=self.config.trainer.seed + self.config.group,
                                input_context=context)
