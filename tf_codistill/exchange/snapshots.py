"""Checkpoint exchange between codistillation groups: publish, verified read, background poll.

Groups share knowledge only through published weights (Anil et al. 2018). A publisher writes a
TF checkpoint through `tf.train.CheckpointManager` and then, last and atomically, a manifest
(`manifest.json`) naming the kept checkpoints with each file's size and CRC32C. A reader trusts
nothing but the manifest: it copies the files the manifest names, verifies them, and loads the
weights from its verified private copy. A checkpoint without a manifest entry is invisible, and a
file that vanishes mid-read (the writer's `max_to_keep` at work) or fails its checksum (a writer
killed mid-write, a torn copy) makes the reader retry or fall back, never load torn weights.

Object storage (gs://, s3://): every file goes through tf.io.gfile, and nothing relies on an
atomic rename, which object stores lack (TensorFlow's GCS rename is a copy and a delete).
Correctness rests on the order and on verified reads: the checkpoint files are closed (uploaded)
before the manifest names them; the manifest is replaced whole (an upload or server-side copy
is all-or-nothing, and a torn one fails to parse and is re-read); readers check every file's
size and CRC32C against the manifest and load only their verified private copy. Local paths
add fsync and os.replace. tests/test_object_storage.py runs all of it on TensorFlow's ram://.

Checksum: CRC32C (google-crc32c) takes about a quarter of SHA-256's time here (0.08 s vs 0.31 s
for the paper LM's 178 MB, benchmarks/exchange_checksum.py); it detects torn and corrupt files,
which is its job here (there is no adversary), and it is the checksum GCS keeps for every object.

Manifest layout (JSON, "format": 1): {"checkpoints": [entry, ...]}, newest first, one entry per
checkpoint the writer still keeps; entry = {"step", "prefix" (relative to the directory),
"precision", "published_unix_time", "variables": [{"name", "shape", "dtype", "values_key",
"scale_key"}], "files": [{"name", "size", "crc32c"}]}.
"""
import dataclasses
import json
import os
import statistics
import tempfile
import threading
import time
from typing import Optional, Sequence

from absl import logging
import google_crc32c
import numpy as np
import tensorflow as tf

from tf_codistill.config.files import atomic_write, fsync_path, is_local
from tf_codistill.exchange.precision import (EncodedTensor, check_precision, decode_weights,
                                    encode_weights)

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1
_CHECKPOINT_NAME = "ckpt"


@dataclasses.dataclass(frozen=True)
class PeerSnapshot:
    """A peer's weights at one published step, verified and decoded to float32."""
    step: int
    names: tuple[str, ...]
    weights: list[np.ndarray]
    precision: str
    bytes_read: int  # all bytes read for this call, failed attempts included
    read_seconds: float
    path: str  # checkpoint prefix in the peer's directory
    retries: int = 0  # attempts that hit a vanished or torn file before this one


class _TornCheckpoint(Exception):
    """A checkpoint file vanished or failed verification; the read may be retried."""

    def __init__(self, message: str, vanished: bool = False):
        super().__init__(message)
        self.vanished = vanished  # the normal race with max_to_keep, not damage worth a warning


# ---------------------------------------------------------------------------------------------
# Publishing.

