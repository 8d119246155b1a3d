"""The chaos scenario: a seeded workflow, a seeded fault plan, and the ledger verdict.

The workflow (about 200 task executions) has a fan-out into a parallel group, a
join over it, a diamond join, a chain, a loop that checkpoints every iteration and a
second fan-out with its join. Every task records its start and end in the ledger and
returns a value the test can predict, so a lost, doubled or overwritten result shows.

A fault plan is a list of `Fault`s drawn from the seed: what to break and after how
many completed tasks. The wall-clock interleaving of real processes is not
reproducible, the plan is: a failing seed re-runs the same faults at the same points.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import cloudpickle
from reliability.harness import Entry, record

from graflow_dist import chain, parallel, task, workflow

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests

FAN_A = 70
FAN_B = 70
CHAIN = 16
LOOP_ROUNDS = 8
KINDS = ("worker_kill", "worker_pause", "leader_kill", "redis_restart", "worker_term",
         "network_cut")


# --- the workflow ------------------------------------------------------------------------


def _pause(seed: int, name: str) -> float:
    return random.Random(f"{seed}:{name}").uniform(0.005, 0.03)


def build_workflow(seed: int, ledger_dir: str):  # noqa: ANN201
    """The chaos workflow; `expected_results` says what each task must return."""

    def leaf(name: str, value_of: Any):  # noqa: ANN202, ANN401
        pause = _pause(seed, name)

        @task(name, inject_context=True)
        def run(ctx) -> int:  # noqa: ANN001
            record(ledger_dir, ctx, "start")
            time.sleep(pause)
            value = value_of(ctx)
            record(ledger_dir, ctx, "end")
            return value

        return run

    with workflow(f"chaos-{seed}") as wf:
        root = leaf("root", lambda ctx: 1)
        fan_a = [leaf(f"a{i:03d}", lambda ctx, i=i: ctx.get_result("root") + i)
                 for i in range(FAN_A)]
        join_a = leaf("join_a", lambda ctx: sum(ctx.get_result(f"a{i:03d}")
                                                 for i in range(FAN_A)))
        left = leaf("left", lambda ctx: ctx.get_result("join_a") + 1)
        right = leaf("right", lambda ctx: ctx.get_result("join_a") + 2)
        diamond = leaf("diamond", lambda ctx: ctx.get_result("left") + ctx.get_result("right"))
        steps = [leaf(f"c{k:02d}", lambda ctx, k=k: (ctx.get_result(f"c{k - 1:02d}") if k
                                                     else ctx.get_result("diamond")) + 1)
                 for k in range(CHAIN)]

        @task("loop", inject_context=True, max_cycles=LOOP_ROUNDS + 1)
        def loop(ctx, acc: int | None = None) -> int:  # noqa: ANN001
            record(ledger_dir, ctx, "start")
            time.sleep(_pause(seed, f"loop{ctx.cycle_count}"))
            value = (acc if acc is not None else ctx.get_result(f"c{CHAIN - 1:02d}")) * 2
            if ctx.cycle_count < LOOP_ROUNDS:
                ctx.checkpoint(metadata={"round": ctx.cycle_count})
                ctx.next_iteration(value)
            record(ledger_dir, ctx, "end")
            return value

        fan_b = [leaf(f"b{i:03d}", lambda ctx, i=i: ctx.get_result("loop") - i)
                 for i in range(FAN_B)]
        join_b = leaf("join_b", lambda ctx: sum(ctx.get_result(f"b{i:03d}")
                                                 for i in range(FAN_B)))

        root >> parallel(*fan_a) >> join_a
        join_a >> left >> diamond
        join_a >> right >> diamond
        diamond >> chain(*steps) >> loop >> parallel(*fan_b) >> join_b
    return wf


def expected_results() -> dict[str, int]:
    out = {"root": 1}
    out.update({f"a{i:03d}": 1 + i for i in range(FAN_A)})
    out["join_a"] = sum(out[f"a{i:03d}"] for i in range(FAN_A))
    out["left"], out["right"] = out["join_a"] + 1, out["join_a"] + 2
    out["diamond"] = out["left"] + out["right"]
    prev = out["diamond"]
    for k in range(CHAIN):
        prev = out[f"c{k:02d}"] = prev + 1
    out["loop"] = prev * 2 ** LOOP_ROUNDS
    out.update({f"b{i:03d}": out["loop"] - i for i in range(FAN_B)})
    out["join_b"] = sum(out[f"b{i:03d}"] for i in range(FAN_B))
    return out


def expected_executions() -> set[tuple[str, int]]:
    """(task, cycle) pairs that must each complete at least once."""
    runs = {(name, 0) for name in expected_results() if name != "loop"}
    return runs | {("loop", c) for c in range(LOOP_ROUNDS)}


TOTAL_EXECUTIONS = len(expected_executions())


# --- the fault plan ------------------------------------------------------------------------


@dataclass
class Fault:
    kind: str
    after_done: int  # injected once this many task executions have ended
    duration_s: float = 0.0  # SIGSTOP length, or Redis downtime
    pick: int = 0  # which victim, among the candidates
    started: float = 0.0  # wall clock, filled in when injected
    ended: float = 0.0
    victim: int = 0  # pid
    interrupted: list[tuple[str, int, str]] = field(default_factory=list)  # (task, cycle, token)

    def describe(self) -> str:
        return (f"{self.kind}@{self.after_done}"
                + (f"/{self.duration_s:.2f}s" if self.duration_s else "")
                + (f" pid {self.victim}" if self.victim else ""))


def fault_plan(seed: int, lease_s: float) -> list[Fault]:
    """2 to 4 faults; the first kind cycles with the seed so every kind is exercised."""
    rng = random.Random(seed)
    count = rng.randint(2, 4)
    kinds = [KINDS[seed % len(KINDS)], *(rng.choice(KINDS) for _ in range(count - 1))]
    points = sorted(rng.randint(10, int(TOTAL_EXECUTIONS * 0.8)) for _ in range(count))
    plan = []
    for kind, point in zip(kinds, points, strict=True):
        duration = 0.0
        if kind == "worker_pause":
            duration = lease_s + rng.uniform(0.3, 1.2)  # longer than the lease
        elif kind == "redis_restart":
            duration = rng.uniform(0.0, 1.5)
        plan.append(Fault(kind, point, duration, rng.randrange(1000)))
    return plan


# --- the verdict -----------------------------------------------------------------------------


@dataclass
class Verdict:
    done_once: int = 0
    rerun: dict[tuple[str, int], str] = field(default_factory=dict)  # -> attributed fault
    lost: list[tuple[str, int]] = field(default_factory=list)
    unattributed: list[str] = field(default_factory=list)
    duplicate_tokens: list[str] = field(default_factory=list)
    recoveries_s: list[float] = field(default_factory=list)  # worker SIGKILL -> restart
    # ... without a Redis restart or leader kill right after (those delay the reaper)
    isolated_recoveries_s: list[float] = field(default_factory=list)


def _explains(fault: Fault, attempt: Entry, end: float, lease_s: float) -> bool:
    """Whether ``fault`` can be why ``attempt`` (running until ``end``) did not count.

    A worker fault explains the attempts of its victim that were running at the time;
    a Redis restart those running around the outage. A coordinator kill explains
    nothing: a takeover must not re-run anything. Nor does a network cut: every service
    connects again at once, and a command whose reply it lost must not run twice.
    """
    slack = 0.1
    if not fault.started or fault.kind in ("leader_kill", "network_cut"):
        return False
    if fault.kind == "redis_restart":
        start, stop = fault.started - 1.0, fault.ended + lease_s + slack
    elif fault.victim != attempt.worker_pid:
        return False
    else:
        start, stop = fault.started - slack, (fault.ended or fault.started) + slack
    return attempt.ts <= stop and end >= start


def classify(entries: list[Entry], faults: list[Fault], lease_s: float) -> Verdict:
    """Every expected execution is done once, re-run (only if an attempt was in flight
    at a fault) or lost."""
    verdict = Verdict()
    starts: dict[tuple[str, int], list[Entry]] = defaultdict(list)
    ends: dict[str, Entry] = {}
    tokens: dict[str, int] = defaultdict(int)
    for e in entries:
        if e.event == "start":
            starts[(e.task, e.cycle)].append(e)
            tokens[e.token] += 1
        elif e.event == "end":
            ends[e.token] = e
    verdict.duplicate_tokens = [t for t, n in tokens.items() if n > 1]
    for key in sorted(expected_executions()):
        attempts = sorted(starts.get(key, []), key=lambda a: a.ts)
        if not any(a.token in ends for a in attempts):
            verdict.lost.append(key)
            continue
        if len(attempts) == 1:
            verdict.done_once += 1
            continue
        # All attempts but one must have been caught by a fault.
        causes, innocent = [], []
        for a in attempts:
            end = ends[a.token].ts if a.token in ends else float("inf")
            hit = [f for f in faults if _explains(f, a, end, lease_s)]
            (causes if hit else innocent).append((a, hit))
        if len(innocent) > 1:
            verdict.unattributed.append(
                f"{key}: attempts {[(a.token, a.worker_pid, round(a.ts, 2)) for a, _ in innocent]}")
        verdict.rerun[key] = ",".join(sorted({f.kind for _a, hit in causes for f in hit}))
    for f in faults:
        if f.kind != "worker_kill":
            continue
        for task_id, cycle, token in f.interrupted:
            later = [a.ts for a in starts.get((task_id, cycle), []) if a.token != token
                     and a.ts > f.started]
            if later:
                verdict.recoveries_s.append(min(later) - f.started)
                near = [g for g in faults if g.started and g.kind in ("redis_restart",
                                                                       "leader_kill")
                        and -0.5 < g.started - f.started < lease_s + 0.5]
                if not near:
                    verdict.isolated_recoveries_s.append(min(later) - f.started)
    return verdict


@dataclass
class Tally:
    """Figures over every chaos run of a pytest session (printed in the summary)."""

    runs: int = 0
    executions: int = 0
    faults: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    lost: int = 0
    reruns: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    recoveries_s: list[float] = field(default_factory=list)
    isolated_recoveries_s: list[float] = field(default_factory=list)
    durations_s: list[float] = field(default_factory=list)

    def add(self, faults: list[Fault], verdict: Verdict, duration_s: float) -> None:
        self.runs += 1
        self.executions += TOTAL_EXECUTIONS
        for f in faults:
            if f.started:
                self.faults[f.kind] += 1
        self.lost += len(verdict.lost)
        for cause in verdict.rerun.values():
            self.reruns[cause or "?"] += 1
        self.recoveries_s += verdict.recoveries_s
        self.isolated_recoveries_s += verdict.isolated_recoveries_s
        self.durations_s.append(duration_s)

    def to_dict(self) -> dict[str, Any]:
        """What a pytest-xdist worker sends its controller (plain data)."""
        return {"runs": self.runs, "executions": self.executions,
                "faults": dict(self.faults), "lost": self.lost, "reruns": dict(self.reruns),
                "recoveries_s": self.recoveries_s,
                "isolated_recoveries_s": self.isolated_recoveries_s,
                "durations_s": self.durations_s}

    def merge(self, other: dict[str, Any]) -> None:
        """Add a worker's figures (`to_dict`) to these."""
        self.runs += other["runs"]
        self.executions += other["executions"]
        self.lost += other["lost"]
        for name in ("faults", "reruns"):
            for key, count in other[name].items():
                getattr(self, name)[key] += count
        for name in ("recoveries_s", "isolated_recoveries_s", "durations_s"):
            getattr(self, name).extend(other[name])

    def lines(self) -> list[str]:
        if not self.runs:
            return []
        rec = self.recoveries_s
        out = [
            f"chaos: {self.runs} runs, {self.executions} task executions expected, "
            f"faults injected {sum(self.faults.values())} ({dict(sorted(self.faults.items()))})",
            f"chaos: tasks lost {self.lost}; re-run executions {sum(self.reruns.values())} "
            f"by cause {dict(sorted(self.reruns.items()))}",
            f"chaos: run time median {statistics.median(self.durations_s):.1f} s, "
            f"max {max(self.durations_s):.1f} s",
        ]
        quiet = self.isolated_recoveries_s
        for label, values in (("all", rec), ("no redis/leader fault near", quiet)):
            if values:
                out.append(f"chaos: recovery after worker SIGKILL ({label}): n={len(values)}, "
                           f"median {statistics.median(values):.2f} s, "
                           f"max {max(values):.2f} s")
        return out


TALLY = Tally()
