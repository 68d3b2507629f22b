"""One owner per group (and worker), and shared preparation made exactly once.

A lease is a small JSON file (host, pid, start time, a random token) created
atomically: written under a unique temporary name, then hard-linked to its
place, which fails if the place is taken, so no reader ever sees half of it.
Its holder renews it from a heartbeat thread (the file's modification time)
every ``heartbeat_s``. A lease is *stale*, and the next starter takes it over,
when its holder ran on this host and that process is gone (at once: ``kill -9``
then rerun just works), or, for a holder on another host, when it was not
renewed for ``expire_heartbeats`` heartbeats; on its own host a live pid keeps
its lease. A live holder makes the second starter fail with ``LeaseHeld``, a
ConfigError naming the holder: the train command exits 2.

Takeover renames the stale file away first (one rename wins), and a holder
whose heartbeat finds another token in its file stops its process: two
processes never keep writing one group. Leases need a POSIX file system for
the model_dir (local disk, NFS); not an object store.

``make_once`` builds a shared file (demo corpus, vocabulary) under a lease of
its own: the first starter writes it, the others wait for it and reuse it.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import socket
import sys
import threading
import time
import uuid
from typing import Callable, Optional

from absl import logging

from tf_codistill.config import ConfigError
from tf_codistill.config.files import unique_temporary

HEARTBEAT_S = 2.0
EXPIRE_HEARTBEATS = 10  # 20 s without renewal on another host; a dead pid here is stale at once

_HELD_HERE: set[str] = set()  # tokens of the leases this process holds (any thread)


class LeaseHeld(ConfigError):
    """Another live process holds the lease; the message names it."""

    def __init__(self, message: str, holder: dict):
        super().__init__(message)
        self.holder = holder


def describe(holder: dict) -> str:
    return (f"host {holder.get('host', '?')} pid {holder.get('pid', '?')} "
            f"since {holder.get('since', '?')}")


_ALREADY_RUNNING = re.compile(r" is already running \((host \S+ pid \S+ since [^;]*);")


def holder_named_in(message: str) -> Optional[str]:
    """The holder a LeaseHeld message names ("host H pid P since S"), None if the message
    is not one: how a launcher tells a group already running from one that failed."""
    match = _ALREADY_RUNNING.search(message)
    return match.group(1) if match else None


def pid_namespace() -> str:
    """Which pid numbering this process sees (containers on one host differ), "" if unknown."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def _alive_here(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Lease:
    """An exclusive, renewed claim on ``path``; use as a context manager.

    Args:
      path: the lease file.
      what: words for messages ("group 1", "the demo data").
      heartbeat_s: seconds between renewals.
      expire_heartbeats: missed renewals after which the lease is stale.
      on_lost: called (from the heartbeat thread) when another process took the
        lease over; the default ends this process, exit status 3.
    """

    def __init__(self, path: str, what: str = "", heartbeat_s: float = HEARTBEAT_S,
                 expire_heartbeats: int = EXPIRE_HEARTBEATS,
                 on_lost: Optional[Callable[[dict], None]] = None):
        self.path = path
        self.what = what or path
        self.heartbeat_s = heartbeat_s
        self.expire_s = heartbeat_s * expire_heartbeats
        self._on_lost = on_lost or self._exit_on_lost
        self.host = socket.gethostname()
        self.token = uuid.uuid4().hex
        self.record = {"host": self.host, "pid": os.getpid(), "pid_namespace": pid_namespace(),
                       "since": datetime.datetime.now(datetime.timezone.utc)
                       .isoformat(timespec="seconds"),
                       "token": self.token}
        self.took_over: Optional[dict] = None
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def __enter__(self) -> "Lease":
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()

    # Acquiring.

    def acquire(self) -> None:
        """Takes the lease, or raises LeaseHeld naming its live holder."""
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        holder = None
        for _ in range(5):
            if self._create():
                _HELD_HERE.add(self.token)
                self._thread = threading.Thread(target=self._heartbeat, daemon=True,
                                                name=f"lease:{os.path.basename(self.path)}")
                self._thread.start()
                return
            holder = self._read()
            if holder is None:
                continue  # released meanwhile: try again
            reason = self._stale_reason(holder)
            if reason is None:
                break
            self._take_over(holder, reason)
        raise LeaseHeld(
            f"{self.what} is already running ({describe(holder or {})}; lease {self.path}, "
            f"renewed every {self.heartbeat_s:g} s). Stop that process, or wait for it; "
            f"the lease passes on when that process is gone (from another host: after "
            f"{self.expire_s:g} s without renewal).",
            holder or {})

    def _create(self) -> bool:
        tmp = unique_temporary(self.path)
        with open(tmp, "w") as f:
            json.dump(self.record, f)
        try:
            os.link(tmp, self.path)  # atomic and exclusive: fails if the lease exists
            return True
        except FileExistsError:
            return False
        except OSError:  # no hard links here: exclusive create, then write
            return self._create_exclusive()
        finally:
            os.unlink(tmp)

    def _create_exclusive(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            json.dump(self.record, f)
        return True

    def _read(self) -> Optional[dict]:
        """The holder's record with its last renewal time, None if there is no lease."""
        try:
            with open(self.path) as f:
                text = f.read()
            renewed = os.stat(self.path).st_mtime
        except FileNotFoundError:
            return None
        try:
            record = json.loads(text)
        except json.JSONDecodeError:
            record = {}  # not written by this module (files are linked complete)
        record["renewed"] = renewed
        return record

    def _stale_reason(self, holder: dict) -> Optional[str]:
        """Why the holder's lease may be taken over, or None while it holds it.

        On this host (and pid namespace) the process table decides: a live pid keeps its
        lease however long it went without renewing (a long call holding the GIL), a dead
        one loses it at once. Elsewhere, only the renewals tell.
        """
        pid = holder.get("pid")
        if (holder.get("host") == self.host and isinstance(pid, int)
                and holder.get("pid_namespace") == self.record["pid_namespace"]):
            if pid == os.getpid():
                return (None if holder.get("token") in _HELD_HERE
                        else "held by an earlier process with this pid")
            return None if _alive_here(pid) else "its process is gone"
        age = time.time() - holder["renewed"]
        if age > self.expire_s:
            return f"not renewed for {age:.0f} s"
        return None

    def _take_over(self, holder: dict, reason: str) -> None:
        moved = unique_temporary(self.path) + ".stale"
        try:
            os.rename(self.path, moved)  # of two takers, one rename wins
        except FileNotFoundError:
            return
        try:
            with open(moved) as f:
                taken = json.load(f)
        except (OSError, json.JSONDecodeError):
            taken = {}
        if holder.get("token") is not None and taken.get("token") != holder.get("token"):
            # Another starter took the stale lease over first and we moved its fresh one:
            # put it back (link never overwrites) and let the next round name it.
            try:
                os.link(moved, self.path)
            except FileExistsError:
                pass
        else:
            self.took_over = holder
            logging.warning("Taking over the lease of %s from %s: %s.", self.what,
                            describe(holder), reason)
            print(f"{self.what}: taking over the lease of {describe(holder)} ({reason})",
                  flush=True)
        os.unlink(moved)

    # Holding.

    def holds(self) -> bool:
        record = self._read()
        return record is not None and record.get("token") == self.token

    def _heartbeat(self):
        while not self._stop.wait(self.heartbeat_s):
            record = self._read()
            if record is None or record.get("token") != self.token:
                if not self._stop.is_set():
                    self._on_lost(record or {})
                return
            try:
                os.utime(self.path)
            except FileNotFoundError:
                continue  # the next beat reports the loss

    def _exit_on_lost(self, holder: dict) -> None:
        message = (f"error: {self.what} lost its lease {self.path} to "
                   f"{describe(holder) if holder else 'nobody (the file was removed)'}; "
                   "stopping so that two processes never write one group.")
        logging.error("%s", message)
        print(message, file=sys.stderr, flush=True)
        os._exit(3)  # pylint: disable=protected-access

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self.holds():
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
        _HELD_HERE.discard(self.token)


def make_once(path: str, build: Callable[[str], None], what: str = "",
              poll_s: float = 0.5, heartbeat_s: float = HEARTBEAT_S) -> str:
    """Makes ``path`` with ``build(path)`` unless it exists; concurrent callers wait.

    ``build`` must write ``path`` atomically (a unique temporary name, then a
    rename) and deterministically: the lease only decides who builds; readers
    trust what exists. A builder killed midway leaves a stale lease that the next
    caller takes over; a builder on another host that stops renewing is joined by
    a second builder, which is harmless.
    """
    waiting_on = None
    while not os.path.exists(path):
        try:
            with Lease(path + ".lease", what or os.path.basename(path), heartbeat_s,
                       on_lost=lambda holder: None):  # harmless: every build is atomic
                if not os.path.exists(path):
                    build(path)
        except LeaseHeld as held:
            if waiting_on != held.holder.get("token"):
                waiting_on = held.holder.get("token")
                print(f"waiting for {describe(held.holder)} to write {path}", flush=True)
            time.sleep(poll_s)
    return path