class PeerPublisher:
    """Publishes one group's weights for its peers under `directory`.

    Only the group's chief worker may call `publish`: the published copy is separate from the
    group's own training checkpoints, so the other workers of a MultiWorkerMirroredStrategy group
    take no part in it. Call `publish` outside `strategy.scope()`: the staging variables it
    creates on first use would otherwise be mirrored on every replica for nothing (still works).
    Publishing a step number that already exists (a restarted writer) overwrites that checkpoint;
    readers detect the rewrite through the checksums.
    """

    def __init__(self, directory: str, max_to_keep: int = 2, precision: str = "float32"):
        check_precision(precision)
        if max_to_keep < 1:
            raise ValueError(f"max_to_keep must be >= 1, got {max_to_keep}: readers need the "
                             "newest checkpoint to stay until the next one is published.")
        self.directory = directory
        self.precision = precision
        self.max_to_keep = max_to_keep
        tf.io.gfile.makedirs(directory)
        _remove_stale_temp_files(directory)
        self._entries = _previous_entries(directory)
        self._signature = None
        self._values: list[tf.Variable] = []
        self._scales: list[tf.Variable] = []
        self._manager: Optional[tf.train.CheckpointManager] = None

    def publish(self, step: int, named_weights: Sequence[tuple[str, object]]) -> str:
        """Saves the weights as checkpoint `step`, then the manifest; returns the prefix."""
        names, arrays = _split_named_weights(named_weights)
        encoded = encode_weights(arrays, self.precision)
        self._store(names, encoded)
        prefix = self._manager.save(checkpoint_number=int(step))
        _fsync_checkpoint_files(prefix)
        entry = self._describe(int(step), prefix, names, encoded)
        kept = {os.path.basename(p) for p in self._manager.checkpoints}
        # A writer resumed from an earlier checkpoint makes the steps it is about to
        # redo obsolete: readers must not go back to the killed run's later weights.
        self._entries = [entry] + [e for e in self._entries
                                   if e["prefix"] in kept and e["step"] < entry["step"]]
        manifest = {"format": MANIFEST_FORMAT, "checkpoints": self._entries}
        atomic_write(_join(self.directory, MANIFEST_NAME),
                     json.dumps(manifest, indent=1).encode())
        return prefix

    def _store(self, names: list[str], encoded: list[EncodedTensor]) -> None:
        signature = [(n, t.values.shape, t.values.dtype) for n, t in zip(names, encoded)]
        if self._manager is None:
            self._create_variables(encoded)
            self._signature = signature
        elif signature != self._signature:
            raise ValueError("The published variables changed since the first publish "
                             f"(was {self._signature}, now {signature}); publish a different "
                             "architecture to a new directory.")
        for variable, tensor in zip(self._values, encoded):
            variable.assign(tensor.values)
        for variable, tensor in zip(self._scales, encoded):
            variable.assign(tensor.scale)

    def _create_variables(self, encoded: list[EncodedTensor]) -> None:
        with tf.device("/cpu:0"):
            self._values = [tf.Variable(t.values, trainable=False) for t in encoded]
            self._scales = [tf.Variable(t.scale, trainable=False)
                            for t in encoded if t.scale is not None]
        checkpoint = tf.train.Checkpoint(values=self._values, scales=self._scales)
        self._manager = tf.train.CheckpointManager(
            checkpoint, self.directory, max_to_keep=self.max_to_keep,
            checkpoint_name=_CHECKPOINT_NAME)

    def _describe(self, step: int, prefix: str, names: list[str],
                  encoded: list[EncodedTensor]) -> dict:
        variables = [{"name": name, "shape": list(t.values.shape), "dtype": t.values.dtype.name,
                      "values_key": _checkpoint_key("values", i),
                      "scale_key": _checkpoint_key("scales", i) if t.scale is not None else None}
                     for i, (name, t) in enumerate(zip(names, encoded))]
        files = [_describe_file(path) for path in sorted(tf.io.gfile.glob(prefix + ".*"))]
        return {"step": step, "prefix": os.path.basename(prefix), "precision": self.precision,
                "published_unix_time": time.time(), "variables": variables, "files": files}


def _split_named_weights(named_weights) -> tuple[list[str], list]:
    pairs = list(named_weights)
    if not pairs:
        raise ValueError("named_weights is empty: nothing to publish.")
    for pair in pairs:
        if len(pair) != 2 or not isinstance(pair[0], str):
            raise ValueError(f"Expected (name, array) pairs, got {pair!r:.80}.")
    names = [name for name, _ in pairs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"Duplicate variable names {duplicates}; names must be unique.")
    return names, [array for _, array in pairs]


def _checkpoint_key(group: str, index: int) -> str:
    """Key of list element `index` of attribute `group` in an object-based checkpoint."""
    return f"{group}/{index}/.ATTRIBUTES/VARIABLE_VALUE"


def _describe_file(path: str) -> dict:
    data = _read_bytes(path)
    return {"name": os.path.basename(path), "size": len(data), "crc32c": _crc32c(data)}


def _crc32c(data: bytes) -> str:
    return f"{google_crc32c.value(data):08x}"


def newest_published_step(directory: str) -> Optional[int]:
    """The newest step the manifest in `directory` names; None if it names none."""
    return max((entry["step"] for entry in _previous_entries(directory)), default=None)


