#!/usr/bin/env python
"""Micro-measurements behind two design choices of the worker's reports.

    .venv/bin/python bench/micro.py [--tasks 1000]

On a private redis-server (127.0.0.1), with the same redis-py client the worker uses:

1. Reporting task completions: one MULTI/EXEC per task (the first design: SET the
   result + XADD the event) vs one MULTI/EXEC per 16 or 64 tasks (what workers do).
2. Handing a result to the channel: the first design's result parked by the worker and
   moved by the coordinator (GET+SET+DEL in Lua) vs the result inside the completion
   event, written with one SET (what the coordinator does).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import msgpack
import redis
from benchlib import commandstats

from graflow_dist.embedded import RedisServer

GF_MOVE = ("local v = redis.call('GET', KEYS[1]) if v then redis.call('SET', KEYS[2], v) "
           "redis.call('DEL', KEYS[1]) end")


def best_of(fn: Callable[[], None], repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def reports(r: redis.Redis, n: int, per_tx: int) -> None:
    event = msgpack.packb({"k": "done", "s": "s" * 32, "t": "tok", "i": "leaf", "o": {}})
    for start in range(0, n, per_tx):
        pipe = r.pipeline(transaction=True)
        for i in range(start, min(n, start + per_tx)):
            pipe.set(f"gf:run:x:result:{i}", b"\xc0", ex=86400)
            pipe.xadd("gf:events", {"d": event})
        pipe.execute()
    r.delete("gf:events")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", type=int, default=1000)
    n = ap.parse_args().tasks
    with RedisServer() as server:
        r = redis.Redis.from_url(server.url)
        print(f"1. completion reports for {n} tasks (SET result + XADD event):")
        for per_tx in (1, 16, 64):
            before = commandstats(r)
            reports(r, n, per_tx)  # once for the command count
            calls = sum((commandstats(r) - before).values()) - 1
            dt = best_of(lambda per_tx=per_tx: reports(r, n, per_tx))
            print(f"   {per_tx:>3} task(s) per MULTI/EXEC: {dt * 1e6 / n:7.1f} us/task, "
                  f"{calls / n:.2f} commands/task")
        print(f"2. result hand-over for {n} tasks (coordinator side, one pipeline):")

        def park() -> None:
            pipe = r.pipeline(transaction=False)
            for i in range(n):
                pipe.set(f"gf:run:x:result:{i}", b"\xc0", ex=86400)
            pipe.execute()

        def move() -> None:
            pipe = r.pipeline(transaction=False)
            for i in range(n):
                pipe.eval(GF_MOVE, 2, f"gf:run:x:result:{i}", f"gf:run:x:ch:leaf_{i}")
            pipe.execute()

        def inline() -> None:
            pipe = r.pipeline(transaction=False)
            for i in range(n):
                pipe.set(f"gf:run:x:ch:leaf_{i}", b"\xc0")
            pipe.execute()

        moves = []
        for _ in range(5):
            park()
            t0 = time.perf_counter()
            move()
            moves.append(time.perf_counter() - t0)
        moved, parked = statistics.median(moves) * 1e6 / n, best_of(park) * 1e6 / n
        print(f"   parked by the worker, then GET+SET+DEL: {moved:5.1f} us/task "
              f"(+ the worker's SET: {parked:.1f} us/task), "
              "4 commands/task")
        print(f"   result inside the event, one SET:       {best_of(inline) * 1e6 / n:5.1f}"
              " us/task, 1 command/task")
        r.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
