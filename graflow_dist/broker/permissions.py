"""The Redis ACL graflow-dist needs, and a check of it before a service writes anything.

`acl_rules` is the minimal user (documented in ``docs/security.md``): the deployment's
keys and RQ's, the data commands of the read and write categories, transactions,
scripts, and nothing dangerous (no FLUSHALL, KEYS, CONFIG, DEBUG, ...; INFO is the one
exception, for the server's run id). `check_permissions` tries every command a role
issues, with the keys it issues it on, inside a MULTI that is discarded: Redis checks
the ACL when a command is queued, so nothing runs and nothing is written. Lua does not
roll back, so a user missing a permission must be found before the first commit, not
half-way through one (on Redis 7 the commit script also asks ``redis.acl_check_cmd``).
"""

from __future__ import annotations

from typing import Any

import redis
from redis.exceptions import NoPermissionError, ResponseError

from graflow_dist.broker.keys import RQ_QUEUES, RQ_WORKERS, Keyspace
from graflow_dist.errors import PermissionDeniedError

COORDINATOR, WORKER, CLIENT = "coordinator", "worker", "client"
ROLES = (COORDINATOR, WORKER, CLIENT)
_PROBE_SESSION = "acl-probe"
_SHA = "0" * 40


def acl_rules(prefix: str) -> list[str]:
    """The minimal ACL of a graflow-dist user of deployment ``prefix`` (the rules of
    ``ACL SETUSER <name> reset on >PASSWORD <rules>``)."""
    return [f"~{prefix}:*", "~rq:*", "resetchannels", "-@all", "+@read", "+@write",
            "+@transaction", "+@connection", "+eval", "+evalsha", "+script|load", "+time",
            "+select", "-@dangerous", "+info"]


def acl_setuser_command(user: str, prefix: str, password: str = "PASSWORD") -> str:
    """The ``ACL SETUSER`` line for ``user`` (as shown in the docs)."""
    return " ".join(["ACL SETUSER", user, "reset", "on", f">{password}", *acl_rules(prefix)])


def _common(ks: Keyspace) -> list[list[Any]]:
    run = ks.run(_PROBE_SESSION)
    return [
        ["PING"], ["SCRIPT", "LOAD", "return 1"], ["EVALSHA", _SHA, 0],
        ["EVAL", "return 1", 0], ["WATCH", run.meta], ["TIME"],
        ["TYPE", run.meta], ["RENAME", run.meta, ks.quarantine_head + "probe"],
        ["EXPIRE", ks.quarantine_head + "probe", 1], ["GET", ks.blob("probe")],
        ["HGETALL", run.meta], ["HGET", run.meta, "status"],
    ]


