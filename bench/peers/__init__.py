"""Systems side by side in bench/run.py: graflow-dist and its peers, one adapter module
each (``<name>_adapter.py``), run as driver processes (see `peers.base`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class System:
    key: str
    label: str
    module: str
    in_repo_venv: bool  # else the peers' virtualenv (peers.venv)
    scale_size: int  # default fan-out size of the scale workload
    extra: tuple[str, ...] = ()  # workloads beyond fanout/chain/small/scale


GRAFLOW_DIST = System("graflow-dist", "graflow-dist", "peers.graflow_dist_adapter", True,
                      200_000)
PEERS = {
    # A fan-in depends_on N jobs costs RQ O(N) per finished dependency: O(N^2) in all.
    "rq": System("rq", "RQ", "peers.rq_adapter", True, 1_000,
                 ("single", "fanout_plain", "chain_wait")),
    "celery": System("celery", "Celery", "peers.celery_adapter", False, 20_000, ("single",)),
    "dramatiq": System("dramatiq", "Dramatiq", "peers.dramatiq_adapter", False, 20_000,
                       ("single",)),
    # Its group barrier gives up after 30 s: ~10,000 tasks here.
    "graflow": System("graflow", "Graflow 0.2", "peers.graflow_adapter", False, 10_000),
    "dask": System("dask", "Dask", "peers.dask_adapter", False, 20_000, ("single",)),
}
