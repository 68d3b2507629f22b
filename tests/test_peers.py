"""CheckpointPeers: frozen teacher copies fed from published peer weights."""

import re

import numpy as np
import pytest
import tf_keras as keras

import tf_codistill as tc
from tests.helpers import tiny_models as tiny
from tf_codistill.exchange import snapshots
from tf_codistill.exchange.peers import BackgroundPublisher, CheckpointPeers, named_weights
from tf_codistill.runner.callbacks import ProgressLogger


def _wait_for_snapshot(peers, step):
    peers.poller.poll_once()  # what the background thread does, without waiting for it
    return peers.swap_in_new_weights(step)


def _build(peers):
    for copy in peers.frozen_models:
        copy(tiny.classification_data(2)[0])


def test_a_peer_without_a_checkpoint_contributes_nothing(tmp_path):
    peers = CheckpointPeers([str(tmp_path / "peer")], lambda: tiny.classifier(3),
                            poll_interval_s=60)
    try:
        x, y = tiny.classification_data(16)
        model = tc.CodistillModel(tiny.classifier(1), peers)
        model.compile(keras.optimizers.SGD(0.1))
        logs = model.train_on_batch(x, y, return_dict=True)
        assert logs["distill_loss"] == 0.0 and logs["loss"] == pytest.approx(logs["task_loss"])
    finally:
        peers.close()


@pytest.mark.parametrize("flavour", tiny.FLAVOURS)
def test_published_weights_become_the_frozen_teacher(tmp_path, flavour):
    source = tiny.classifier(7, flavour=flavour)
    snapshots.PeerPublisher(str(tmp_path / "peer")).publish(40, named_weights(source))
    peers = CheckpointPeers([str(tmp_path / "peer")],
                            lambda: tiny.classifier(3, flavour=flavour), poll_interval_s=60)
    try:
        assert _wait_for_snapshot(peers, step=50) == 1
        teacher = peers.frozen_models[0]
        for mine, theirs in zip(teacher.get_weights(), source.get_weights()):
            np.testing.assert_array_equal(mine, theirs)
        x, y = tiny.classification_data(16)
        model = tc.CodistillModel(tiny.classifier(1, flavour=flavour), peers)
        model.compile(tiny.keras_of(flavour).optimizers.SGD(0.1))
        before = [w.copy() for w in teacher.get_weights()]
        assert model.train_on_batch(x, y, return_dict=True)["distill_loss"] > 0
        for a, b in zip(before, teacher.get_weights()):
            np.testing.assert_array_equal(a, b)
        stats = peers.stats()
        assert stats["teacher_reloads"] == 1 and stats["peer_steps"] == {0: 40}
        assert stats["peer_bytes_read"] > 0
        # A newer snapshot is swapped in by the reload callback that fit adds.
        newer = tiny.classifier(8, flavour=flavour)
        snapshots.PeerPublisher(str(tmp_path / "peer")).publish(60, named_weights(newer))
        peers.poller.poll_once()
        model.fit(x, y, batch_size=8, epochs=1, verbose=0)
        assert peers.stats()["peer_steps"] == {0: 60}
        for mine, theirs in zip(teacher.get_weights(), newer.get_weights()):
            np.testing.assert_array_equal(mine, theirs)
    finally:
        peers.close()


def test_a_snapshot_waits_until_the_copy_is_built_by_its_first_forward_pass(tmp_path):
    def unbuilt():
        keras.utils.set_random_seed(3)
        return keras.Sequential([keras.layers.Dense(8, activation="tanh"),
                                 keras.layers.Dense(3)])

    source = tiny.classifier(7)
    snapshots.PeerPublisher(str(tmp_path / "peer")).publish(40, named_weights(source))
    peers = CheckpointPeers([str(tmp_path / "peer")], unbuilt, poll_interval_s=60)
    try:
        assert _wait_for_snapshot(peers, step=40) == 0
        _build(peers)
        assert peers.swap_in_new_weights(41) == 1
        for mine, theirs in zip(peers.frozen_models[0].get_weights(), source.get_weights()):
            np.testing.assert_array_equal(mine, theirs)
    finally:
        peers.close()


