"""Nodes an application upgrade is at are avoided for Primaries until every upgrade is done
with them: two applications' upgrades may be on one node at once."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fabrichost.agent._election import PrimaryElection
from fabrichost.agent._persist import Persistence
from fabrichost.agent._state import ClusterState
from fabrichost.store import Store

if TYPE_CHECKING:
    from pathlib import Path


def test_a_node_stays_avoided_until_the_last_upgrade_at_it_is_done(tmp_path: Path) -> None:
    state = ClusterState(tmp_path, ["_Node_0", "_Node_1"])
    with Store.open(tmp_path / "state.db") as store:
        election = PrimaryElection(state, Persistence(store))
        with election.avoiding("_Node_0"):  # application A's upgrade at _Node_0
            with election.avoiding("_Node_0"):  # application B's, at the same node
                with election.avoiding("_Node_1"):
                    assert election.avoided_nodes == {"_Node_0", "_Node_1"}
                assert election.avoided_nodes == {"_Node_0"}
            # B is done; A still restarts processes there: no Primary should go there.
            assert election.avoided_nodes == {"_Node_0"}
        assert election.avoided_nodes == frozenset()
