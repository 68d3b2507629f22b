"""ImageNet (ILSVRC2012) from TFRecords in the layout of TensorFlow's conversion scripts,
or from TensorFlow Datasets' ``imagenet2012`` (prepared from the manual download).

Files are ``train-?????-of-?????`` and ``validation-?????-of-?????`` in one
directory; each record is a ``tf.train.Example`` with ``image/encoded`` (JPEG
bytes) and ``image/class/label`` (int64, 1..1000: those scripts keep 0 for a
background class, hence ``label_offset=1``). Preprocessing follows the ResNet
recipe used by Goyal et al.: random-size, random-aspect crops and flips for
training; a central crop for evaluation; per-channel standardization.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

SPLITS = {"train": "train", "validation": "validation"}
SOURCES = ("tfrecords", "tfds")
TFDS_NAME = "imagenet2012"
MEAN_RGB = (0.485 * 255, 0.456 * 255, 0.406 * 255)
STDDEV_RGB = (0.229 * 255, 0.224 * 255, 0.225 * 255)
EVAL_CROP_FRACTION = 0.875  # 224 of 256

_DOWNLOAD_HINT = (
    "Download ILSVRC2012 (ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar) from "
    "https://image-net.org/download-images (an account is needed) and convert it to "
    "TFRecords named train-00000-of-01024 ... and validation-00000-of-00128 with "
    "features image/encoded and image/class/label (as TensorFlow's "
    "build_imagenet_data.py / imagenet_to_gcs.py do), then pass that directory as "
    "--data_dir.")


class ImageNetNotFoundError(FileNotFoundError):
    """The ImageNet TFRecords are not where the flags say."""


def imagenet_files(data_dir: str, split: str) -> list[str]:
    """The split's TFRecord files, or an error saying what to download and where."""
    if split not in SPLITS:
        raise ValueError(f"split={split!r}: choose one of {sorted(SPLITS)}.")
    if not data_dir or not tf.io.gfile.isdir(data_dir):
        raise ImageNetNotFoundError(
            f"ImageNet directory {data_dir!r} does not exist. {_DOWNLOAD_HINT}")
    files = sorted(tf.io.gfile.glob(os.path.join(data_dir, f"{SPLITS[split]}-*-of-*")))
    if not files:
        raise ImageNetNotFoundError(
            f"No ImageNet {split} TFRecords ({SPLITS[split]}-*-of-*) in {data_dir!r}. "
            f"{_DOWNLOAD_HINT}")
    return files


def imagenet_dataset(data_dir: str, split: str, batch_size: int, image_size: int = 224,
                     training: bool | None = None, *, source: str = "tfrecords",
                     num_classes: int = 1000, label_offset: int = 1, seed: int | None = None,
                     shuffle_buffer: int = 10_000, num_epochs: int | None = None,
                     input_context: tf.distribute.InputContext | None = None,
                     drop_remainder: bool | None = None) -> tf.data.Dataset:
    """Batches of (float32 [B, size, size, 3] images, int32 [B] labels).

    ``source`` "tfrecords" reads the conversion scripts' files in ``data_dir``;
    "tfds" reads TFDS ``imagenet2012`` prepared in ``data_dir`` (its labels are
    0-based, so ``label_offset`` does not apply). ``training`` (default: split ==
    "train") turns on shuffling, augmentation, repetition (``num_epochs``; None
    repeats forever) and dropping the last partial batch. With ``input_context``
    the input is split between input pipelines and ``batch_size`` is the global
    batch.
    """
    if source not in SOURCES:
        raise ValueError(f"source={source!r}: choose one of {SOURCES}.")
    training = split == "train" if training is None else training
    if input_context is not None:
        batch_size = input_context.get_per_replica_batch_size(batch_size)
    if source == "tfds":
        examples, label_offset = _tfds_examples(data_dir, split, training, seed,
                                                input_context), 0
    else:
        examples = _tfrecord_examples(data_dir, split, training, seed, input_context)
    if training:
        examples = examples.shuffle(shuffle_buffer, seed=seed).repeat(num_epochs)

    def preprocess(encoded, label):
        return preprocess_example(encoded, label, image_size, training, num_classes,
                                  label_offset)

    dataset = examples.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE,
                           deterministic=not training)
    drop = training if drop_remainder is None else drop_remainder
    dataset = dataset.batch(batch_size, drop_remainder=drop)
    if input_context is not None:
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.OFF)
        dataset = dataset.with_options(options)
    return dataset.prefetch(tf.data.AUTOTUNE)


def _tfrecord_examples(data_dir, split, training, seed, input_context) -> tf.data.Dataset:
    """(JPEG bytes, raw label) of this input pipeline's share of the split's files."""
    files = imagenet_files(data_dir, split)
    dataset = tf.data.Dataset.from_tensor_slices(files)
    if input_context is not None and input_context.num_input_pipelines > 1:
        if len(files) < input_context.num_input_pipelines:
            raise ValueError(
                f"{len(files)} {split} files cannot be split between "
                f"{input_context.num_input_pipelines} input pipelines; write at least "
                "one file per pipeline.")
        dataset = dataset.shard(input_context.num_input_pipelines,
                                input_context.input_pipeline_id)
    if training:
        dataset = dataset.shuffle(len(files), seed=seed)
    dataset = dataset.interleave(tf.data.TFRecordDataset, cycle_length=min(len(files), 8),
                                 num_parallel_calls=tf.data.AUTOTUNE,
                                 deterministic=not training)
    return dataset.map(parse_record, num_parallel_calls=tf.data.AUTOTUNE,
                       deterministic=not training)


