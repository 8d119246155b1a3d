#!/usr/bin/env python
"""Redis commands per small run, by Lua script and by command (MONITOR).

    .venv/bin/python bench/run_commands.py [--runs 20] [--width 10] [--workers 2] [--top 40]

Starts a LocalCluster (its own redis-server on 127.0.0.1, a coordinator, the workers),
runs one warm-up run, then watches MONITOR while ``--runs`` runs of head + ``--width``
no-ops + join are submitted at once and awaited. Prints, per run: the round trips
(commands sent by the client, coordinator and workers, each script call counted once)
and the commands each Lua script ran inside Redis, by script, command and key pattern
(ids replaced by X). MONITOR slows Redis down: count with this, time with run.py.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import secrets
import sys
import threading
import time
from collections import Counter
from typing import Any

os.environ.setdefault("GRAFLOW_DIST_SECRET", "bench-" + secrets.token_hex(16))

import benchlib  # noqa: E402
import cloudpickle  # noqa: E402
import redis  # noqa: E402

from graflow_dist import Client  # noqa: E402
from graflow_dist.broker.keys import Keyspace  # noqa: E402
from graflow_dist.broker.scripts import SCRIPT_NAMES, source  # noqa: E402
from graflow_dist.embedded.cluster import LocalCluster  # noqa: E402

cloudpickle.register_pickle_by_value(benchlib)

MONITOR_SETTLE_S = 0.3
RUN_TIMEOUT_S = 60.0
_ID = re.compile(r"[0-9a-f]{8,}")


def script_names(keyspace: Keyspace) -> dict[str, str]:
    """SHA1 of each script as Redis runs it -> its name."""
    return {hashlib.sha1(source(name, keyspace).encode()).hexdigest(): name
            for name in SCRIPT_NAMES}


def pattern(word: str) -> str:
    return _ID.sub("X", word)[:60]


def watch(url: str, lines: list[dict[str, Any]], stop: threading.Event) -> None:
    with redis.Redis.from_url(url).monitor() as monitor:
        for entry in monitor.listen():
            lines.append(entry)
            if stop.is_set():
                return


def tally(lines: list[dict[str, Any]], names: dict[str, str]
          ) -> tuple[Counter[str], Counter[tuple[str, str, str]]]:
    """Round trips by command (script calls by script name), and the commands run
    inside scripts by (script, command, key pattern). A script's commands follow its
    EVALSHA in MONITOR's output (scripts run atomically)."""
    trips: Counter[str] = Counter()
    inside: Counter[tuple[str, str, str]] = Counter()
    script = ""
    for entry in lines:
        words = entry["command"].split()
        if not words:
            continue
        verb = words[0].upper()
        if entry.get("client_type") == "lua":
            inside[(script, verb, pattern(words[1]) if len(words) > 1 else "")] += 1
            continue
        script = ""
        if verb in ("EVALSHA", "EVAL") and len(words) > 1:
            script = names.get(words[1], "eval") if verb == "EVALSHA" else "eval"
            trips[f"{verb} {script}"] += 1
        else:
            trips[verb] += 1
    return trips, inside


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--width", type=int, default=10)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--top", type=int, default=40)
    args = ap.parse_args()
    with benchlib.terminate_on_signals(), LocalCluster(workers=args.workers) as cluster:
        client_r = redis.Redis.from_url(cluster.url)
        client = Client(redis_client=client_r)
        wf = benchlib.fanout_workflow(args.width)
        client.submit(wf).wait(timeout=RUN_TIMEOUT_S)  # warm-up: code stored, scripts loaded
        lines: list[dict[str, Any]] = []
        stop = threading.Event()
        watcher = threading.Thread(target=watch, args=(cluster.url, lines, stop), daemon=True)
        watcher.start()
        time.sleep(MONITOR_SETTLE_S)
        runs = [client.submit(wf) for _ in range(args.runs)]
        for run in runs:
            if run.wait(timeout=RUN_TIMEOUT_S) != args.width:
                raise RuntimeError(f"run {run.session_id} returned the wrong result")
        time.sleep(MONITOR_SETTLE_S)
        stop.set()
        client_r.ping()  # one more line, so the watcher sees the stop
        watcher.join(timeout=5)
        client_r.close()
    trips, inside = tally(lines, script_names(Keyspace.from_env()))
    n = args.runs
    print(f"{n} runs of 1+{args.width}+1 tasks, {args.workers} workers; per run:")
    print(f"\nround trips ({sum(trips.values()) / n:.1f}):")
    for what, count in trips.most_common(args.top):
        print(f"  {count / n:7.2f}  {what}")
    by_script = Counter[str]()
    for (script, _verb, _key), count in inside.items():
        by_script[script] += count
    jobs = sum(count for (_s, verb, key), count in inside.items()
               if verb == "ZADD" and key.startswith("rq:wip:"))  # one per claimed job
    print(f"\njobs claimed: {jobs / n:.2f}")
    print(f"\ncommands inside scripts ({sum(inside.values()) / n:.1f}; "
          f"{sum(inside.values()) / max(1, jobs):.1f} per job):")
    for script, count in by_script.most_common():
        print(f"  {count / n:7.2f}  {script}")
    print(f"\ntop {args.top} (script, command, key):")
    for (script, verb, key), count in inside.most_common(args.top):
        print(f"  {count / n:7.2f}  {script:13s} {verb:8s} {key}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