def _coordinator(ks: Keyspace, queue: str) -> list[list[Any]]:
    run = ks.run(_PROBE_SESSION)
    return [
        ["XREAD", "COUNT", 1, "STREAMS", ks.events, "0-0"], ["MGET", ks.cursor, ks.commits],
        ["SET", ks.cursor, "0-0"], ["INCR", ks.commits], ["GET", ks.leader],
        ["SET", ks.leader, "x", "PX", 1], ["PEXPIRE", ks.leader, 1], ["PTTL", ks.leader],
        ["DEL", ks.leader], ["INCR", ks.leader_epoch], ["INFO", "server"],
        ["SMEMBERS", ks.active_runs], ["SREM", ks.active_runs, "x"],
        ["ZCOUNT", ks.workers, 0, 1], ["ZRANGE", ks.leases, 0, -1, "WITHSCORES"],
        ["ZRANGEBYSCORE", ks.leases, "-inf", 0, "LIMIT", 0, 1], ["ZADD", ks.leases, 0, "x"],
        ["ZREM", ks.leases, "x"], ["HSET", ks.lease_owner, "x", "y"],
        ["HDEL", ks.lease_owner, "x"], ["HGET", ks.jobmap, "x"], ["HSET", ks.jobmap, "x", "y"],
        ["HDEL", ks.jobmap, "x"], ["HSET", ks.rq_job("probe"), "status", "queued"],
        ["HGET", ks.rq_job("probe"), "data"], ["DEL", ks.rq_job("probe")],
        ["SADD", RQ_QUEUES, ks.rq_queue(queue)], ["RPUSH", ks.rq_queue(queue), "x"],
        ["LPUSH", ks.wake(queue), 1], ["LTRIM", ks.wake(queue), 0, 0],
        ["ZADD", ks.rq_wip(queue), 0, "x"], ["ZREM", ks.rq_wip(queue), "x"],
        ["XADD", ks.dead_events, "MAXLEN", "~", 10, "*", "d", "x"],
        ["XTRIM", ks.events, "MINID", "0-0"], ["XADD", run.ended, "*", "status", "x"],
        ["HSET", run.meta, "x", "y"], ["HINCRBY", run.meta, "x", 1], ["HDEL", run.pending, "x"],
        ["ZADD", run.completed, "NX", 0, "x"], ["ZRANGE", run.completed, 0, -1],
        ["SADD", run.released, "x"], ["SMEMBERS", run.released], ["EXPIRE", run.meta, 1],
        ["PERSIST", ks.blob("probe")], ["SET", run.channel("probe"), "x"],
        ["SCAN", 0, "MATCH", run.channel_prefix + "*", "COUNT", 1],
        ["LRANGE", run.channel("probe"), 0, -1], ["ZADD", ks.checkpoint_index, 0, "x"],
        ["HSET", ks.checkpoint("probe"), "pkl", "x"],
        # parked tasks, task records, feedback timeouts, the coordinators' registry
        ["HSET", run.parked, "x", "y"], ["HDEL", run.parked, "x"], ["HSET", run.tasks, "x", "y"],
        ["ZADD", ks.coordinators, 0, "x"], ["HGET", ks.feedback("probe"), "request"],
        ["HSET", ks.feedback("probe"), "request", "x"], ["ZREM", ks.feedback_pending, "x"],
        ["SMEMBERS", run.feedback], ["EXPIRE", ks.feedback("probe"), 1],
    ]


def _worker(ks: Keyspace, queue: str, name: str) -> list[list[Any]]:
    run = ks.run(_PROBE_SESSION)
    worker_key = f"rq:worker:{name}"
    return [
        ["LPOP", ks.rq_queue(queue)], ["LLEN", ks.rq_queue(queue)],
        ["BLPOP", ks.wake(queue), 1], ["LPUSH", ks.wake(queue), 1],
        ["LTRIM", ks.wake(queue), 0, 0], ["ZADD", ks.leases, "XX", 0, "x"],
        ["ZREM", ks.leases, "x"], ["HGET", ks.lease_owner, "x"],
        ["HSET", ks.lease_owner, "x", "y"], ["HDEL", ks.lease_owner, "x"],
        ["HGET", ks.jobmap, "x"], ["HDEL", ks.jobmap, "x"],
        ["HGET", ks.rq_job("probe"), "data"], ["HSET", ks.rq_job("probe"), "status", "x"],
        ["DEL", ks.rq_job("probe")], ["ZADD", ks.rq_wip(queue), 0, "x"],
        ["ZREM", ks.rq_wip(queue), "x"], ["ZADD", ks.rq_failed(queue), 0, "x"],
        ["HINCRBY", run.meta, "running", 0], ["EXISTS", worker_key],
        ["HEXISTS", worker_key, "death"], ["DEL", worker_key], ["HSET", worker_key, "x", "y"],
        ["HINCRBY", worker_key, "x", 0], ["EXPIRE", worker_key, 1],
        ["SADD", RQ_WORKERS, worker_key], ["SREM", RQ_WORKERS, worker_key],
        ["SADD", f"{RQ_WORKERS}:{queue}", worker_key], ["ZADD", ks.workers, 0, name],
        ["ZREM", ks.workers, name], ["XADD", ks.events, "*", "d", "x"],
        ["HGET", run.dynamic, "x"],
        # task code, through the run's channel
        ["SET", run.channel("probe"), "x", "NX", "PX", 1], ["GET", run.channel("probe")],
        ["EXISTS", run.channel("probe")], ["DEL", run.channel("probe")],
        ["RPUSH", run.channel("probe"), "x"], ["LPUSH", run.channel("probe"), "x"],
        ["LRANGE", run.channel("probe"), 0, -1], ["PTTL", run.channel("probe")],
        ["PEXPIRE", run.channel("probe"), 1], ["MGET", run.channel("probe")],
        ["SCAN", 0, "MATCH", run.channel_prefix + "*", "COUNT", 1],
        ["SET", run.lock("probe"), "x", "NX", "PX", 1],
        # worker stats for the console; feedback requests of parked tasks
        ["HSET", ks.worker_stats, name, "x"], ["HSET", ks.feedback("probe"), "request", "x"],
        ["HGET", ks.feedback("probe"), "response"], ["ZADD", ks.feedback_index, 0, "x"],
        ["ZADD", ks.feedback_pending, 0, "x"], ["SADD", run.feedback, "x"],
    ]


