"""Index entries that outlive their data: `{prefix}:runs` lists every run submitted and
`{prefix}:feedback:index` every feedback request, while the runs' data (requests
included) expires after the coordinator's ``--run-ttl-s``. Without pruning, both grow
with every run ever submitted.

`IndexPruner` takes off the entries whose data is gone, a bounded number per call, in
score (submission) order from where the last call stopped.
"""

from __future__ import annotations

from graflow_dist.broker.keys import Keyspace
from graflow_dist.broker.scripts import Scripts

_START = float("-inf")


class IndexPruner:
    """Prunes the deployment's indexes; keeps where it stopped in each (in memory: a new
    leader starts from the oldest entries again).

    Parameters
    ----------
    keyspace, scripts:
        The deployment's key layout and scripts.
    """

    def __init__(self, keyspace: Keyspace, scripts: Scripts) -> None:
        self.scripts = scripts
        # index -> (head, tail): an entry's data is the key head + member + tail
        self._data_key = {keyspace.all_runs: (keyspace.run_key_head, keyspace.run_meta_tail),
                          keyspace.feedback_index: (keyspace.feedback(""), "")}
        self._after = dict.fromkeys(self._data_key, _START)

    def prune(self, before: float, limit: int) -> tuple[int, bool]:
        """Look at up to ``limit`` entries of each index scored up to ``before`` (older
        ones only: newer data cannot have expired yet) and take off those whose data is
        gone. Returns how many were taken off, and whether an index has more to look at
        (call again)."""
        removed, more = 0, False
        for index, (head, tail) in self._data_key.items():
            after = self._after[index]
            taken, looked_at, last = self.scripts.call("prune_index", [index], [
                head, tail, "-inf" if after == _START else repr(after), repr(before), limit])
            removed += int(taken)
            # from the last entry looked at next time; from the start once through
            full = int(looked_at) == limit
            self._after[index] = float(last) if full else _START
            more = more or full
        return removed, more
