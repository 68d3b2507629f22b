"""Peer selection for each topology."""

import pytest

from tf_codistill.config.topology import peers_of


def test_all_to_all_reads_every_other_group():
    assert peers_of(1, 4, "all_to_all") == [0, 2, 3]


def test_pair_reads_its_partner():
    assert [peers_of(g, 4, "pair") for g in range(4)] == [[1], [0], [3], [2]]


def test_ring_reads_its_predecessor():
    assert [peers_of(g, 3, "ring") for g in range(3)] == [[2], [0], [1]]


def test_a_single_group_has_no_peers():
    assert peers_of(0, 1, "ring") == []


@pytest.mark.parametrize("args, message", [
    ((2, 2, "ring"), "group=2 is out of range"),
    ((0, 3, "pair"), "even num_groups"),
    ((0, 2, "star"), "choose one of"),
])
def test_bad_arguments_say_what_to_pass(args, message):
    with pytest.raises(ValueError, match=message):
        peers_of(*args)
