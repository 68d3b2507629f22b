"""The paper's ImageNet set-up: ResNet-50 with the Goyal et al. large-batch recipe."""

from __future__ import annotations

import dataclasses

from data_pipelines.imagenet import (SOURCES, ImageNetNotFoundError, imagenet_dataset,
                                     imagenet_files, tfds_builder)
from tf_codistill.config import AT_LEAST_1, ConfigError, knob
from tf_codistill.models.resnet import build_image_model, imagenet_metrics
from tf_codistill.core.schedules import GoyalSchedule
from tf_codistill.tasks.base import Task, group_input_context


IMAGE_MODELS = ("resnet50", "small_resnet")


@dataclasses.dataclass(frozen=True)
class ImageNetModelSection:
    """The image classifier's architecture."""

    image_model: str = knob("resnet50", "ImageNet classifier (small_resnet is for CPU "
                            "tests).", choices=IMAGE_MODELS)
    image_size: int = knob(224, "Image side in pixels.", valid=AT_LEAST_1)
    num_classes: int = knob(1000, "Classes of the classifier.", valid=AT_LEAST_1)


@dataclasses.dataclass(frozen=True)
class ImageNetData:
    """Where the images are."""

    data_dir: str = knob("", "ImageNet: the TFRecords (train-*-of-*, validation-*-of-*), or "
                         "the TFDS data_dir with --imagenet_source=tfds.")
    imagenet_source: str = knob(
        "tfrecords", "ImageNet: TFRecords in the layout of TensorFlow's conversion scripts, "
        "or TFDS imagenet2012 prepared with `tfds build imagenet2012 --data_dir=D "
        "--manual_dir=M`.", choices=SOURCES)


class ImageNetTask(Task):
    """Top-1 accuracy on the validation split; --learning_rate is per 256 examples."""

    ModelConfig = ImageNetModelSection
    DataConfig = ImageNetData

    def check_inputs(self):
        data = self.config.data
        try:
            if data.imagenet_source == "tfds":
                tfds_builder(data.data_dir)
            else:
                imagenet_files(data.data_dir, "train")
                imagenet_files(data.data_dir, "validation")
        except ImageNetNotFoundError as error:
            raise ConfigError(str(error)) from None

    def build_model(self, per_replica_batch):
        model = self.config.model
        return build_image_model(model.image_model, model.num_classes, model.image_size,
                                 seed=self.config.init_seed,
                                 weight_decay=self.config.trainer.weight_decay)

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
                                seed=self.config.data_seed, input_context=context,
                                source=self.config.data.imagenet_source)