def test_a_peer_of_another_architecture_is_named(tmp_path):
    snapshots.PeerPublisher(str(tmp_path / "peer")).publish(
        10, named_weights(tiny.classifier(7, width=5)))
    peers = CheckpointPeers([str(tmp_path / "peer")], lambda: tiny.classifier(3),
                            poll_interval_s=60)
    try:
        _build(peers)
        with pytest.raises(ValueError, match=r"000/kernel: peer shape \(4, 5\) vs expected"):
            _wait_for_snapshot(peers, step=10)
    finally:
        peers.close()


def test_background_publisher_publishes_the_newest_pending_copy(tmp_path):
    publisher = BackgroundPublisher(snapshots.PeerPublisher(str(tmp_path / "pub")))
    model = tiny.classifier(1)
    for step in (10, 20, 30):
        publisher.submit(step, named_weights(model))
    publisher.close()
    snapshot = snapshots.read_latest(str(tmp_path / "pub"))
    assert snapshot.step == 30
    for mine, theirs in zip(snapshot.weights, model.get_weights()):
        np.testing.assert_array_equal(mine, theirs)


def test_a_peer_that_stops_publishing_stops_pulling_and_comes_back(tmp_path, caplog):
    publisher = snapshots.PeerPublisher(str(tmp_path / "peer"))
    publisher.publish(10, named_weights(tiny.classifier(7)))
    peers = CheckpointPeers([str(tmp_path / "peer")], lambda: tiny.classifier(3),
                            reload_interval=10, poll_interval_s=60, max_staleness=30)
    x, y = tiny.classification_data(16)
    model = tc.CodistillModel(tiny.classifier(1), peers)
    model.compile(keras.optimizers.SGD(0.0))  # the student stays put: losses compare

    def distill_loss():
        return model.train_on_batch(x, y, return_dict=True)["distill_loss"]
    try:
        _build(peers)
        assert _wait_for_snapshot(peers, step=10) == 1
        pulling = distill_loss()
        assert pulling > 0
        assert _wait_for_snapshot(peers, step=40) == 0  # nothing new for 30: still a teacher
        assert distill_loss() == pytest.approx(pulling)
        with caplog.at_level("WARNING"):
            peers.swap_in_new_weights(50)  # nothing new for 40 steps: dropped
        assert "sent nothing new for 40 steps" in caplog.text and "weight 0" in caplog.text
        assert distill_loss() == 0.0
        peers.swap_in_new_weights(60)
        stats = peers.stats()
        assert stats["dropped_peers"] == [0] and stats["peers_dropped"] == 1
        assert stats["teacher_dropped_steps"] == 10
        publisher.publish(60, named_weights(tiny.classifier(8)))  # it publishes again
        assert _wait_for_snapshot(peers, step=70) == 1
        assert distill_loss() > 0
        stats = peers.stats()
        assert stats["dropped_peers"] == [] and stats["peers_dropped"] == 1
        assert stats["teacher_dropped_steps"] == 20
        # Silent again, then back with a snapshot far behind this group: it publishes, so it
        # is a teacher again (it was restarted from an old checkpoint, or is slower).
        peers.swap_in_new_weights(150)
        assert distill_loss() == 0.0 and peers.stats()["peers_dropped"] == 2
        publisher.publish(65, named_weights(tiny.classifier(9)))
        assert _wait_for_snapshot(peers, step=200) == 1
        assert distill_loss() > 0 and peers.stats()["dropped_peers"] == []
    finally:
        peers.close()