def _previous_entries(directory: str) -> list[dict]:
    """Entries of an earlier run's manifest, so a restarted writer keeps them advertised."""
    try:
        manifest = _parse_manifest(_read_bytes(_join(directory, MANIFEST_NAME)))
    except (tf.errors.NotFoundError, _TornCheckpoint):
        return []
    return manifest["checkpoints"]


# ---------------------------------------------------------------------------------------------
# Reading.

def read_latest(directory: str, known_step: Optional[int] = None, max_attempts: int = 3,
                retry_delay_s: float = 0.05) -> Optional[PeerSnapshot]:
    """Newest verified snapshot in `directory` with a step above `known_step`, else None.

    Returns None quietly when nothing (newer) is published. A vanished or torn file makes it
    fall back to the older checkpoints the same manifest names, then re-read the manifest, up to
    `max_attempts` times; after that it logs a warning and returns None. It never raises for
    those and never returns weights that failed verification.
    """
    snapshot, _ = _read_latest_counting(directory, known_step, max_attempts, retry_delay_s)
    return snapshot


def _read_latest_counting(directory, known_step, max_attempts, retry_delay_s):
    """`read_latest` that also returns its tally: "bytes" read, failed attempts included,
    and "newest_publish", the `_publish_mark` of the manifest's newest entry (if any)."""
    start = time.monotonic()
    tally = {"bytes": 0, "failures": 0}
    problems = []
    for attempt in range(max_attempts):
        if attempt:
            time.sleep(retry_delay_s)
        try:
            entries = _candidate_entries(directory, known_step, tally)
        except _TornCheckpoint as error:
            problems.append(str(error))
            continue
        if not entries:
            return None, tally
        found = _first_verified_entry(directory, entries, tally, problems)
        if found:
            entry, names, weights = found
            return PeerSnapshot(
                step=entry["step"], names=names, weights=weights, precision=entry["precision"],
                bytes_read=tally["bytes"], read_seconds=time.monotonic() - start,
                path=_join(directory, entry["prefix"]), retries=tally["failures"]), tally
    logging.warning("No verified peer checkpoint in %s after %d attempts; last problems: %s",
                    directory, max_attempts, "; ".join(problems[-3:]))
    return None, tally


def _first_verified_entry(directory: str, entries: list[dict], tally: dict, problems: list):
    """(entry, names, weights) of the newest entry that verifies, else None."""
    for entry in entries:
        try:
            return (entry, *_read_entry(directory, entry, tally))
        except _TornCheckpoint as error:
            tally["failures"] += 1
            problems.append(str(error))
            if not error.vanished:
                logging.warning("Skipping peer checkpoint step %d: %s", entry["step"], error)
    return None


def _candidate_entries(directory: str, known_step: Optional[int], tally: dict) -> list[dict]:
    try:
        data = _read_bytes(_join(directory, MANIFEST_NAME))
    except tf.errors.NotFoundError:
        return []
    tally["bytes"] += len(data)
    entries = _parse_manifest(data)["checkpoints"]
    if entries:
        tally["newest_publish"] = _publish_mark(entries[0])
    return [e for e in entries if known_step is None or e["step"] > known_step]


def _publish_mark(entry: dict) -> int:
    """A number naming one publish (its time in microseconds): a new one comes with every
    publish, also of a step the peer had already passed (restarted from an older checkpoint)."""
    return round(entry["published_unix_time"] * 1e6)


def _parse_manifest(data: bytes) -> dict:
    try:
        manifest = json.loads(data)
    except ValueError as error:
        raise _TornCheckpoint(f"unreadable manifest ({error})") from error
    if manifest.get("format") != MANIFEST_FORMAT:
        raise ValueError(f"Peer manifest format {manifest.get('format')!r} is not the supported "
                         f"format {MANIFEST_FORMAT}; upgrade tf_codistill on all groups.")
    return manifest


def _read_entry(directory: str, entry: dict, tally: dict) -> tuple[tuple[str, ...], list]:
    """Copies, verifies and loads one manifest entry's checkpoint."""
    with tempfile.TemporaryDirectory(prefix="peer_checkpoint_") as private_dir:
        for file in entry["files"]:
            data = _read_verified_file(_join(directory, file["name"]), file, tally)
            with open(os.path.join(private_dir, file["name"]), "wb") as copy:
                copy.write(data)
        encoded = _load_encoded(os.path.join(private_dir, entry["prefix"]), entry)
    names = tuple(v["name"] for v in entry["variables"])
    return names, decode_weights(encoded, entry["precision"])


