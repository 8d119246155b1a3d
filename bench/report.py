"""What bench/run.py measures per workload, its summary (medians, min..max, ratios
graflow-dist / peer) and the one table it prints."""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from peers import GRAFLOW_DIST, PEERS

Entry = dict[str, Any]


@dataclass(frozen=True)
class Workload:
    label: str
    unit: str
    metric: Callable[[Entry], float]
    higher_is_better: bool
    compare_to: str  # the graflow-dist workload a peer's figure is compared with


def _per_s(key: str) -> Callable[[Entry], float]:
    return lambda e: e[key] / e["seconds"]


def _ms_per_task(e: Entry) -> float:
    return e["seconds"] * 1e3 / e["tasks"]


WORKLOADS = {
    "fanout": Workload("fan-out 1+N+1", "tasks/s", _per_s("tasks"), True, "fanout"),
    "fanout_plain": Workload("  N plain jobs (RQ)", "jobs/s", _per_s("tasks"), True, "fanout"),
    "chain": Workload("chain of M", "ms/step", _ms_per_task, False, "chain"),
    "chain_wait": Workload("  enqueue-and-wait (RQ)", "ms/step", _ms_per_task, False, "chain"),
    "small": Workload("small runs (12 tasks)", "runs/s", _per_s("runs"), True, "small"),
    "single": Workload("  single jobs", "jobs/s", _per_s("runs"), True, "small"),
    "scale": Workload("scale fan-out", "tasks/s", _per_s("tasks"), True, "scale"),
}
# Rows derived from other workloads' entries: (label, unit, source workload, metric).
DERIVED: list[tuple[str, str, str, Callable[[Entry], float | None]]] = [
    ("Redis commands/task, fan-out", "cmds", "fanout", lambda e: e["commands_per_task"]),
    ("CPU ms/task, fan-out (all)", "ms", "fanout",
     lambda e: sum(e["cpu_ms_per_task"].values())),
    ("peak RSS per worker", "MB", "scale", lambda e: _rss(e, "workers")),
    ("peak RSS worker supervisor", "MB", "scale", lambda e: _rss(e, "worker supervisors")),
    ("peak RSS coordinator", "MB", "scale", lambda e: _rss(e, "coordinator")),
    ("peak RSS client", "MB", "scale", lambda e: _rss(e, "client")),
]


def _rss(entry: Entry, role: str) -> float | None:
    values = [v for v in entry.get("peak_rss_mb", {}).get(role, []) if v is not None]
    return max(values) if values else None


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}


def summarise(args: argparse.Namespace, results: dict[str, dict[str, list[Entry]]],
              failures: dict[str, str], env: dict[str, Any]) -> dict[str, Any]:
    """The JSON document: config, every entry, summaries per row and system, ratios."""
    rows: dict[str, dict[str, dict[str, float]]] = {}
    for key, wl in WORKLOADS.items():
        for system, by_workload in results.items():
            entries = by_workload.get(key, [])
            if entries:
                rows.setdefault(key, {})[system] = summary([wl.metric(e) for e in entries])
    for label, _unit, source, metric in DERIVED:
        for system, by_workload in results.items():
            values = [v for e in by_workload.get(source, []) if (v := metric(e)) is not None]
            if values:
                rows.setdefault(label, {})[system] = summary(values)
    ratios: dict[str, dict[str, float]] = {}
    gf = GRAFLOW_DIST.key
    for row, by_system in rows.items():
        ref_row = WORKLOADS[row].compare_to if row in WORKLOADS else row
        ref = rows.get(ref_row, {}).get(gf)
        if ref is None:
            continue
        for system, s in by_system.items():
            if system != gf and s["median"] > 0:
                ratios.setdefault(row, {})[system] = ref["median"] / s["median"]
    sizes = {system: {k: v[0]["size"] for k, v in by_workload.items()}
             for system, by_workload in results.items()}
    return {"environment": env,
            "config": {"repeats": args.repeats, "workers": args.workers, "quick": args.quick,
                       "aof": args.aof, "workloads": args.workloads,
                       "systems": [s.key for s in args.systems], "sizes": sizes},
            "raw": results, "summary": rows, "ratios": ratios, "failures": failures}


def _num(v: float) -> str:
    if v >= 10_000:
        return f"{v / 1000:.0f}k"
    if v >= 1000:
        return f"{v / 1000:.1f}k"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def _cell(s: dict[str, float] | None) -> str:
    if s is None:
        return "-"
    if s["n"] == 1:
        return _num(s["median"])
    return f"{_num(s['median'])} [{_num(s['min'])}-{_num(s['max'])}]"


def print_table(args: argparse.Namespace, out: dict[str, Any]) -> None:
    systems = [s for s in args.systems]
    rows, ratios = out["summary"], out["ratios"]
    label_w, col_w = 34, 21
    env = out["environment"]
    print()
    print(f"{len(systems)} systems, {args.workers} worker processes each, one redis-server "
          f"{env['redis_server']}, {env['cpus']} CPUs, {args.repeats} repeat(s); "
          "median [min-max]; 'x' rows: graflow-dist / peer")
    print(" " * label_w + "".join(f"{s.label:>{col_w}}" for s in systems))
    order = [*WORKLOADS, *(d[0] for d in DERIVED)]
    units = {**{k: w.unit for k, w in WORKLOADS.items()}, **{d[0]: d[1] for d in DERIVED}}
    for row in order:
        if row not in rows:
            continue
        label = WORKLOADS[row].label if row in WORKLOADS else row
        by_system = rows[row]
        print(f"{label + ' (' + units[row] + ')':<{label_w}}"
              + "".join(f"{_cell(by_system.get(s.key)):>{col_w}}" for s in systems))
        if row in ratios:
            print(f"{'  x graflow-dist / peer':<{label_w}}" + " " * col_w
                  + "".join(f"{_ratio(ratios[row].get(s.key)):>{col_w}}" for s in systems[1:]))
    sizes = out["config"]["sizes"]
    gf_sizes = sizes.get(GRAFLOW_DIST.key, {})
    print("sizes: " + ", ".join(f"{k} {v:,}" for k, v in gf_sizes.items() if k != "scale")
          + "; scale fan-out: " + ", ".join(
              f"{PEERS[k].label if k in PEERS else k} {v['scale']:,}"
              for k, v in sizes.items() if "scale" in v))
    engine = out["raw"].get(GRAFLOW_DIST.key, {})
    if engine.get("fanout") and engine.get("chain"):
        fan = statistics.median(e["tasks"] / e["engine_seconds"] for e in engine["fanout"])
        chn = statistics.median(e["engine_seconds"] * 1e3 / e["tasks"] for e in engine["chain"])
        print(f"in-process WorkflowEngine, same workflows: fan-out {_num(fan)} tasks/s, "
              f"chain {chn:.3f} ms/step")
    for key, why in out["failures"].items():
        print(f"FAILED {PEERS[key].label}: {why}")


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"
