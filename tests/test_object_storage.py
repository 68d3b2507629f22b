"""Peers over a non-local filesystem: TensorFlow's ram://, through tf.io.gfile as gs:// would be.

TensorFlow's GCS client has its endpoints built in (no emulator setting) and s3:// needs
tensorflow-io, which has no TF 2.21 build; so these run in one process on ram://, where
nothing goes through os-level fsync, os.replace or local paths.
"""

import json
import logging
import threading
import uuid

import numpy as np
import pytest
import tensorflow as tf

from tf_codistill.exchange import snapshots
from tf_codistill.exchange.snapshots import PeerPoller, PeerPublisher, read_latest
from tf_codistill import config as config_lib
from tf_codistill.runner import train_lib
from tf_codistill.tasks.clusters import ClustersModelSection


@pytest.fixture
def bucket():
    root = f"ram://bucket-{uuid.uuid4().hex[:8]}"
    yield root
    if tf.io.gfile.exists(root):
        tf.io.gfile.rmtree(root)


def weights(step):
    return [("w", np.full((64, 32), step, np.float32)), ("b", np.arange(32, dtype=np.float32)
                                                           + step)]


def publish(directory, steps):
    publisher = PeerPublisher(directory)
    for step in steps:
        publisher.publish(step, weights(step))
    return publisher


def replace_object(path, data):
    """Replaces an object whole, as an upload does (ram:// would append to an existing file)."""
    tf.io.gfile.remove(path)
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(data)


def rewrite(path, change):
    with tf.io.gfile.GFile(path, "rb") as f:
        data = f.read()
    replace_object(path, change(data))


@pytest.mark.parametrize("damage", [
    lambda data: data[: len(data) // 2],                                     # torn upload
    lambda data: data[:100] + bytes([data[100] ^ 0xFF]) + data[101:],       # corrupt byte
])
def test_a_torn_object_is_detected_and_the_previous_checkpoint_read(bucket, damage, caplog):
    directory = f"{bucket}/group_0/published"
    publish(directory, [1, 2])
    rewrite(f"{directory}/ckpt-2.data-00000-of-00001", damage)
    with caplog.at_level(logging.WARNING):
        snapshot = read_latest(directory)
    assert snapshot.step == 1 and snapshot.retries == 1
    np.testing.assert_array_equal(snapshot.weights[0], weights(1)[0][1])
    assert "Skipping peer checkpoint step 2" in caplog.text


def test_a_vanished_object_falls_back_quietly(bucket):
    directory = f"{bucket}/group_0/published"
    publish(directory, [1, 2])
    tf.io.gfile.remove(f"{directory}/ckpt-2.index")
    assert read_latest(directory).step == 1


def test_an_unreadable_manifest_gives_nothing_and_never_torn_weights(bucket, caplog):
    directory = f"{bucket}/group_0/published"
    publish(directory, [1])
    rewrite(f"{directory}/{snapshots.MANIFEST_NAME}", lambda data: data[:-20])
    with caplog.at_level(logging.WARNING):
        assert read_latest(directory, retry_delay_s=0.0) is None
    assert "unreadable manifest" in caplog.text


def test_files_not_in_the_manifest_are_invisible_and_a_killed_writers_temp_is_cleaned(bucket):
    directory = f"{bucket}/group_0/published"
    publish(directory, [1])
    manifest = f"{directory}/{snapshots.MANIFEST_NAME}"
    with tf.io.gfile.GFile(manifest, "rb") as f:
        saved = f.read()
    publish(directory, [2])  # a second writer run: files of step 2, then its manifest
    replace_object(manifest, saved)  # as if killed between its checkpoint files and manifest
    assert read_latest(directory).step == 1
    with tf.io.gfile.GFile(f"{manifest}.tmp-123-456", "w") as f:
        f.write("{half")
    publish(directory, [3])
    assert not [n for n in tf.io.gfile.listdir(directory) if ".tmp-" in n]
    assert read_latest(directory).step == 3


def test_a_poller_reading_while_a_writer_publishes_only_ever_sees_whole_snapshots(bucket):
    directory = f"{bucket}/group_0/published"
    publisher = PeerPublisher(directory, max_to_keep=1)  # the writer deletes as fast as it can
    done = threading.Event()

    def write():
        for step in range(1, 41):
            publisher.publish(step, weights(step))
        done.set()

    seen = []
    with PeerPoller([directory], poll_interval_s=0.001) as poller:
        writer = threading.Thread(target=write)
        writer.start()
        while not done.is_set():
            seen.extend(poller.take_new().values())
        writer.join()
        poller.poll_once()  # the last publish, whatever the thread's timing
        seen.extend(poller.take_new().values())
        stats = poller.stats()
    assert seen and seen[-1].step == 40
    assert [s.step for s in seen] == sorted({s.step for s in seen})
    for snapshot in seen:  # every step's weights are that step's, never a mix
        for (_, want), got in zip(weights(snapshot.step), snapshot.weights):
            np.testing.assert_array_equal(got, want)
    assert stats["by_peer"][0]["peer_bytes_read"] == stats["peer_bytes_read"] > 0
    assert stats["by_peer"][0]["snapshots_read"] == stats["reloads"] >= 1
    assert stats["by_peer"][0]["median_reload_latency_s"] > 0


def group_config(model_dir, group):
    return config_lib.RunConfig(
        task="clusters", model_dir=model_dir, num_groups=2, group=group,
        trainer=config_lib.TrainerConfig(batch_size=32, eval_steps=4, train_steps=40,
                                         steps_per_loop=20),
        codistill=config_lib.CodistillConfig(reload_interval=10),
        model=ClustersModelSection(hidden_units=(32,), num_classes=8))


def test_two_groups_with_their_model_dir_in_a_bucket(bucket):
    """Everything a group makes goes through tf.io.gfile: config, checkpoints, published
    weights, TensorBoard, metrics, the SavedModel. Group 0 trains first, group 1 reads it."""
    model_dir = f"{bucket}/runs/clusters"
    train_lib.run(group_config(model_dir, 0))
    metrics = train_lib.run(group_config(model_dir, 1))
    with tf.io.gfile.GFile(f"{model_dir}/group_1/metrics.json") as f:
        saved = json.load(f)
    assert saved["global_step"] == 40 and saved["teacher_reloads"] >= 1
    [peer] = saved["peers"]
    assert peer["directory"] == f"{model_dir}/group_0/published" and peer["step"] == 40
    assert peer["bytes_read"] == saved["peer_bytes_read"] > 0
    assert peer["reload_latency_s"] == saved["reload_latency_s"] > 0
    assert metrics["peers"][0]["bytes_read"] == peer["bytes_read"]
    for group in (0, 1):
        names = tf.io.gfile.listdir(f"{model_dir}/group_{group}/published")
        assert snapshots.MANIFEST_NAME in names
        assert tf.io.gfile.exists(f"{model_dir}/group_{group}/export/saved_model.pb")
        assert tf.train.latest_checkpoint(f"{model_dir}/group_{group}/checkpoints").endswith(
            "ckpt-40")