def tfds_builder(data_dir: str):
    """TFDS ``imagenet2012`` in ``data_dir``, or an error saying how to prepare it."""
    import tensorflow_datasets as tfds
    builder = tfds.builder(TFDS_NAME, data_dir=data_dir or None)
    try:
        builder.as_dataset(split="validation")
    except (AssertionError, FileNotFoundError, tf.errors.NotFoundError) as error:
        raise ImageNetNotFoundError(
            f"TFDS {TFDS_NAME} is not prepared in {data_dir!r} ({error}). Download "
            "ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar from "
            "https://image-net.org/download-images into a directory M, prepare the dataset "
            f"once with `tfds build {TFDS_NAME} --data_dir={data_dir or '<dir>'} "
            "--manual_dir=M`, then pass that --data_dir.") from None
    return builder


def _tfds_examples(data_dir, split, training, seed, input_context) -> tf.data.Dataset:
    """(JPEG bytes, 0-based label) of this input pipeline's share, images left encoded."""
    import tensorflow_datasets as tfds
    read_config = tfds.ReadConfig(input_context=input_context, shuffle_seed=seed)
    dataset = tfds_builder(data_dir).as_dataset(
        split=SPLITS[split], shuffle_files=training, read_config=read_config,
        decoders={"image": tfds.decode.SkipDecoding()})
    return dataset.map(lambda example: (example["image"], example["label"]),
                       num_parallel_calls=tf.data.AUTOTUNE, deterministic=not training)


def parse_record(record):
    """One serialized Example of the conversion scripts -> (JPEG bytes, raw label)."""
    parsed = tf.io.parse_single_example(record, {
        "image/encoded": tf.io.FixedLenFeature([], tf.string),
        "image/class/label": tf.io.FixedLenFeature([], tf.int64),
    })
    return parsed["image/encoded"], parsed["image/class/label"]


def preprocess_example(encoded, label, image_size: int, training: bool,
                       num_classes: int = 1000, label_offset: int = 1):
    """(JPEG bytes, raw label) -> (standardized image, 0-based label), checked in range."""
    label = tf.cast(label, tf.int32) - label_offset
    check = tf.debugging.Assert(
        tf.logical_and(label >= 0, label < num_classes),
        [f"ImageNet label minus label_offset={label_offset} is outside "
         f"[0, {num_classes}); check --num_classes and label_offset (TensorFlow's "
         "conversion scripts number classes from 1). Label:", label])
    with tf.control_dependencies([check]):
        label = tf.identity(label)
    image = (_random_crop(encoded, image_size) if training
             else _center_crop(encoded, image_size))
    if training:
        image = tf.image.random_flip_left_right(image)
    image = (image - MEAN_RGB) / STDDEV_RGB
    return image, label


def _random_crop(encoded, image_size):
    """A crop of 8%-100% of the area with aspect ratio 3/4-4/3, resized."""
    shape = tf.image.extract_jpeg_shape(encoded)
    begin, size, _ = tf.image.sample_distorted_bounding_box(
        shape, bounding_boxes=tf.zeros([1, 0, 4]), min_object_covered=0.1,
        aspect_ratio_range=(3 / 4, 4 / 3), area_range=(0.08, 1.0),
        max_attempts=10, use_image_if_no_bounding_boxes=True)
    window = tf.stack([begin[0], begin[1], size[0], size[1]])
    image = tf.image.decode_and_crop_jpeg(encoded, window, channels=3)
    return tf.image.resize(image, [image_size, image_size])


def _center_crop(encoded, image_size):
    """The central 87.5% square, resized (224 from 256 at full size)."""
    shape = tf.image.extract_jpeg_shape(encoded)
    height, width = shape[0], shape[1]
    side = tf.cast(EVAL_CROP_FRACTION * tf.cast(tf.minimum(height, width), tf.float32),
                   tf.int32)
    window = tf.stack([(height - side + 1) // 2, (width - side + 1) // 2, side, side])
    image = tf.image.decode_and_crop_jpeg(encoded, window, channels=3)
    return tf.image.resize(image, [image_size, image_size])


def write_synthetic_imagenet_tfrecords(data_dir: str, num_images: int, num_classes: int,
                                       image_size: int = 32, *, split: str = "train",
                                       num_files: int = 2, seed: int = 0) -> list[str]:
    """Writes JPEG Examples in the ImageNet TFRecord format, for tests and demos.

    Class ``c`` is a noisy image whose colour depends on ``c``, so a model can
    learn it; labels are stored 1-based, as in the real files.
    """
    if num_images < 1 or num_classes < 1 or num_files < 1:
        raise ValueError("num_images, num_classes and num_files must be >= 1.")
    rng = np.random.default_rng(seed)
    os.makedirs(data_dir, exist_ok=True)
    paths = [os.path.join(data_dir, f"{SPLITS[split]}-{i:05d}-of-{num_files:05d}")
             for i in range(num_files)]
    writers = [tf.io.TFRecordWriter(path) for path in paths]
    palette = rng.integers(0, 256, (num_classes, 3))
    for index in range(num_images):
        label = index % num_classes
        noise = rng.normal(0, 30, (image_size, image_size, 3))
        pixels = np.clip(palette[label] + noise, 0, 255).astype(np.uint8)
        writers[index % num_files].write(_example(pixels, label + 1).SerializeToString())
    for writer in writers:
        writer.close()
    return paths


def _example(pixels, label):
    encoded = tf.io.encode_jpeg(pixels, quality=95).numpy()
    height, width = pixels.shape[:2]
    feature = {
        "image/encoded": _bytes(encoded), "image/format": _bytes(b"JPEG"),
        "image/class/label": _int64(label), "image/height": _int64(height),
        "image/width": _int64(width),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature))


def _bytes(value):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int64(value):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))
