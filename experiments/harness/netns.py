"""Two "machines" on one host: network namespaces joined by a veth pair shaped with ``tc``.

Each side is a network namespace of its own (``unshare -n``), held open by a small process
that blocks on a pipe from this one, with the loopback up and one end of a veth pair
addressed 10.77.0.1 (side 0) or 10.77.0.2 (side 1). ``shape(gbps)`` puts a token-bucket
filter (``tc qdisc ... tbf``) on the egress of both ends (the kernel here has no ``netem``,
so rate only, no delay); ``shape(None)`` removes it. Processes started with ``popen`` run
inside a side's namespace (``nsenter``), pinned to that side's core (``taskset``).

Nothing outlives the ``Link``: ``close()`` (also on an exception or Ctrl-C inside ``with``)
kills the processes, then the namespace holders; a namespace and the veth ends in it vanish
with their last process. Every process started here also gets SIGKILL when this one dies
(``PR_SET_PDEATHSIG``), and the holders exit at end-of-file on their pipe, so even a
``kill -9`` of the benchmark leaves no namespace behind. Traffic stays inside the two
namespaces: no address outside them is ever used.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import subprocess
import time
from typing import Sequence

ADDRESSES = ("10.77.0.1", "10.77.0.2")
KERNEL_HZ = 250  # the tbf bucket must hold at least rate/HZ bytes (one timer tick)
_TOOLS = {"unshare": "util-linux", "nsenter": "util-linux", "taskset": "util-linux",
          "ip": "iproute2", "tc": "iproute2"}
_PR_SET_PDEATHSIG = 1


def missing_requirements() -> list[str]:
    """What this host lacks to build a ``Link``, each named with how to get it; [] if none."""
    missing = [] if os.geteuid() == 0 else [
        f"root (running as uid {os.geteuid()}; namespaces, veth and tc need it)"]
    missing += [f"{tool} (install {package})" for tool, package in _TOOLS.items()
                if shutil.which(tool) is None]
    return missing


def _die_with_parent():
    """In the child before exec: SIGKILL when the process that started it dies."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _run(argv: Sequence[str]) -> str:
    done = subprocess.run(list(argv), capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.strip()}")
    return done.stdout


class Link:
    """Two network namespaces, one veth pair between them; a context manager.

    ``cores``: the CPU each side's processes are pinned to (one core, one "machine").
    """

    def __init__(self, cores: Sequence[int] = (0, 1), name: str | None = None):
        missing = missing_requirements()
        if missing:
            raise RuntimeError("A shaped link needs " + ", ".join(missing) + ".")
        self.cores = tuple(cores)
        self.name = name or f"ic{os.getpid() % 100000}"  # veth names: at most 15 characters
        self.devices = (f"{self.name}a", f"{self.name}b")
        self.gbps: float | None = None
        self._holders: list[subprocess.Popen] = []
        self.namespaces: list[int] = []  # inode numbers of the two network namespaces
        self._processes: list[subprocess.Popen] = []

    def __enter__(self) -> "Link":
        try:
            self.open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info):
        self.close()

    def open(self) -> None:
        for _ in range(2):
            self._holders.append(subprocess.Popen(
                ["unshare", "-n", "--", "sh", "-c", "read _"], stdin=subprocess.PIPE,
                preexec_fn=_die_with_parent))
        self.namespaces = [_entered_namespace(h) for h in self._holders]
        pids = [str(h.pid) for h in self._holders]
        _run(["ip", "link", "add", self.devices[0], "netns", pids[0], "type", "veth",
              "peer", "name", self.devices[1], "netns", pids[1]])
        for side in (0, 1):
            self.ip(side, "link", "set", "lo", "up")
            self.ip(side, "addr", "add", f"{ADDRESSES[side]}/24", "dev", self.devices[side])
            self.ip(side, "link", "set", self.devices[side], "up")

    def namespace_command(self, side: int, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside side ``side``'s namespace (no core pinning)."""
        return ["nsenter", "-t", str(self._holders[side].pid), "-n", "--", *argv]

    def ip(self, side: int, *args: str) -> str:
        return _run(self.namespace_command(side, ["ip", *args]))

    def tc(self, side: int, *args: str) -> str:
        return _run(self.namespace_command(side, ["tc", *args]))

    def shape(self, gbps: float | None) -> None:
        """Limits both directions to ``gbps`` (token bucket on each end's egress); None: off."""
        for side in (0, 1):
            device = self.devices[side]
            if gbps is None:
                if "tbf" in self.tc(side, "qdisc", "show", "dev", device):
                    self.tc(side, "qdisc", "del", "dev", device, "root")
                continue
            rate_bytes = gbps * 1e9 / 8
            burst = max(int(rate_bytes / KERNEL_HZ), 64 * 1024)  # >= one tick, >= one GSO packet
            self.tc(side, "qdisc", "replace", "dev", device, "root", "tbf",
                    "rate", f"{int(gbps * 1e9)}bit", "burst", str(burst), "latency", "400ms")
        self.gbps = gbps

    def tx_bytes(self, side: int) -> int:
        """Bytes sent so far by side ``side``'s end of the veth pair."""
        info = json.loads(self.ip(side, "-s", "-j", "link", "show", "dev", self.devices[side]))
        return int(info[0]["stats64"]["tx"]["bytes"])

    def popen(self, side: int, argv: Sequence[str], **kwargs) -> subprocess.Popen:
        """Starts ``argv`` in side ``side``'s namespace on its core; stopped by ``close``."""
        command = self.namespace_command(
            side, ["taskset", "-c", str(self.cores[side]), *argv])
        process = subprocess.Popen(command, preexec_fn=_die_with_parent, **kwargs)
        self._processes.append(process)
        return process

    def close(self) -> None:
        """Kills what ran inside, then the namespaces (the veth pair goes with them)."""
        for process in self._processes + self._holders:
            if process.poll() is None:
                process.kill()
        for process in self._processes + self._holders:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        self._processes.clear()
        for holder in self._holders:
            if holder.stdin:
                holder.stdin.close()

    def is_gone(self) -> bool:
        """True when no process on this host is in either namespace (so neither exists)."""
        return not (set(self.namespaces) & network_namespaces_in_use())


def _entered_namespace(holder: subprocess.Popen, timeout_s: float = 30.0) -> int:
    """The inode of the namespace ``holder`` runs in, once it has left this one."""
    own = os.stat("/proc/self/ns/net").st_ino
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if holder.poll() is not None:
            raise RuntimeError(f"unshare -n exited with {holder.returncode}: no namespace.")
        inode = os.stat(f"/proc/{holder.pid}/ns/net").st_ino
        if inode != own:
            return inode
        time.sleep(0.01)
    raise RuntimeError(f"unshare -n did not enter a new namespace in {timeout_s:.0f} s.")


def network_namespaces_in_use() -> set[int]:
    inodes = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            inodes.add(os.stat(f"/proc/{pid}/ns/net").st_ino)
        except OSError:
            pass  # the process ended while we looked
    return inodes
