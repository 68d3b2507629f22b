"""Writing a model_dir's files whole: the one atomic write every layer uses.

Readers of a model_dir (peers, resumed runs, the launcher, evaluation) must see a
file's old content or its new content, never part of it. Through tf.io.gfile, so
that gs:// model_dirs work; local files are also made durable (fsync) before the
rename, and the directory after it.
"""

from __future__ import annotations

import json
import os
import uuid

import tensorflow as tf


def is_local(path: str) -> bool:
    """A POSIX path (local disk, NFS), not an object store or TensorFlow file system URL."""
    return "://" not in path


def unique_temporary(path: str) -> str:
    """A temporary name next to ``path`` that no other process or thread uses."""
    return f"{path}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def atomic_write(path: str, data: bytes) -> None:
    """Replaces ``path`` with ``data``: readers see the old or the new content, never part,
    and concurrent writers never share a temporary file."""
    temp = unique_temporary(path)
    if not is_local(path):  # an object store's upload is whole; its rename is copy + delete
        with tf.io.gfile.GFile(temp, "wb") as f:
            f.write(data)
        tf.io.gfile.rename(temp, path, overwrite=True)
        return
    try:
        with open(temp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.remove(temp)
        raise
    fsync_path(os.path.dirname(path) or ".")


def write_json(path: str, value) -> None:
    """``value`` as indented JSON, written whole (``atomic_write``)."""
    atomic_write(path, json.dumps(value, indent=2, sort_keys=True, default=float).encode())


def fsync_path(path: str) -> None:
    """Makes a local file or directory entry durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
