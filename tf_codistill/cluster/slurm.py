"""Where a process stands in a cluster job: its group, its worker index, its group's TF_CONFIG.

A codistillation job of N groups x W workers is N independent synchronous jobs
(one MultiWorkerMirroredStrategy each) that share nothing but the model_dir.
A scheduler that starts all N*W processes at once (Slurm's ``srun``) gives each
one a rank; ranks are laid out group-major:

    rank = group * W + worker        group = rank // W        worker = rank % W

and the TF_CONFIG of a process names the W workers of its own group only.

Ports are deterministic: the task of rank r listens on
``port_base + <its index on its node>`` (Slurm's SLURM_LOCALID), so tasks that
share a node never clash, whatever group they belong to. Host names come from
Slurm's node list expanded as TensorFlow's SlurmClusterResolver does, with
tasks placed on nodes in blocks (srun's default ``--distribution=block``).

This module only resolves addresses and sets TF_CONFIG; the strategy itself is
built in ``runner/strategies.py``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Mapping, Optional, Sequence

from tensorflow.python.distribute.cluster_resolver import slurm_cluster_resolver as _slurm

from tf_codistill import config as config_lib


@dataclasses.dataclass(frozen=True)
class Placement:
    """One process of an N x W job: its group, its index in the group and the group's workers."""

    rank: int
    group: int
    worker: int
    workers: tuple[str, ...]  # host:port of the group's W workers, in worker order

    def tf_config(self) -> dict:
        return {"cluster": {"worker": list(self.workers)},
                "task": {"type": "worker", "index": self.worker}}


def rank_addresses(hosts: Sequence[str], tasks_per_node: Sequence[int],
                   port_base: int) -> list[str]:
    """host:port of every rank, tasks placed on the hosts in blocks, in order.

    The i-th task on a host listens on ``port_base + i``.
    """
    return [f"{host}:{port_base + local}"
            for host, count in zip(hosts, tasks_per_node) for local in range(count)]