def test_a_restarted_peer_that_republishes_older_steps_stays_a_teacher(tmp_path, caplog):
    """The peer, killed after publishing step 40, resumes from an older checkpoint and
    publishes 20, 30, 40 again: each publish shows it alive, so it is never dropped, and
    its copy keeps the newest weights (the killed run's 40) until it publishes past them."""
    directory = str(tmp_path / "peer")
    killed_run = snapshots.PeerPublisher(directory)
    killed_run.publish(40, named_weights(tiny.classifier(40)))
    peers = CheckpointPeers([directory], lambda: tiny.classifier(3), reload_interval=10,
                            poll_interval_s=60, max_staleness=30)
    x, y = tiny.classification_data(16)
    model = tc.CodistillModel(tiny.classifier(1), peers)
    model.compile(keras.optimizers.SGD(0.0))

    def distill_loss():
        return model.train_on_batch(x, y, return_dict=True)["distill_loss"]
    try:
        _build(peers)
        assert _wait_for_snapshot(peers, step=40) == 1
        pulling = distill_loss()
        resumed = snapshots.PeerPublisher(directory)  # the rerun, from its checkpoint at 10
        for own_step, peer_step in ((60, 20), (80, 30), (100, 40)):  # 20 steps apart
            resumed.publish(peer_step, named_weights(tiny.classifier(peer_step + 1)))
            assert _wait_for_snapshot(peers, step=own_step) == 0  # nothing newer than 40
            assert peers.stats()["dropped_peers"] == [], f"dropped at step {own_step}"
            assert distill_loss() == pytest.approx(pulling)  # still the killed run's 40
        assert peers.stats()["peers_dropped"] == 0 and peers.peer_steps == {0: 40}
        resumed.publish(50, named_weights(tiny.classifier(51)))
        assert _wait_for_snapshot(peers, step=120) == 1 and peers.peer_steps == {0: 50}
        assert distill_loss() != pytest.approx(pulling)

        # Dead long enough to be dropped, then restarted from an older checkpoint: its
        # first publish brings it back, teaching with the copy it holds (step 50).
        peers.swap_in_new_weights(200)
        assert distill_loss() == 0.0 and peers.stats()["dropped_peers"] == [0]
        with caplog.at_level("WARNING"):
            snapshots.PeerPublisher(directory).publish(30, named_weights(tiny.classifier(9)))
            assert _wait_for_snapshot(peers, step=210) == 0
        assert "publishing again" in caplog.text
        assert peers.stats()["dropped_peers"] == [] and peers.peer_steps == {0: 50}
        assert distill_loss() > 0
    finally:
        peers.close()


class _LockstepPeer(keras.callbacks.Callback):
    """A peer that publishes at every multiple of ``interval``; each copy reaches the reader
    ``delay`` steps later (before the reader's reload callback of that step)."""

    def __init__(self, directory, peers, interval, delay=0):
        super().__init__()
        self._publisher = snapshots.PeerPublisher(directory)
        self._peers, self._interval, self._delay, self._step = peers, interval, delay, 0
        self._source = tiny.classifier(7)

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        if self._step >= self._delay and (self._step - self._delay) % self._interval == 0 \
                and self._step - self._delay > 0:
            self._publisher.publish(self._step - self._delay, named_weights(self._source))
            self._peers.poller.poll_once()  # what the background thread does


def _expected_teacher_steps(steps, interval, offset, delay):
    """({trained step: the peer step its teacher held}, loads), by CheckpointPeers' rule."""
    held, waiting, seen, loads = None, False, {}, 0
    for s in range(1, steps + 1):
        if held is not None:
            seen[s] = held
        visible = [k for k in range(interval, s + 1, interval) if k + delay <= s]
        if (s - offset) % interval == 0 or waiting:
            if visible and visible[-1] != held:
                held, loads = visible[-1], loads + 1
            expected = (s - offset) // interval * interval
            waiting = s >= interval and (held is None or held < expected)
    return seen, loads


