"""PeerPoller: a real background thread polling real peer directories."""
import logging
import time

import numpy as np
import pytest

from tf_codistill.exchange import snapshots
from tf_codistill.exchange.snapshots import PeerPoller, PeerPublisher

_POLL_INTERVAL_S = 0.1


def _weights(step):
    return [("w", np.full((64, 32), step, np.float32)), ("b", np.full((32,), step, np.float32))]


def _wait_for(predicate, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    return predicate()


@pytest.fixture
def peers(tmp_path):
    return [PeerPublisher(str(tmp_path / f"group_{k}" / "published")) for k in range(2)]


def test_picks_up_a_publish_within_the_poll_interval(peers):
    with PeerPoller([p.directory for p in peers], _POLL_INTERVAL_S) as poller:
        time.sleep(2 * _POLL_INTERVAL_S)  # a few empty polls of not-yet-existing directories
        assert poller.take_new() == {}
        peers[1].publish(5, _weights(5))
        published_at = time.monotonic()
        new = _wait_for(poller.take_new, timeout_s=5.0)
        # One poll interval plus one read; the generous margin absorbs a loaded CI machine.
        assert time.monotonic() - published_at < _POLL_INTERVAL_S + 1.0
    assert list(new) == [1] and new[1].step == 5
    np.testing.assert_array_equal(new[1].weights[0], np.full((64, 32), 5.0))


def test_take_new_returns_each_snapshot_once_and_only_newer_ones(peers):
    peers[0].publish(1, _weights(1))
    peers[1].publish(1, _weights(1))
    with PeerPoller([p.directory for p in peers], _POLL_INTERVAL_S) as poller:
        assert _wait_for(lambda: poller.stats()["reloads"] == 2, 5.0)
        assert {i: s.step for i, s in poller.take_new().items()} == {0: 1, 1: 1}
        assert poller.take_new() == {}
        peers[0].publish(3, _weights(3))
        peers[0].publish(4, _weights(4))  # two publishes between takes: only the newest counts
        assert _wait_for(lambda: poller.stats()["newest_steps"] == {0: 4, 1: 1}, 5.0)
        assert {i: s.step for i, s in poller.take_new().items()} == {0: 4}
        assert poller.take_new() == {}


def test_stats_count_reloads_bytes_latency_and_staleness(peers):
    peers[0].publish(1, _weights(1))
    with PeerPoller([peers[0].directory], _POLL_INTERVAL_S) as poller:
        _wait_for(lambda: poller.stats()["reloads"] == 1, 5.0)
        peers[0].publish(2, _weights(2))
        _wait_for(lambda: poller.stats()["reloads"] == 2, 5.0)
        time.sleep(5 * _POLL_INTERVAL_S)
        stats = poller.stats()
    assert stats["reloads"] == 2 and stats["errors"] == 0 and stats["newest_steps"] == {0: 2}
    assert stats["peer_bytes_read"] > 2 * 64 * 32 * 4  # two checkpoints plus manifests
    assert 0 < stats["median_reload_latency_s"] < 5.0
    assert stats["max_staleness_s"] >= 2 * _POLL_INTERVAL_S


def test_warns_when_a_peer_publishes_nothing_new(peers, caplog):
    peers[0].publish(1, _weights(1))
    with PeerPoller([peers[0].directory], _POLL_INTERVAL_S, staleness_warning_s=0.3):
        found = _wait_for(lambda: [r for r in caplog.records
                                   if "has published nothing new" in r.getMessage()], 5.0)
    assert found and found[0].levelno == logging.WARNING


def test_an_exception_in_the_thread_is_logged_and_polling_continues(peers, monkeypatch,
                                                                    caplog):
    real_read = snapshots._read_latest_counting
    calls = []

    def failing_first(*args):
        calls.append(args)
        if len(calls) == 1:
            raise RuntimeError("shared file system hiccup")
        return real_read(*args)

    monkeypatch.setattr(snapshots, "_read_latest_counting", failing_first)
    peers[0].publish(1, _weights(1))
    with PeerPoller([peers[0].directory], _POLL_INTERVAL_S) as poller:
        new = _wait_for(poller.take_new, 5.0)
        stats = poller.stats()
    assert new[0].step == 1 and stats["errors"] == 1
    assert any(r.exc_info and "shared file system hiccup" in str(r.exc_info[1])
               for r in caplog.records)


def test_close_stops_the_thread(peers):
    poller = PeerPoller([peers[0].directory], _POLL_INTERVAL_S)
    poller.close()
    assert not poller._thread.is_alive()


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="poll_interval_s must be > 0"):
        PeerPoller(["/tmp/x"], 0)
    with pytest.raises(ValueError, match="peer_directories is empty"):
        PeerPoller([], 1.0)
