"""Publishing and verified reading of peer checkpoints on real files."""
import json
import logging
import os

import numpy as np
import pytest
import tensorflow as tf

from tf_codistill.exchange import snapshots
from tf_codistill.exchange.snapshots import PeerPublisher, check_compatible, read_latest

_TOLERANCE = {"float32": 0.0, "bfloat16": 2.0 ** -8, "float16": 2.0 ** -11, "int8": 1 / 254}


def _named_weights(step, seed=0):
    rng = np.random.default_rng(seed + step)
    return [("embedding/embeddings", rng.normal(size=(12, 4)).astype(np.float32) + step),
            ("lstm/kernel", rng.normal(size=(4, 16)).astype(np.float32)),
            ("lstm/bias", rng.normal(size=(16,)).astype(np.float32))]


def _publish_steps(directory, steps, **kwargs):
    publisher = PeerPublisher(str(directory), **kwargs)
    for step in steps:
        publisher.publish(step, _named_weights(step))
    return publisher


def _manifest(directory):
    with open(os.path.join(directory, snapshots.MANIFEST_NAME)) as f:
        return json.load(f)


def _damage(directory, step, how):
    """Flips a byte in, or truncates, the data file of checkpoint `step`."""
    path = os.path.join(directory, f"ckpt-{step}.data-00000-of-00001")
    with open(path, "r+b") as f:
        if how == "truncate":
            f.truncate(os.path.getsize(path) // 2)
        else:
            f.seek(os.path.getsize(path) // 2)
            byte = f.read(1)
            f.seek(-1, os.SEEK_CUR)
            f.write(bytes([byte[0] ^ 0xFF]))


@pytest.mark.parametrize("precision", ["float32", "bfloat16", "float16", "int8"])
def test_round_trip_for_each_precision(tmp_path, precision):
    _publish_steps(tmp_path, [1, 2], precision=precision)
    snapshot = read_latest(str(tmp_path))
    expected = _named_weights(2)
    assert snapshot.step == 2 and snapshot.precision == precision
    assert snapshot.names == tuple(name for name, _ in expected)
    assert snapshot.path == f"{tmp_path}/ckpt-2" and snapshot.retries == 0
    assert snapshot.bytes_read > 0 and snapshot.read_seconds > 0
    for (_, want), got in zip(expected, snapshot.weights):
        assert got.dtype == np.float32 and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=_TOLERANCE[precision],
                                   atol=_TOLERANCE[precision] * np.abs(want).max())


def test_published_file_sizes_shrink_with_precision(tmp_path):
    sizes = {}
    for precision in ["float32", "bfloat16", "int8"]:
        publisher = PeerPublisher(str(tmp_path / precision), precision=precision)
        publisher.publish(1, [("w", np.ones((256, 256), np.float32))])
        sizes[precision] = sum(f["size"] for f in _manifest(publisher.directory)
                               ["checkpoints"][0]["files"])
    assert 0.45 < sizes["bfloat16"] / sizes["float32"] < 0.55
    assert 0.2 < sizes["int8"] / sizes["float32"] < 0.3


def test_no_manifest_means_nothing_published(tmp_path, caplog):
    assert read_latest(str(tmp_path / "missing")) is None
    assert read_latest(str(tmp_path)) is None
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_checkpoint_without_its_manifest_entry_is_invisible(tmp_path):
    _publish_steps(tmp_path, [1])
    # A writer killed after saving step 2 but before writing the manifest leaves this behind.
    orphan = tf.train.Checkpoint(values=[tf.Variable(np.zeros((12, 4), np.float32))])
    tf.train.CheckpointManager(orphan, str(tmp_path), max_to_keep=5).save(checkpoint_number=2)
    assert os.path.exists(tmp_path / "ckpt-2.index")
    assert read_latest(str(tmp_path)).step == 1


def test_manifest_is_written_after_the_checkpoint_files_it_names(tmp_path, monkeypatch):
    real_atomic_write = snapshots.atomic_write
    seen = []

    def checking_atomic_write(path, data):
        for entry in json.loads(data)["checkpoints"]:
            for file in entry["files"]:
                assert os.path.getsize(tmp_path / file["name"]) == file["size"]
                seen.append(file["name"])
        assert not os.path.exists(path) or json.loads(data) != _manifest(tmp_path)
        real_atomic_write(path, data)

    monkeypatch.setattr(snapshots, "atomic_write", checking_atomic_write)
    _publish_steps(tmp_path, [1, 2, 3])
    assert "ckpt-3.index" in seen
    assert [e["step"] for e in _manifest(tmp_path)["checkpoints"]] == [3, 2]
    assert not [n for n in os.listdir(tmp_path) if ".tmp-" in n]


def test_known_step_returns_only_newer_snapshots(tmp_path):
    _publish_steps(tmp_path, [1, 2])
    assert read_latest(str(tmp_path), known_step=2) is None
    assert read_latest(str(tmp_path), known_step=1).step == 2


@pytest.mark.parametrize("how", ["flip", "truncate"])
def test_damaged_newest_checkpoint_falls_back_to_the_previous_good_one(tmp_path, how, caplog):
    _publish_steps(tmp_path, [1, 2])
    _damage(tmp_path, 2, how)
    snapshot = read_latest(str(tmp_path))
    assert snapshot.step == 1 and snapshot.retries == 1
    for (_, want), got in zip(_named_weights(1), snapshot.weights):
        np.testing.assert_array_equal(got, want)
    assert any("Skipping peer checkpoint step 2" in r.getMessage() for r in caplog.records)


def test_all_checkpoints_damaged_gives_none_with_a_warning(tmp_path, caplog):
    _publish_steps(tmp_path, [1, 2])
    _damage(tmp_path, 1, "flip")
    _damage(tmp_path, 2, "truncate")
    assert read_latest(str(tmp_path), max_attempts=2, retry_delay_s=0.0) is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("No verified peer checkpoint" in m and "after 2 attempts" in m for m in warnings)


def test_files_vanishing_mid_read_retry_with_the_newest_manifest(tmp_path, monkeypatch):
    publisher = _publish_steps(tmp_path, [1, 2])
    real_read_bytes = snapshots._read_bytes
    raced = []

    def racing_read_bytes(path):
        # The writer publishes twice while the reader holds the manifest naming steps 2 and 1.
        if path.endswith(".data-00000-of-00001") and not raced:
            raced.append(path)
            publisher.publish(3, _named_weights(3))
            publisher.publish(4, _named_weights(4))
        return real_read_bytes(path)

    monkeypatch.setattr(snapshots, "_read_bytes", racing_read_bytes)
    snapshot = read_latest(str(tmp_path))
    assert snapshot.step == 4 and snapshot.retries == 2
    np.testing.assert_array_equal(snapshot.weights[0], _named_weights(4)[0][1])


def test_unreadable_manifest_is_retried_then_reported(tmp_path, caplog):
    (tmp_path / snapshots.MANIFEST_NAME).write_text("{ not json")
    assert read_latest(str(tmp_path), max_attempts=2, retry_delay_s=0.0) is None
    assert any("unreadable manifest" in r.getMessage() for r in caplog.records)


def test_unsupported_manifest_format_is_a_clear_error(tmp_path):
    (tmp_path / snapshots.MANIFEST_NAME).write_text('{"format": 99, "checkpoints": []}')
    with pytest.raises(ValueError, match="format 99 is not the supported format 1"):
        read_latest(str(tmp_path))


def test_restarted_publisher_keeps_advertising_kept_checkpoints(tmp_path):
    _publish_steps(tmp_path, [1, 2])
    (tmp_path / (snapshots.MANIFEST_NAME + ".tmp-left-by-a-killed-writer")).write_text("{")
    _publish_steps(tmp_path, [3])
    assert [e["step"] for e in _manifest(tmp_path)["checkpoints"]] == [3, 2]
    assert not [n for n in os.listdir(tmp_path) if ".tmp-" in n]
    assert not os.path.exists(tmp_path / "ckpt-1.index")


def test_republished_step_replaces_its_entry(tmp_path):
    publisher = _publish_steps(tmp_path, [1, 2])
    publisher.publish(2, _named_weights(2, seed=7))
    assert [e["step"] for e in _manifest(tmp_path)["checkpoints"]] == [2, 1]
    np.testing.assert_array_equal(read_latest(str(tmp_path)).weights[1],
                                  _named_weights(2, seed=7)[1][1])


def test_a_writer_resumed_at_an_earlier_step_retracts_its_later_steps(tmp_path):
    _publish_steps(tmp_path, [10, 20, 30])
    _publish_steps(tmp_path, [10])  # a new publisher, as after a resume from step 10
    assert [e["step"] for e in _manifest(tmp_path)["checkpoints"]] == [10]
    assert read_latest(str(tmp_path), known_step=None).step == 10


def test_publisher_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="max_to_keep must be >= 1"):
        PeerPublisher(str(tmp_path), max_to_keep=0)
    with pytest.raises(ValueError, match="choose one of float32, bfloat16, float16, int8"):
        PeerPublisher(str(tmp_path), precision="fp8")
    publisher = PeerPublisher(str(tmp_path))
    with pytest.raises(ValueError, match="empty"):
        publisher.publish(1, [])
    with pytest.raises(ValueError, match=r"Duplicate variable names \['w'\]"):
        publisher.publish(1, [("w", np.ones(2)), ("w", np.ones(2))])
    with pytest.raises(ValueError, match=r"Expected \(name, array\) pairs"):
        publisher.publish(1, [np.ones(2)])
    publisher.publish(1, [("w", np.ones(2))])
    with pytest.raises(ValueError, match="variables changed.*new directory"):
        publisher.publish(2, [("w", np.ones(3))])