@pytest.mark.parametrize("offset, delay", [(0, 0), (2, 0), (2, 4)])
def test_reloads_fall_offset_after_the_publishes_and_the_teacher_age_is_counted(
        tmp_path, offset, delay, capsys):
    interval, steps, burn_in = 5, 20, 3
    peers = CheckpointPeers([str(tmp_path / "peer")], lambda: tiny.classifier(3),
                            reload_interval=interval, reload_offset=offset, poll_interval_s=60)
    try:
        x, y = tiny.classification_data(16)
        model = tc.CodistillModel(tiny.classifier(1), peers, burn_in_steps=burn_in)
        model.compile(keras.optimizers.SGD(0.1))
        model(x)  # builds the student; the teacher copy is built by the first train step
        model.fit(x, y, batch_size=16, epochs=steps, verbose=0,
                  callbacks=[_LockstepPeer(str(tmp_path / "peer"), peers, interval, delay),
                             ProgressLogger(1, steps, 16, "examples", peers)])  # a line a step
        stats = peers.stats()
    finally:
        peers.close()
    # Step s starts from s - 1 updates: a teacher holding the peer's step p is s - 1 - p old.
    held, loads = _expected_teacher_steps(steps, interval, offset, delay)
    # The progress line after step s: the age step s + 1 trains at, rising between reloads
    # (not the age right after the worst reload so far, which read as "teacher staleness").
    lines = capsys.readouterr().out.splitlines()
    assert [re.search(r"(no teacher yet|teacher -?\d+ steps old)", line)[1]
            for line in lines[:-1]] == [f"teacher {s - held[s + 1]} steps old"
                                        if s + 1 in held else "no teacher yet"
                                        for s in range(1, steps)]
    ages = [s - 1 - p for s, p in held.items() if s - 1 >= burn_in]
    assert stats["teacher_reloads"] == loads
    assert stats["teacher_age_counted_steps"] == len(ages)
    assert stats["teacher_age_mean_steps"] == pytest.approx(np.mean(ages))
    assert stats["teacher_age_max_steps"] == max(ages)
    assert stats["teacher_age_min_steps"] == min(ages)
    assert stats["reload_offset"] == offset
    # On time, the teacher is offset to offset + interval - 1 steps old; a copy that arrives
    # late is picked up the step it arrives, not a whole interval later.
    assert min(ages) == max(offset, delay)
    assert max(ages) == max(offset, delay) + interval - 1


def test_a_peer_that_finished_training_is_never_dropped(tmp_path):
    """Its final snapshot is its best: a late-starting group keeps distilling from it."""
    publisher = snapshots.PeerPublisher(str(tmp_path / "peer"))
    publisher.publish(100, named_weights(tiny.classifier(7)))
    peers = CheckpointPeers([str(tmp_path / "peer")], lambda: tiny.classifier(3),
                            reload_interval=10, poll_interval_s=60, max_staleness=30,
                            final_step=100)
    try:
        _build(peers)
        assert _wait_for_snapshot(peers, step=0) == 1
        for step in range(10, 110, 10):
            peers.swap_in_new_weights(step)
        assert peers.stats()["peers_dropped"] == 0 and peers.stats()["dropped_peers"] == []
    finally:
        peers.close()


def test_peers_never_receive_carried_state(tmp_path):
    """A stateful LM publishes its weights without its per-stream state: a teacher copy
    swaps in the weights and keeps its own (here zero) state, which belongs to the streams
    it reads."""
    import tensorflow as tf
    from tf_codistill.models.lstm_lm import LanguageModelConfig, StatefulLanguageModel

    def lm():
        return StatefulLanguageModel(LanguageModelConfig(vocab_size=20, embedding_dim=4,
                                                         units=3, num_layers=1),
                                     batch_size=2, seed=1)
    tokens = tf.constant([[1, 2, 3], [4, 5, 6]])
    source = lm()
    source(tokens)
    state_names = {v.name for v in source.carried_state_variables}
    assert all(np.any(v.numpy() != 0) for v in source.carried_state_variables)
    published = named_weights(source)
    assert len(published) == len(source.weights) - 2 == 12  # all but h and c
    assert not any(name.endswith(("layer0_h", "layer0_c")) for name, _ in published)
    snapshots.PeerPublisher(str(tmp_path / "peer")).publish(40, published)
    peers = CheckpointPeers([str(tmp_path / "peer")], lm, poll_interval_s=60)
    try:
        peers.frozen_models[0](tokens)
        peers.frozen_models[0].reset_states()
        assert _wait_for_snapshot(peers, step=45) == 1
        copy = peers.frozen_models[0]
        for mine, (_, theirs) in zip(
                [v for v in copy.weights if v.name not in state_names], published):
            np.testing.assert_array_equal(mine.numpy(), theirs)
        assert all(np.all(v.numpy() == 0) for v in copy.carried_state_variables)
    finally:
        peers.close()