def placements(addresses: Sequence[str], num_groups: int,
               workers_per_group: int) -> list[Placement]:
    """The placement of every rank, group-major (rank = group * W + worker)."""
    if len(addresses) != num_groups * workers_per_group:
        raise ValueError(f"{len(addresses)} addresses for {num_groups} groups x "
                         f"{workers_per_group} workers")
    w = workers_per_group
    return [Placement(rank, rank // w, rank % w,
                      tuple(addresses[(rank // w) * w:(rank // w + 1) * w]))
            for rank in range(len(addresses))]


def hosts_addresses(hosts: Sequence[str], port_base: int) -> list[str]:
    """host:port per rank for a list of hosts, one entry per process (repeats allowed).

    An entry with its own port keeps it; a bare host gets ``port_base`` plus the
    number of bare entries of the same host before it, as tasks on a Slurm node do.
    """
    seen: dict[str, int] = {}
    addresses = []
    for host in hosts:
        if ":" in host:
            addresses.append(host)
            continue
        addresses.append(f"{host}:{port_base + seen.get(host, 0)}")
        seen[host] = seen.get(host, 0) + 1
    return addresses


# ---------------------------------------------------------------------------------------------
# Slurm.

_FIX = ("start every task with srun inside the allocation (srun --ntasks=N*W python -m "
        "tf_codistill.train --cluster=slurm ...), or pass --cluster=none")


def slurm_placement(num_groups: int, workers_per_group: int, port_base: int,
                    environ: Optional[Mapping[str, str]] = None) -> Placement:
    """This task's placement, from the Slurm environment of an srun step.

    Reads SLURM_PROCID, SLURM_STEP_NUM_TASKS (or SLURM_NTASKS), SLURM_STEP_NODELIST
    (or SLURM_JOB_NODELIST) and SLURM_STEP_TASKS_PER_NODE (or SLURM_TASKS_PER_NODE;
    not needed on one node); checks SLURM_LOCALID and SLURMD_NODENAME against the
    block layout where Slurm sets them. Raises ConfigError naming the variable.
    """
    env = os.environ if environ is None else environ
    rank = _int_var(env, "SLURM_PROCID")
    count_name, count = _first_int_var(env, ("SLURM_STEP_NUM_TASKS", "SLURM_NTASKS"))
    expected = num_groups * workers_per_group
    if count != expected:
        raise config_lib.ConfigError(
            f"{count_name}={count} is not --num_groups x --workers_per_group = {num_groups} x "
            f"{workers_per_group} = {expected}: start srun --ntasks={expected}, or pass the "
            f"--num_groups and --workers_per_group whose product is {count}.")
    if not 0 <= rank < count:
        raise config_lib.ConfigError(
            f"SLURM_PROCID={rank} is outside the step's {count} tasks (0..{count - 1}), so "
            "it belongs to no group's workers: run the train command as one task of the "
            f"srun step, with {count_name} set by srun.")
    nodes_name, nodelist = _first_var(env, ("SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST"))
    try:
        hosts = _slurm.expand_hostlist(nodelist)
    except ValueError as error:
        raise config_lib.ConfigError(f"{nodes_name}={nodelist!r} is not a Slurm node list "
                                     f"({error}); {_FIX}.") from None
    tasks_per_node = _tasks_per_node(env, hosts, count)
    addresses = rank_addresses(hosts, tasks_per_node, port_base)
    _check_own_place(env, rank, hosts, tasks_per_node)
    return placements(addresses, num_groups, workers_per_group)[rank]


def _tasks_per_node(env, hosts, count) -> list[int]:
    names = ("SLURM_STEP_TASKS_PER_NODE", "SLURM_TASKS_PER_NODE")
    present = [n for n in names if env.get(n)]
    if not present:
        if len(hosts) == 1:
            return [count]
        raise config_lib.ConfigError(
            f"{' and '.join(names)} are not set, so the {count} tasks cannot be placed on "
            f"the {len(hosts)} nodes; {_FIX}.")
    name = present[0]
    try:
        per_node = _slurm.expand_tasks_per_node(env[name])
    except ValueError as error:
        raise config_lib.ConfigError(f"{name}={env[name]!r} does not parse ({error}); "
                                     f"{_FIX}.") from None
    if len(per_node) != len(hosts) or sum(per_node) != count:
        raise config_lib.ConfigError(
            f"{name}={env[name]!r} places {sum(per_node)} tasks on {len(per_node)} nodes, but "
            f"the step has {count} tasks on {len(hosts)} nodes; {_FIX}.")
    return per_node


def _check_own_place(env, rank, hosts, tasks_per_node) -> None:
    """SLURM_LOCALID and SLURMD_NODENAME must match the block layout the ports assume."""
    placed = [(host, local) for host, n in zip(hosts, tasks_per_node) for local in range(n)]
    host, local = placed[rank]
    if env.get("SLURM_LOCALID") not in (None, "") and int(env["SLURM_LOCALID"]) != local:
        raise config_lib.ConfigError(
            f"SLURM_LOCALID={env['SLURM_LOCALID']} but rank {rank} is task {local} of {host} "
            "under a block distribution: start srun with --distribution=block.")
    nodename = env.get("SLURMD_NODENAME")
    if nodename and nodename != host and nodename.split(".")[0] != host.split(".")[0]:
        raise config_lib.ConfigError(
            f"SLURMD_NODENAME={nodename} but rank {rank} is placed on {host} under a block "
            "distribution: start srun with --distribution=block.")


def _first_var(env, names) -> tuple[str, str]:
    for name in names:
        if env.get(name):
            return name, env[name]
    raise config_lib.ConfigError(f"--cluster=slurm needs {' or '.join(names)} in the "
                                 f"environment; {_FIX}.")


def _first_int_var(env, names) -> tuple[str, int]:
    name, value = _first_var(env, names)
    return name, _parse_int(name, value)


def _int_var(env, name) -> int:
    return _first_int_var(env, (name,))[1]


def _parse_int(name, value) -> int:
    try:
        return int(value)
    except ValueError:
        raise config_lib.ConfigError(f"{name}={value!r} is not a number; {_FIX}.") from None


# ---------------------------------------------------------------------------------------------
# Joining.

def join(config: "config_lib.RunConfig",
         environ: Optional[Mapping[str, str]] = None) -> "config_lib.RunConfig":
    """The config of this process in its cluster, and its group's TF_CONFIG set.

    --cluster=none: the config unchanged. --cluster=slurm: --group comes from the
    rank; a group of several workers runs --strategy=multi_worker (chosen for
    --strategy=default) with TF_CONFIG naming its workers. Raises ConfigError,
    before anything is written, for a Slurm environment that does not fit.
    """
    if config.cluster == "none":
        return config
    workers = config.workers_per_group
    place = slurm_placement(config.num_groups, workers, config.cluster_port_base, environ)
    strategy = config.strategy
    if workers > 1:
        if strategy == "default":
            strategy = "multi_worker"
        elif strategy != "multi_worker":
            raise config_lib.ConfigError(
                f"--workers_per_group={workers} makes each group a {workers}-process job, "
                f"which --strategy={strategy} cannot run; pass --strategy=multi_worker (or "
                "leave --strategy unset).")
        os.environ["TF_CONFIG"] = json.dumps(place.tf_config())
    print(f"slurm rank {place.rank}: group {place.group} worker {place.worker} of "
          f"{workers} at {place.workers[place.worker]}", flush=True)
    return dataclasses.replace(config, group=place.group, strategy=strategy)