def _read_verified_file(path: str, expected: dict, tally: dict) -> bytes:
    try:
        data = _read_bytes(path)
    except tf.errors.NotFoundError as error:
        raise _TornCheckpoint(f"{path} vanished mid-read", vanished=True) from error
    tally["bytes"] += len(data)
    if len(data) != expected["size"]:
        raise _TornCheckpoint(f"{path} has {len(data)} bytes, manifest says {expected['size']}")
    if _crc32c(data) != expected["crc32c"]:
        raise _TornCheckpoint(f"{path} fails its CRC32C check")
    return data


def _load_encoded(prefix: str, entry: dict) -> list[EncodedTensor]:
    try:
        reader = tf.train.load_checkpoint(prefix)
        encoded = [EncodedTensor(reader.get_tensor(v["values_key"]),
                                 reader.get_tensor(v["scale_key"]) if v["scale_key"] else None)
                   for v in entry["variables"]]
    except tf.errors.OpError as error:
        raise _TornCheckpoint(f"verified copy of {entry['prefix']} does not load: {error}")
    for variable, tensor in zip(entry["variables"], encoded):
        if list(tensor.values.shape) != variable["shape"]:
            raise _TornCheckpoint(f"{variable['name']} has shape {tensor.values.shape}, "
                                  f"manifest says {variable['shape']}")
    return encoded


def check_compatible(snapshot: PeerSnapshot, expected: Sequence[tuple[str, object]]) -> None:
    """Raises ValueError naming every missing, extra or reshaped variable of a peer snapshot.

    `expected` is (name, shape) pairs of the local model; shapes may hold None for any size.
    """
    actual = {name: w.shape for name, w in zip(snapshot.names, snapshot.weights)}
    wanted = {name: tf.TensorShape(shape) for name, shape in expected}
    problems = [f"missing {n}" for n in wanted if n not in actual]
    problems += [f"extra {n}" for n in actual if n not in wanted]
    problems += [f"{n}: peer shape {actual[n]} vs expected {tuple(wanted[n].as_list())}"
                 for n in wanted if n in actual and not wanted[n].is_compatible_with(actual[n])]
    if problems:
        raise ValueError(f"Peer checkpoint {snapshot.path} (step {snapshot.step}) does not fit "
                         f"the local model: {'; '.join(problems)}. Peers must share the "
                         "architecture and variable names.")


# ---------------------------------------------------------------------------------------------
# Background polling.

