"""ImageNet: the TFRecord reader on generated records, the missing-data error, ResNets."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

import tf_codistill as tc
from data_pipelines import imagenet
from tf_codistill import config as config_lib
from tf_codistill.core import schedules
from tf_codistill.runner import train_lib
from tf_codistill.models.resnet import (build_image_model, build_resnet50, build_small_resnet,
                                        imagenet_metrics)
from tf_codistill.tasks import get_task
from tf_codistill.tasks.imagenet import ImageNetData, ImageNetModelSection

NUM_CLASSES = 4
SIZE = 32


@pytest.fixture(scope="module")
def imagenet_dir(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("imagenet"))
    imagenet.write_synthetic_imagenet_tfrecords(directory, 16, NUM_CLASSES, SIZE)
    imagenet.write_synthetic_imagenet_tfrecords(directory, 8, NUM_CLASSES, SIZE,
                                                split="validation", seed=1)
    return directory


def test_generated_records_have_the_standard_features(imagenet_dir):
    record = next(iter(tf.data.TFRecordDataset(
        imagenet.imagenet_files(imagenet_dir, "train")[0])))
    example = tf.train.Example.FromString(record.numpy())
    features = example.features.feature
    assert features["image/class/label"].int64_list.value == [1]
    assert tf.io.decode_jpeg(features["image/encoded"].bytes_list.value[0]).shape == (SIZE, SIZE, 3)


def test_validation_images_are_center_cropped_in_order_with_0_based_labels(imagenet_dir):
    batches = list(imagenet.imagenet_dataset(imagenet_dir, "validation", 3, image_size=16))
    images = np.concatenate([x.numpy() for x, _ in batches])
    labels = np.concatenate([y.numpy() for _, y in batches])
    assert images.shape == (8, 16, 16, 3) and images.dtype == np.float32
    assert labels.tolist() == [i % NUM_CLASSES for i in range(8)]  # files interleaved
    assert abs(images.mean()) < 3 and images.std() < 3  # standardized pixels
    again = np.concatenate([x.numpy() for x, _ in
                            imagenet.imagenet_dataset(imagenet_dir, "validation", 3, image_size=16)])
    np.testing.assert_array_equal(images, again)


def test_training_images_are_augmented_full_batches_repeated(imagenet_dir):
    dataset = imagenet.imagenet_dataset(imagenet_dir, "train", 5, image_size=SIZE, seed=0)
    batches = list(dataset.take(5))  # 25 > 16 images: repeats
    assert all(x.shape == (5, SIZE, SIZE, 3) for x, _ in batches)
    assert all(0 <= int(y) < NUM_CLASSES for _, labels in batches for y in labels)


def test_input_pipelines_read_different_files(imagenet_dir):
    contexts = [tf.distribute.InputContext(2, i, 2) for i in range(2)]
    labels = [sorted(np.concatenate([y.numpy() for _, y in imagenet.imagenet_dataset(
        imagenet_dir, "validation", 4, image_size=8, input_context=c)]).tolist())
        for c in contexts]
    assert labels == [[0, 0, 2, 2], [1, 1, 3, 3]]  # image i is in file i % 2
    with pytest.raises(ValueError, match="cannot be split"):
        imagenet.imagenet_dataset(imagenet_dir, "validation", 6,
                                  input_context=tf.distribute.InputContext(3, 0, 3))


def test_a_missing_or_empty_directory_says_what_to_download_and_where(tmp_path):
    with pytest.raises(imagenet.ImageNetNotFoundError,
                       match=r"does not exist.*ILSVRC2012.*image-net.org.*--data_dir"):
        imagenet.imagenet_dataset(str(tmp_path / "absent"), "train", 8)
    with pytest.raises(imagenet.ImageNetNotFoundError, match=r"No ImageNet train TFRecords"):
        imagenet.imagenet_dataset(str(tmp_path), "train", 8)
    with pytest.raises(ValueError, match="split"):
        imagenet.imagenet_files(str(tmp_path), "test")


def test_labels_outside_the_classes_are_a_clear_error(imagenet_dir):
    dataset = imagenet.imagenet_dataset(imagenet_dir, "validation", 8, image_size=8,
                                        num_classes=2)
    with pytest.raises(tf.errors.InvalidArgumentError, match="label_offset"):
        list(dataset)


def test_resnet50_outputs_logits_and_adds_weight_decay():
    model = build_resnet50(num_classes=NUM_CLASSES, image_size=SIZE, seed=0)
    assert model.output_shape == (None, NUM_CLASSES)
    assert model.layers[-1].activation is keras.activations.linear
    logits = model(tf.zeros([2, SIZE, SIZE, 3]), training=False)
    assert logits.shape == (2, NUM_CLASSES)
    assert len(model.losses) == 1 and float(model.losses[0]) > 0
    assert 23e6 < model.count_params() < 24e6
    with pytest.raises(ValueError, match="image_size"):
        build_resnet50(image_size=16)


def test_image_models_are_chosen_by_flag_name():
    small = build_image_model("small_resnet", NUM_CLASSES, 16, seed=0, weight_decay=0.0)
    assert small.output_shape == (None, NUM_CLASSES) and not small.losses
    with pytest.raises(ValueError, match="resnet50"):
        build_image_model("vgg", NUM_CLASSES, 16)


@pytest.mark.slow
def test_codistilled_resnets_train_under_mirrored_strategy(imagenet_dir, mirrored_strategy):
    def dataset_fn(input_context):
        return imagenet.imagenet_dataset(imagenet_dir, "train", 8, image_size=SIZE,
                                         input_context=input_context, seed=0)

    make = lambda seed: build_small_resnet(NUM_CLASSES, SIZE, seed=seed, width=4)
    schedule = schedules.GoyalSchedule(8, warmup_steps=2, decay_boundaries=[3])
    with mirrored_strategy.scope():
        model = tc.CodistillModel(make(1), tc.InProcessPeers([make(2)]), burn_in_steps=2)
        model.compile(keras.optimizers.SGD(schedule, momentum=0.9),
                      metrics=imagenet_metrics())
    history = model.fit(keras.utils.experimental.DatasetCreator(dataset_fn), epochs=1,
                        steps_per_epoch=4, verbose=0)
    assert int(model.optimizer.iterations.numpy()) == 4
    assert history.history["distill_loss"][0] > 0
    assert history.history["loss"][0] > history.history["task_loss"][0]  # weight decay
    logs = model.evaluate(imagenet.imagenet_dataset(imagenet_dir, "validation", 4,
                                                    image_size=SIZE), return_dict=True, verbose=0)
    assert 0.0 <= logs["top1"] <= 1.0


@pytest.mark.parametrize("weight_decay_schedule", ["constant", "step_with_lr"])
def test_the_weight_decay_schedule_flag_reaches_the_built_model(weight_decay_schedule):
    config = config_lib.RunConfig(
        task="imagenet", model_dir="unused",
        trainer=config_lib.TrainerConfig(batch_size=4, optimizer="momentum", warmup_steps=1,
                                         lr_decay_boundaries=(2, 3),
                                         weight_decay_schedule=weight_decay_schedule),
        model=ImageNetModelSection(image_model="small_resnet", image_size=SIZE,
                                     num_classes=NUM_CLASSES))
    model, _ = train_lib.build(config, get_task(config), tf.distribute.get_strategy())
    model.optimizer.iterations.assign(3)  # past the second learning-rate decay
    decay = float(tf.add_n(model.student.losses))
    logs = model.train_on_batch(tf.random.normal([4, SIZE, SIZE, 3], seed=0),
                                tf.constant([0, 1, 2, 3]), return_dict=True)
    scale = {"constant": 1.0, "step_with_lr": 0.0}[weight_decay_schedule]
    assert decay > 1e-3 and logs["distill_loss"] == 0  # no peers: task loss + weight decay
    assert logs["loss"] == pytest.approx(logs["task_loss"] + scale * decay, rel=1e-5)
    assert (model.regularization_schedule is None) == (weight_decay_schedule == "constant")


def _tfds_config(tmp_path):
    return config_lib.RunConfig(
        task="imagenet", model_dir=str(tmp_path / "run"),
        trainer=config_lib.TrainerConfig(train_steps=2, batch_size=4, steps_per_loop=2,
                                         eval_steps=1, optimizer="momentum", warmup_steps=1),
        data=ImageNetData(imagenet_source="tfds", data_dir=str(tmp_path / "tfds")),
        model=ImageNetModelSection(image_model="small_resnet", image_size=SIZE))


@pytest.mark.slow
def test_imagenet_trains_from_tfds_imagenet2012(tmp_path):
    import tensorflow_datasets as tfds
    with tfds.testing.mock_data(num_examples=16, policy=tfds.testing.MockPolicy.USE_CODE):
        images, labels = next(iter(imagenet.imagenet_dataset(
            str(tmp_path), "validation", 4, SIZE, source="tfds")))
        metrics = train_lib.run(_tfds_config(tmp_path))
    assert images.shape == (4, SIZE, SIZE, 3) and labels.dtype == tf.int32
    assert metrics["global_step"] == 2 and np.isfinite(metrics["eval_loss"])


def test_an_unprepared_tfds_imagenet_says_how_to_build_it(tmp_path):
    with pytest.raises(config_lib.ConfigError, match="tfds build imagenet2012 --data_dir="):
        train_lib.run(_tfds_config(tmp_path))
    assert not (tmp_path / "run").exists()