def test_check_compatible_names_every_mismatch(tmp_path):
    _publish_steps(tmp_path, [1])
    snapshot = read_latest(str(tmp_path))
    check_compatible(snapshot, [("embedding/embeddings", (None, 4)), ("lstm/kernel", (4, 16)),
                                ("lstm/bias", [16])])
    expected = [("embedding/embeddings", (12, 4)), ("lstm/kernel", (8, 16)),
                ("dense/kernel", (16, 3))]
    with pytest.raises(ValueError) as error:
        check_compatible(snapshot, expected)
    message = str(error.value)
    assert "missing dense/kernel" in message and "extra lstm/bias" in message
    assert "lstm/kernel: peer shape (4, 16) vs expected (8, 16)" in message
    assert "embedding/embeddings" not in message


def test_works_through_a_non_local_tf_filesystem(tmp_path):
    """ram:// goes through tf.io.gfile like gs:// does, without os-level fsync or replace."""
    directory = f"ram://{tmp_path.name}/group_1/published"
    _publish_steps(directory, [1, 2, 3], precision="bfloat16")
    snapshot = read_latest(directory)
    assert snapshot.step == 3 and snapshot.path == f"{directory}/ckpt-3"
    np.testing.assert_allclose(snapshot.weights[2], _named_weights(3)[2][1], rtol=2.0 ** -8)
    names = tf.io.gfile.listdir(directory)
    assert snapshots.MANIFEST_NAME in names and not [n for n in names if ".tmp-" in n]
    assert "ckpt-1.index" not in names
