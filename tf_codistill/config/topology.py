"""Who distills from whom: the peer groups each group reads checkpoints from."""

from __future__ import annotations

TOPOLOGIES = ("all_to_all", "pair", "ring")


def peers_of(group: int, num_groups: int, topology: str = "all_to_all") -> list[int]:
    """The groups whose predictions ``group`` distills from.

    all_to_all: every other group (the mean of the other N-1, Algorithm 1).
    pair: groups 2m and 2m+1 distill from each other (N must be even).
    ring: each group distills from its predecessor, group k from k-1 (mod N).
    """
    if topology not in TOPOLOGIES:
        raise ValueError(f"topology={topology!r} is not known; choose one of {TOPOLOGIES}.")
    if num_groups < 1:
        raise ValueError(f"num_groups must be >= 1, got {num_groups}.")
    if not 0 <= group < num_groups:
        raise ValueError(f"group={group} is out of range: with num_groups={num_groups}, "
                         f"pass --group between 0 and {num_groups - 1}.")
    if num_groups == 1:
        return []
    if topology == "all_to_all":
        return [g for g in range(num_groups) if g != group]
    if topology == "pair":
        if num_groups % 2:
            raise ValueError(f"topology='pair' needs an even num_groups, got {num_groups}; "
                             "use 'ring' or 'all_to_all' for an odd number of groups.")
        return [group ^ 1]
    return [(group - 1) % num_groups]