class _SlowPeers(keras.callbacks.Callback):
    """Peers that publish at every multiple of ``interval`` of their own steps, each taking
    ``slowness`` of the reader's steps per step; a copy reaches the reader ``latency`` steps
    after it is written. A peer with ``dies_after`` publishes nothing past that step."""

    def __init__(self, directories, peers, interval, slowness, latency, dies_after):
        super().__init__()
        self._publishers = [snapshots.PeerPublisher(d) for d in directories]
        self._peers, self._step = peers, 0
        self._arrivals = [{int(np.ceil(k * interval * slow)) + latency: k * interval
                           for k in range(1, 1000) if k * interval <= (last or 10 ** 9)}
                          for slow, last in zip(slowness, dies_after)]
        self._source = tiny.classifier(7)

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        for publisher, arrivals in zip(self._publishers, self._arrivals):
            if self._step in arrivals:
                publisher.publish(arrivals[self._step], named_weights(self._source))
        self._peers.poller.poll_once()  # what the background thread does


def test_the_default_staleness_limit_keeps_a_slow_peer_and_drops_a_dead_one(tmp_path):
    """Peer 0 trains 2.5x slower than the reader and its copies arrive 2 steps after they
    are written: never dropped. Peer 1 dies after its step 8: dropped 3 intervals after
    its last copy arrived."""
    from tf_codistill import config as config_lib
    interval, steps = 4, 80
    limit = config_lib.CodistillConfig(reload_interval=interval).teacher_staleness_limit
    directories = [str(tmp_path / "slow"), str(tmp_path / "dead")]
    peers = CheckpointPeers(directories, lambda: tiny.classifier(3), reload_interval=interval,
                            poll_interval_s=60, max_staleness=limit)
    try:
        x, y = tiny.classification_data(16)
        model = tc.CodistillModel(tiny.classifier(1), peers)
        model.compile(keras.optimizers.SGD(0.1))
        model(x)
        model.fit(x, y, batch_size=16, epochs=steps, verbose=0, callbacks=[_SlowPeers(
            directories, peers, interval, slowness=(2.5, 1.0), latency=2,
            dies_after=(None, 8))])
        stats = peers.stats()
    finally:
        peers.close()
    assert stats["peer_steps"] == {0: 28, 1: 8}  # the slow peer's copy of its step 28 at 72
    assert stats["dropped_peers"] == [1] and stats["peers_dropped"] == 1
    # Peer 1's step 8 arrived at step 10 (on a step the reader looks, being behind); the
    # first step past the limit drops it.
    assert stats["teacher_dropped_steps"] == steps - (10 + limit + 1)


def test_an_injected_poller_is_the_one_the_peers_take_snapshots_from(tmp_path):
    snapshots.PeerPublisher(str(tmp_path / "peer")).publish(40, named_weights(tiny.classifier(7)))
    poller = snapshots.PeerPoller([str(tmp_path / "peer")], poll_interval_s=3600)
    peers = CheckpointPeers([str(tmp_path / "peer")], lambda: tiny.classifier(3), poller=poller)
    try:
        _build(peers)
        assert peers.poller is poller
        poller.poll_once()
        assert peers.swap_in_new_weights(41) == 1 and peers.peer_steps == {0: 40}
    finally:
        peers.close()
