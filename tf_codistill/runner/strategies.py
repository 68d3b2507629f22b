"""One way to build the tf.distribute strategy of a group from a flag string."""

from __future__ import annotations

import json
import os
import socket
import urllib.parse

import tensorflow as tf
from absl import logging

from tf_codistill.config import STRATEGIES


class TPUUnavailableError(RuntimeError):
    """Raised when a TPU is asked for and none can be reached."""


def get_strategy(name: str, tpu_address: str = "") -> tf.distribute.Strategy:
    """Builds a strategy: default, mirrored, multi_worker (TF_CONFIG) or tpu.

    ``tpu_address`` is the TPU name or grpc address for ``tpu``; "local" means a
    TPU VM's own chips.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return _mirrored_strategy()
    if name == "multi_worker":
        return _multi_worker_strategy()
    if name == "tpu":
        return _tpu_strategy(tpu_address)
    raise ValueError(f"strategy={name!r} is not known; choose one of {STRATEGIES}.")


def _mirrored_strategy():
    """All GPUs; without GPUs, every logical CPU (one CPU split for testing)."""
    if tf.config.list_logical_devices("GPU"):
        return tf.distribute.MirroredStrategy()
    cpus = [device.name for device in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(cpus)


def _multi_worker_strategy():
    config = os.environ.get("TF_CONFIG")
    if not config:
        logging.warning("strategy=multi_worker without TF_CONFIG: running as a "
                        "single worker. Set TF_CONFIG on every worker to train "
                        "as a group.")
    else:
        try:
            json.loads(config)
        except json.JSONDecodeError as error:
            raise ValueError(f"TF_CONFIG is not valid JSON ({error}); it must look "
                             'like {"cluster": {"worker": ["host:port", ...]}, '
                             '"task": {"type": "worker", "index": 0}}.') from None
    return tf.distribute.MultiWorkerMirroredStrategy()


def _tpu_strategy(tpu_address):
    if not tpu_address and not os.environ.get("TPU_NAME"):
        raise TPUUnavailableError(
            "strategy=tpu needs a TPU: pass --tpu=<name or grpc://host:port> "
            "(or --tpu=local on a TPU VM), or set TPU_NAME.")
    _require_reachable(tpu_address)
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu_address)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, OSError, tf.errors.OpError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise TPUUnavailableError(
            f"No TPU reachable at tpu={tpu_address!r} ({type(error).__name__}: "
            f"{first_line}). Check the TPU name/address, or use "
            f"strategy=mirrored or default on this machine.") from None
    return tf.distribute.TPUStrategy(resolver)


def _require_reachable(tpu_address, timeout_s=10.0):
    """Fails fast on a grpc:// address nobody listens on.

    TensorFlow would otherwise wait for the remote worker indefinitely.
    """
    if not tpu_address.startswith("grpc://"):
        return
    address = urllib.parse.urlparse(tpu_address)
    try:
        socket.create_connection((address.hostname, address.port), timeout_s).close()
    except (OSError, ValueError, TypeError) as error:
        raise TPUUnavailableError(
            f"No TPU reachable at tpu={tpu_address!r} ({error}). Check the address, "
            "or use strategy=mirrored or default on this machine.") from None
