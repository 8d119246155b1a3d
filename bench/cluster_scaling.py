#!/usr/bin/env python
"""The per-run script shapes on one Redis vs a 3-master Redis Cluster (docs/scaling.md).

    .venv/bin/python bench/cluster_scaling.py [--requests 100000] [--clients 24]
        [--pipeline 8] [--masters 3] [--bin-dir DIR]

Starts its own redis-servers on free 127.0.0.1 ports (one plain server; then a cluster
of ``--masters`` masters, slots assigned with CLUSTER ADDSLOTS and joined with CLUSTER
MEET), loads three Lua scripts shaped like graflow-dist's hot ones (``submit_run``,
``report``, ``fenced_apply``: type checks, then the same kind and number of writes)
with every key carrying one hash tag, drives them with ``redis-benchmark`` (C, cheap, so
the load generator is not the Python client) and prints one table: requests/s, the
servers' CPU per request (``INFO cpu`` delta), the scripts' own time (``INFO
commandstats``), and the cores the servers used. It then shows what Redis Cluster says
to today's key layout: a script whose keys span slots, and one that touches a key it
did not declare (as ``claim``/``report`` do with ``rq:job:<id>`` and the run's meta).
Every server is stopped by PID at the end, also on errors and Ctrl-C.

Needs ``redis-server`` >= 7.0 and ``redis-benchmark`` (Debian: ``apt-get install
redis-server redis-tools``); ``--bin-dir`` points at another directory holding both.
This measures Redis, not the engine: graflow-dist itself cannot run on a cluster today.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import redis
from benchlib import terminate_on_signals, uninterruptible

from graflow_dist.embedded.processes import stop_process

SLOTS = 16384
CLUSTER_BUS_OFFSET = 10000
START_TIMEOUT_S = 30.0
STREAM_MAXLEN = 10_000  # the event streams are trimmed, as the coordinator trims its own
RESULT_TTL_S = 3600

# Lua shaped like graflow-dist's scripts (broker/lua/*.lua): each checks the types of
# the keys it writes (TYPE per key), then writes. All keys carry the run's hash tag, as
# they would in a sharded layout (per-shard queue, stream, leases and fence included).
TYPE_CHECKS = """
for i = 1, #KEYS do
  local t = redis.call('TYPE', KEYS[i])['ok']
  if t ~= 'none' and t ~= ARGV[i] then return {'WRONG_TYPE', KEYS[i], t} end
end
"""
SHAPES: dict[str, tuple[str, list[str], list[str]]] = {
    # name: (body, keys (types: hash, zset, list, stream, string, set), extra ARGV)
    "submit_run": ("""
local n = #KEYS
local meta, shape, pending, queue, events, job = KEYS[1], KEYS[2], KEYS[3], KEYS[4],
  KEYS[5], KEYS[6]
local status = redis.call('HGET', meta, 'status')
redis.call('HSET', meta, 'status', 'submitted', 'incarnation', ARGV[n + 1], 'total', 12,
  'done', 0, 'pending', 1, 'queue', 'graflow', 'graph_hash', ARGV[n + 2],
  'submitted_at', ARGV[n + 3], 'max_steps', 10000, 'default_max_retries', 0)
redis.call('HSET', shape, 'head', ARGV[n + 4], 'join', ARGV[n + 4], 't0', ARGV[n + 4],
  't1', ARGV[n + 4], 't2', ARGV[n + 4], 't3', ARGV[n + 4])
redis.call('HSET', pending, ARGV[n + 1], ARGV[n + 4])
redis.call('HSET', job, 'data', ARGV[n + 4], 'origin', 'graflow', 'status', 'queued',
  'gf_session', ARGV[n + 2], 'gf_tasks', 1, 'gf_incarnation', ARGV[n + 1])
