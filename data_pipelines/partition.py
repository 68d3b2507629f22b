"""Which documents a codistillation group, a worker and validation see.

Decisions hash the WARC-Record-ID, not file names or positions, so they are the same on
every machine, in every run, in tf.data and in Beam, and do not depend on how crawl files
were split or ordered. The paper's groups read disjoint data (section 3.3.2); "same" mode
exists for the same-data ablation.
"""
from __future__ import annotations

import dataclasses
import hashlib
from typing import Sequence

PARTITION_MODES = ("disjoint", "same", "validation")
DEFAULT_VALIDATION_FRACTION = 0.01
_VALIDATION_BUCKETS = 1_000_000


def stable_hash(record_id: str, salt: str) -> int:
    """64-bit hash of a record id; `salt` makes the group, validation and worker decisions
    independent of one another."""
    digest = hashlib.blake2b(f"{salt}\x00{record_id}".encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big")


@dataclasses.dataclass(frozen=True)
class Partition:
    """Group `group` of `num_groups`. mode "disjoint": a 1/num_groups share of the training
    documents; "same": all training documents; "validation": the held-out documents no group
    trains on."""
    group: int = 0
    num_groups: int = 1
    mode: str = "disjoint"
    validation_fraction: float = DEFAULT_VALIDATION_FRACTION

    def __post_init__(self):
        if self.mode not in PARTITION_MODES:
            raise ValueError(f"partition mode must be one of {PARTITION_MODES}, "
                             f"got {self.mode!r}")
        if not 0 <= self.group < self.num_groups:
            raise ValueError(f"need 0 <= group < num_groups, got group={self.group}, "
                             f"num_groups={self.num_groups}")
        if not 0 <= self.validation_fraction < 1:
            raise ValueError("validation_fraction must be in [0, 1), "
                             f"got {self.validation_fraction}")

    def accepts(self, record_id: str) -> bool:
        return self.name_for(record_id) == self.name

    @property
    def name(self) -> str:
        if self.mode == "validation":
            return "validation"
        if self.mode == "same":
            return "train"
        return group_name(self.group, self.num_groups)

    def name_for(self, record_id: str) -> str:
        """The partition a record belongs to under this split: "validation", or the training
        partition ("group-k-of-N" in disjoint mode, "train" in same mode)."""
        if is_validation(record_id, self.validation_fraction):
            return "validation"
        if self.mode == "same":
            return "train"
        return group_name(stable_hash(record_id, "group") % self.num_groups, self.num_groups)


def group_name(group: int, num_groups: int) -> str:
    return f"group-{group}-of-{num_groups}"


def is_validation(record_id: str, fraction: float) -> bool:
    bucket = stable_hash(record_id, "validation") % _VALIDATION_BUCKETS
    return bucket < fraction * _VALIDATION_BUCKETS


def shard_files(files: Sequence[str], num_shards: int, shard: int
                ) -> tuple[list[str], int, int]:
    """Splits the input among the pipelines of an InputContext.

    Returns (files this shard reads, record_shards, record_shard): by file when there are at
    least as many files as shards (nothing read twice), otherwise every shard reads every file
    and keeps the records whose id hashes to it (record_shards > 1).
    """
    if not 0 <= shard < num_shards:
        raise ValueError(f"need 0 <= input_pipeline_id < num_input_pipelines, "
                         f"got {shard} of {num_shards}")
    files = sorted(files)
    if len(files) >= num_shards:
        return files[shard::num_shards], 1, 0
    return files, num_shards, shard


def in_record_shard(record_id: str, record_shards: int, record_shard: int) -> bool:
    return record_shards == 1 or stable_hash(record_id, "worker") % record_shards == record_shard
