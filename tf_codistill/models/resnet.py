"""ResNet-50 for ImageNet (Keras Applications) and a small ResNet for CPU tests.

Both output logits, and both take images already standardized by
``data_pipelines.imagenet``. Weight decay (Goyal et al.: 1e-4 on the
convolution and dense kernels) is added as a model loss, which
``CodistillModel`` adds to each copy's objective.
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras


def build_resnet50(num_classes: int = 1000, image_size: int = 224, seed: int | None = None,
                   *, weight_decay: float = 1e-4, name: str = "resnet50") -> keras.Model:
    """ResNet-50 v1 from ``tf_keras.applications``, randomly initialized, logits out.

    ``image_size`` must be at least 32 (five stride-2 stages). Keras Applications
    take no initializer seeds, so ``seed`` sets the global random seeds.
    """
    _check(num_classes, image_size, weight_decay, minimum_size=32)
    if seed is not None:
        keras.utils.set_random_seed(seed)
    model = keras.applications.ResNet50(
        weights=None, include_top=True, classes=num_classes,
        input_shape=(image_size, image_size, 3), classifier_activation=None)
    model = keras.Model(model.inputs, model.outputs, name=name)
    _add_weight_decay(model, weight_decay)
    return model


def build_small_resnet(num_classes: int, image_size: int = 32, seed: int | None = None,
                       *, width: int = 8, blocks_per_stage: int = 1,
                       weight_decay: float = 1e-4, name: str = "small_resnet") -> keras.Model:
    """A three-stage residual network of the same kind, small enough for CPU tests.

    ``seed`` sets the global random seeds, as for ``build_resnet50``.
    """
    _check(num_classes, image_size, weight_decay, minimum_size=8)
    if seed is not None:
        keras.utils.set_random_seed(seed)
    images = keras.Input(shape=(image_size, image_size, 3))
    x = _conv_bn(images, width, 3, 1, activation=True)
    for stage in range(3):
        filters = width * 2**stage
        for block in range(blocks_per_stage):
            x = _residual_block(x, filters, stride=2 if stage and not block else 1)
    x = keras.layers.GlobalAveragePooling2D()(x)
    logits = keras.layers.Dense(num_classes)(x)
    model = keras.Model(images, logits, name=name)
    _add_weight_decay(model, weight_decay)
    return model


def _residual_block(x, filters, stride):
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = _conv_bn(x, filters, 1, stride, activation=False)
    y = _conv_bn(x, filters, 3, stride, activation=True)
    y = _conv_bn(y, filters, 3, 1, activation=False)
    return keras.layers.ReLU()(keras.layers.Add()([shortcut, y]))


def _conv_bn(x, filters, kernel, stride, activation):
    x = keras.layers.Conv2D(filters, kernel, strides=stride, padding="same",
                            use_bias=False)(x)
    x = keras.layers.BatchNormalization()(x)
    return keras.layers.ReLU()(x) if activation else x


def _add_weight_decay(model, weight_decay):
    """L2 on conv and dense kernels (not biases or batch-norm parameters)."""
    if not weight_decay:
        return
    kernels = [layer.kernel for layer in model.layers
               if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))]
    model.add_loss(lambda: weight_decay * 0.5 * tf.add_n(
        [tf.reduce_sum(tf.square(kernel)) for kernel in kernels]))


def _check(num_classes, image_size, weight_decay, minimum_size):
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}.")
    if image_size < minimum_size:
        raise ValueError(f"image_size must be >= {minimum_size}, got {image_size}.")
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}.")


IMAGE_MODELS = {"resnet50": build_resnet50, "small_resnet": build_small_resnet}


def build_image_model(name: str, num_classes: int, image_size: int, seed: int | None = None,
                      *, weight_decay: float = 1e-4) -> keras.Model:
    """The image classifier named by a flag (``--image_model``)."""
    if name not in IMAGE_MODELS:
        raise ValueError(f"image_model={name!r} is not known; choose one of "
                         f"{sorted(IMAGE_MODELS)} (small_resnet is for CPU tests).")
    return IMAGE_MODELS[name](num_classes, image_size, seed, weight_decay=weight_decay)


def imagenet_metrics() -> list[keras.metrics.Metric]:
    """Top-1 accuracy (the arg max of logits is that of probabilities)."""
    return [keras.metrics.SparseCategoricalAccuracy(name="top1")]