def _client(ks: Keyspace, queue: str) -> list[list[Any]]:
    run = ks.run(_PROBE_SESSION)
    return [
        ["SET", ks.blob("probe"), "x", "EX", 1], ["DEL", run.meta, run.shape],
        ["HSET", run.meta, "x", "y"], ["HSET", run.shape, "x", "y"],
        ["SADD", ks.active_runs, "x"], ["ZADD", ks.all_runs, 0, "x"],
        ["XADD", ks.events, "*", "d", "x"], ["ZREVRANGE", ks.all_runs, 0, 1],
        ["XREAD", "COUNT", 1, "STREAMS", run.ended, "0-0"], ["GET", run.channel("probe")],
        ["XREVRANGE", ks.dead_events, "+", "-", "COUNT", 1], ["ZRANGE", ks.workers, 0, -1],
        ["SET", run.channel("probe"), "x"],
        # feedback answers; the console's reads
        ["HMGET", ks.feedback("probe"), "request", "response"],
        ["ZREVRANGE", ks.feedback_pending, 0, 1], ["ZREM", ks.feedback_pending, "x"],
        ["HSET", ks.feedback("probe"), "response", "x"], ["HGETALL", run.tasks],
        ["HGETALL", ks.worker_stats], ["ZRANGE", ks.coordinators, 0, -1, "WITHSCORES"],
    ]


def needed_commands(keyspace: Keyspace, role: str, queue: str | None = None,
                    worker_name: str = "probe") -> list[list[Any]]:
    """The commands ``role`` issues, on the keys it issues them on (their arguments are
    harmless: they are queued, never run)."""
    q = queue or keyspace.queue_name
    by_role = {COORDINATOR: lambda: _coordinator(keyspace, q),
               WORKER: lambda: _worker(keyspace, q, worker_name),
               CLIENT: lambda: _client(keyspace, q)}
    if role not in by_role:
        raise ValueError(f"unknown role {role!r}: one of {', '.join(ROLES)}")
    return _common(keyspace) + by_role[role]()


def denied_commands(client: redis.Redis, commands: list[list[Any]]) -> list[str]:
    """Those of ``commands`` the connection's user may not run (``"CMD key"``), found
    by queueing them in a MULTI that is discarded: two round trips (MULTI, then the
    rest at once), so a service starts as fast on a distant Redis as on a near one."""
    conn = client.connection_pool.get_connection()
    denied: list[str] = []
    try:
        conn.send_command("MULTI")
        try:
            conn.read_response()
        except NoPermissionError:
            return ["MULTI"]  # nothing else is sent: it would run, not be queued
        conn.send_packed_command(conn.pack_commands([*commands, ["DISCARD"]]))
        for cmd in commands:
            try:
                conn.read_response()
            except NoPermissionError:
                denied.append(" ".join(str(w) for w in cmd[:2]))
            except ResponseError:
                pass  # refused for another reason (not ours to judge here)
        try:
            conn.read_response()  # DISCARD's
        except ResponseError:
            pass
    except BaseException:
        conn.disconnect()  # mid-transaction: never hand this connection back
        raise
    finally:
        client.connection_pool.release(conn)
    return denied


def check_permissions(client: redis.Redis, keyspace: Keyspace, role: str,
                      queue: str | None = None, worker_name: str = "probe") -> None:
    """Raise `PermissionDeniedError` naming every command ``role`` needs that the Redis
    user may not run; nothing is run or written."""
    denied = denied_commands(client, needed_commands(keyspace, role, queue, worker_name))
    if denied:
        shown = "; ".join(denied[:8]) + (f"; and {len(denied) - 8} more"
                                         if len(denied) > 8 else "")
        raise PermissionDeniedError(
            f"the Redis user may not run what a {role} needs ({shown}); grant the ACL in "
            f"docs/security.md: {' '.join(acl_rules(keyspace.prefix))}")