redis.call('RPUSH', queue, ARGV[n + 1])
redis.call('XADD', events, 'MAXLEN', '~', %(maxlen)d, '*', 'd', ARGV[n + 4])
return {1}
""", ["hash:meta", "hash:shape", "hash:pending", "list:queue", "stream:events",
      "hash:job"], ["inc-0001", "graph-0001", "1764516000.0", "x" * 64]),
    "report": ("""
local events, leases, owners, jobmap, worker, job, meta = KEYS[1], KEYS[2], KEYS[3],
  KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local n = #KEYS
for i = n + 3, #ARGV do redis.call('XADD', events, 'MAXLEN', '~', %(maxlen)d, '*', 'd',
  ARGV[i]) end
local owner = redis.call('HGET', owners, ARGV[n + 1])
redis.call('HINCRBY', meta, 'running', -1)
redis.call('ZREM', leases, ARGV[n + 1])
redis.call('HDEL', owners, ARGV[n + 1])
redis.call('HDEL', jobmap, ARGV[n + 1])
redis.call('DEL', job)
redis.call('HINCRBY', worker, 'successful_job_count', 1)
return owner and 1 or 0
""", ["stream:events", "zset:leases", "hash:owners", "hash:jobmap", "hash:worker",
      "hash:job", "hash:meta"], ["job-0001", "worker-1", "e" * 96]),
    "fenced_apply": ("""
local leader, commits, completed, tasks, result, meta, ended = KEYS[1], KEYS[2], KEYS[3],
  KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local n = #KEYS