class PeerPoller:
    """A daemon thread that keeps the newest verified snapshot of each peer directory.

    The training loop calls `take_new()` between steps; it never blocks on file reads.
    Staleness of a peer is the time since it last published (any step: a peer restarted from an
    older checkpoint republishes steps it had passed), or since the poller started;
    `staleness_warning_s` logs a warning, repeated at that interval while stale. `publishes()`
    tells the same signs of life to the training loop.
    """

    def __init__(self, peer_directories: Sequence[str], poll_interval_s: float,
                 staleness_warning_s: float = 600.0):
        if poll_interval_s <= 0:
            raise ValueError(f"poll_interval_s must be > 0, got {poll_interval_s}.")
        self._directories = list(peer_directories)
        if not self._directories:
            raise ValueError("peer_directories is empty: there is no peer to poll.")
        self._poll_interval_s = poll_interval_s
        self._staleness_warning_s = staleness_warning_s
        self._lock = threading.Lock()
        self._newest: dict[int, PeerSnapshot] = {}
        self._taken: dict[int, int] = {}
        self._publishes: dict[int, int] = {}  # peer: publish_mark of its newest publish
        now = time.monotonic()
        self._last_new = {i: now for i in range(len(self._directories))}
        self._next_warning = {i: now + staleness_warning_s for i in self._last_new}
        self._latencies: list[float] = []
        self._counters = {"reloads": 0, "peer_bytes_read": 0, "errors": 0}
        self._bytes_by_peer = {i: 0 for i in range(len(self._directories))}
        self._latencies_by_peer: dict[int, list[float]] = {i: [] for i in self._bytes_by_peer}
        self._max_staleness_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="PeerPoller", daemon=True)
        self._thread.start()

    def take_new(self) -> dict[int, PeerSnapshot]:
        """Snapshots (by peer index) newer than the ones last taken; non-blocking."""
        with self._lock:
            new = {i: s for i, s in self._newest.items() if s.step > self._taken.get(i, -1)}
            self._taken.update({i: s.step for i, s in new.items()})
        return new

    def publishes(self) -> dict[int, int]:
        """{peer: `_publish_mark` of its newest publish seen}: changes whenever it publishes."""
        with self._lock:
            return dict(self._publishes)

    def stats(self) -> dict:
        """Reload counters, median reload latency, worst staleness seen (s), newest steps;
        ``by_peer``: bytes read (failed attempts included), snapshots read and median
        latency of each peer directory."""
        with self._lock:
            return {**self._counters,
                    "median_reload_latency_s": _median(self._latencies),
                    "max_staleness_s": self._max_staleness_s,
                    "newest_steps": {i: s.step for i, s in sorted(self._newest.items())},
                    "by_peer": {i: {"peer_bytes_read": self._bytes_by_peer[i],
                                    "snapshots_read": len(self._latencies_by_peer[i]),
                                    "median_reload_latency_s":
                                        _median(self._latencies_by_peer[i])}
                                for i in self._bytes_by_peer}}

    def poll_once(self) -> None:
        """Polls every peer once; the thread calls this, and so may tests or a sync loop."""
        for index, directory in enumerate(self._directories):
            try:
                self._poll_peer(index, directory)
            except Exception:  # pylint: disable=broad-except
                logging.exception("Polling peer %d (%s) failed; will retry.", index, directory)
                with self._lock:
                    self._counters["errors"] += 1
        self._check_staleness()

    def close(self, timeout_s: Optional[float] = None) -> None:
        """Stops the thread and waits for it (for a poll in flight to end)."""
        self._stop.set()
        self._thread.join(timeout_s)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:  # pylint: disable=broad-except
                logging.exception("Peer polling failed; will retry.")
            self._stop.wait(self._poll_interval_s)

    def _poll_peer(self, index: int, directory: str) -> None:
        with self._lock:
            known = self._newest[index].step if index in self._newest else None
        snapshot, tally = _read_latest_counting(directory, known, 3, 0.05)
        with self._lock:
            self._counters["peer_bytes_read"] += tally["bytes"]
            self._bytes_by_peer[index] += tally["bytes"]
            published = tally.get("newest_publish")
            if published is not None and published != self._publishes.get(index):
                self._publishes[index] = published
                self._last_new[index] = time.monotonic()
                self._next_warning[index] = self._last_new[index] + self._staleness_warning_s
            current = self._newest.get(index)
            if snapshot is None or (current is not None and snapshot.step <= current.step):
                return
            self._newest[index] = snapshot
            self._counters["reloads"] += 1
            self._latencies.append(snapshot.read_seconds)
            self._latencies_by_peer[index].append(snapshot.read_seconds)

    def _check_staleness(self) -> None:
        now = time.monotonic()
        with self._lock:
            for index, last_new in self._last_new.items():
                staleness = now - last_new
                self._max_staleness_s = max(self._max_staleness_s, staleness)
                if now >= self._next_warning[index]:
                    self._next_warning[index] = now + self._staleness_warning_s
                    logging.warning("Peer %d (%s) has published nothing new for %.0f s.",
                                    index, self._directories[index], staleness)


def _median(values):
    return statistics.median(values) if values else None


# ---------------------------------------------------------------------------------------------
# File helpers: tf.io.gfile so that gs:// peers work; local files get fsync and os.replace.

def _join(directory: str, name: str) -> str:
    return directory.rstrip("/") + "/" + name


def _read_bytes(path: str) -> bytes:
    with tf.io.gfile.GFile(path, "rb") as f:
        return f.read()


def _fsync_checkpoint_files(prefix: str) -> None:
    """Makes the checkpoint durable before a manifest can name it (local files only)."""
    if is_local(prefix):
        for path in tf.io.gfile.glob(prefix + ".*"):
            fsync_path(path)
        fsync_path(os.path.dirname(prefix))


def _remove_stale_temp_files(directory: str) -> None:
    """Removes manifest temp files left by a writer killed mid-write."""
    for path in tf.io.gfile.glob(_join(directory, MANIFEST_NAME + ".tmp-*")):
        tf.io.gfile.remove(path)