local holder = redis.call('GET', leader)
if holder and holder ~= ARGV[n + 1] then return -1 end
redis.call('GET', commits)
redis.call('INCR', commits)
redis.call('ZADD', completed, 1, ARGV[n + 2])
redis.call('HSET', tasks, ARGV[n + 2], ARGV[n + 3])
redis.call('SET', result, ARGV[n + 3], 'EX', %(ttl)d)
redis.call('HINCRBY', meta, 'done', 1)
redis.call('HINCRBY', meta, 'steps', 1)
redis.call('HSET', meta, 'updated_at', '1764516000.5', 'last_task', ARGV[n + 2])
return 0
""", ["string:leader", "string:commits", "zset:completed", "hash:tasks", "string:result",
      "hash:meta", "stream:ended"], ["coord-1", "task-0001", "r" * 48]),
}


@dataclass
class Server:
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=30)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=100_000, help="script calls per "
                    "shape and setup (default 100,000)")
    ap.add_argument("--clients", type=int, default=24, help="redis-benchmark connections")
    ap.add_argument("--pipeline", type=int, default=8, help="requests per round trip")
    ap.add_argument("--threads", type=int, default=2, help="redis-benchmark threads")
    ap.add_argument("--masters", type=int, default=3)
    ap.add_argument("--runs", type=int, default=100_000, help="distinct run ids the "
                    "keys are drawn from (redis-benchmark -r)")
    ap.add_argument("--bin-dir", default=None, help="directory with redis-server and "
                    "redis-benchmark (default: PATH)")
    return ap.parse_args(argv)


def binary(name: str, bin_dir: str | None) -> str:
    path = (str(Path(bin_dir) / name) if bin_dir else shutil.which(name)) or ""
    if not os.access(path, os.X_OK):
        sys.exit(f"{name} not found{' in ' + bin_dir if bin_dir else ' on PATH'}: "
                 "apt-get install redis-server redis-tools, or pass --bin-dir")
    return path


def free_port_pair() -> int:
    """A free loopback port whose cluster bus port (port + 10000) is free too."""
    for _ in range(200):
        port = random.randint(20000, 55000)
        try:
            for p in (port, port + CLUSTER_BUS_OFFSET):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", p))
        except OSError:
            continue
        return port
    raise RuntimeError("no free pair of loopback ports found")


def start_server(exe: str, workdir: Path, cluster: bool) -> Server:
    port = free_port_pair()
    node_dir = workdir / str(port)
    node_dir.mkdir(parents=True)
    args = [exe, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(node_dir),
            "--save", "", "--appendonly", "no", "--protected-mode", "yes"]
    if cluster:
        args += ["--cluster-enabled", "yes", "--cluster-config-file",
                 str(node_dir / "nodes.conf")]
    log = open(node_dir / "redis.log", "wb")  # noqa: SIM115 - the server's lifetime
    server = Server(port, subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT))
    log.close()
    try:
        wait_for(lambda: server.client.ping(), f"redis-server on port {port}")
    except BaseException:
        stop_process(server.proc)
        raise
    return server


def wait_for(pred, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            if pred():
                return
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


def form_cluster(servers: list[Server]) -> None:
    """Split the slots evenly, MEET every node from the first, wait for state ok on all."""
    per = SLOTS // len(servers)
    for i, server in enumerate(servers):
        last = SLOTS - 1 if i == len(servers) - 1 else (i + 1) * per - 1
        server.client.execute_command("CLUSTER ADDSLOTSRANGE", i * per, last)
    for server in servers[1:]:
        servers[0].client.execute_command("CLUSTER MEET", "127.0.0.1", server.port)
    try:
        wait_for(lambda: all(cluster_ok(s) for s in servers), "cluster_state:ok on every node")
    except RuntimeError:
        for s in servers:
            print(s.port, s.client.execute_command("CLUSTER INFO"), file=sys.stderr)
        raise


def cluster_ok(server: Server) -> bool:
    info = server.client.execute_command("CLUSTER INFO")  # redis-py parses it to a dict
    state = info.get("cluster_state") if isinstance(info, dict) else info
    return state in ("ok", b"ok") or b"cluster_state:ok" in (info or b"")


def script_source(name: str) -> str:
    body, _, _ = SHAPES[name]
    return TYPE_CHECKS + body % {"maxlen": STREAM_MAXLEN, "ttl": RESULT_TTL_S}


def server_cpu_s(servers: list[Server]) -> float:
    total = 0.0
    for s in servers:
        cpu = s.client.info("cpu")
        total += float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])
    return total


def script_usec(servers: list[Server]) -> tuple[int, int]:
    calls = usec = 0
    for s in servers:
        stats = s.client.info("commandstats").get("cmdstat_evalsha", {})
        calls += int(stats.get("calls", 0))
        usec += int(stats.get("usec", 0))
    return calls, usec


def run_shape(bench_exe: str, servers: list[Server], cluster: bool, name: str,
              args: argparse.Namespace) -> dict[str, float]:
    sha = ""
    for s in servers:
        sha = s.client.script_load(script_source(name))
    _, kinds, extra = SHAPES[name]
    # One hash tag per request: redis-benchmark replaces {tag} with a tag of a slot the
    # node it sends to owns; the run id varies inside it.
    keys = [f"g:{{tag}}:r__rand_int__:{kind.split(':')[1]}" for kind in kinds]
    types = [kind.split(":")[0] for kind in kinds]
    cmd = [bench_exe, "-h", "127.0.0.1", "-p", str(servers[0].port), "-n",
           str(args.requests), "-c", str(args.clients), "-P", str(args.pipeline),
           "--threads", str(args.threads), "-r", str(args.runs), "-q", "--csv"]
    if cluster:
        cmd.append("--cluster")
    cmd += ["evalsha", sha, str(len(keys)), *keys, *types, *extra]
    calls0, usec0 = script_usec(servers)
    cpu0 = server_cpu_s(servers)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=300)
    finally:
        stop_process(proc)
    wall = time.perf_counter() - t0
    cpu = server_cpu_s(servers) - cpu0
    calls1, usec1 = script_usec(servers)
    calls, usec = calls1 - calls0, usec1 - usec0
    if proc.returncode != 0:
        raise RuntimeError(f"redis-benchmark failed ({proc.returncode}): "
                           f"{(err or out).decode(errors='replace')[-500:]}")
    if calls < args.requests:
        raise RuntimeError(f"{name}: servers saw {calls} script calls, "
                           f"expected {args.requests}")
    return {"rps": calls / wall, "server_cpu_us": cpu * 1e6 / calls,
            "script_us": usec / calls, "server_cores": cpu / wall}


def cluster_refusals(servers: list[Server]) -> list[tuple[str, str]]:
    """What the cluster answers to today's layout: keys of several slots in one script,
    and keys a script reads without declaring them (``claim`` reads ``rq:job:<id>`` and
    the run's meta by name), on the node that owns them and on another node."""
    node = servers[0].client
    mine = SLOTS // len(servers)  # the first node owns slots 0 .. mine - 1 (form_cluster)

    def job_key(on_first: bool) -> str:
        return next(k for k in (f"rq:job:gf.{i}" for i in range(100_000))
                    if (node.execute_command("CLUSTER KEYSLOT", k) < mine) == on_first)

    declared = next(k for k in (f"graflow:{{t{i}}}:leases" for i in range(100_000))
                    if node.execute_command("CLUSTER KEYSLOT", k) < mine)
    read = "return redis.call('HGET', ARGV[1], 'gf_session')"
    cases = [
        ("fenced_apply-like: the leader's keys and two runs' keys declared",
         "return redis.call('INCR', KEYS[1])",
         ["graflow:coordinator:commits", "graflow:run:a:meta", "graflow:run:b:meta"], []),
        ("claim-like: an undeclared rq:job:<id> of another slot on this node", read,
         [declared], [job_key(True)]),
        ("claim-like: an undeclared rq:job:<id> on another node", read,
         [declared], [job_key(False)]),
    ]
    out = []
    for what, lua, keys, argv in cases:
        try:
            node.eval(lua, len(keys), *keys, *argv)
            out.append((what, "accepted"))
        except redis.ResponseError as exc:
            out.append((what, "refused: " + str(exc).split("\n")[0][:80]))
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    server_exe = binary("redis-server", args.bin_dir)
    bench_exe = binary("redis-benchmark", args.bin_dir)
    servers: list[Server] = []
    rows: list[tuple[str, str, dict[str, float]]] = []
    with terminate_on_signals(), tempfile.TemporaryDirectory(prefix="gf-cluster-") as tmp:
        try:
            version = ""
            for setup, n, cluster in (("1 node", 1, False),
                                      (f"{args.masters} masters", args.masters, True)):
                for _ in range(n):  # one by one: the finally below stops those started
                    servers.append(start_server(server_exe,
                                                Path(tmp) / setup.replace(" ", "-"), cluster))
                version = servers[0].client.info("server")["redis_version"]
                if cluster:
                    form_cluster(servers)
                for name in SHAPES:
                    rows.append((name, setup, run_shape(bench_exe, servers, cluster, name,
                                                        args)))
                    print(f"{name:>13} on {setup}: {rows[-1][2]['rps']:,.0f} calls/s",
                          flush=True)
                refusals = cluster_refusals(servers) if cluster else []
                with uninterruptible():
                    for s in servers:
                        stop_process(s.proc)
                servers = []
        finally:
            with uninterruptible():
                for s in servers:
                    stop_process(s.proc)
    print(f"\nredis-server {version}, {os.cpu_count()} CPUs, redis-benchmark -n "
          f"{args.requests} -c {args.clients} -P {args.pipeline} --threads {args.threads}")
    print(f"{'shape':>13} {'setup':>10} {'calls/s':>9} {'server CPU us/call':>19} "
          f"{'script us/call':>15} {'server cores':>13}")
    for name, setup, r in rows:
        print(f"{name:>13} {setup:>10} {r['rps']:>9,.0f} {r['server_cpu_us']:>19.1f} "
              f"{r['script_us']:>15.1f} {r['server_cores']:>13.2f}")
    print("\nRedis Cluster on today's key layout:")
    for what, answer in refusals:
        print(f"  {what}: {answer}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
