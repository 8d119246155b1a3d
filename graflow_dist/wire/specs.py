"""Strict decoders of the scheduler's data: task specs, node shapes, group progress,
task outcomes and frontiers, from what Redis or a checkpoint file holds.

A TaskSpec has one encoding in Redis (queued batches and a run's pending hash): the
positional list of `encode_spec`. Checkpoints keep the readable dict of
`TaskSpec.to_dict` in ``.state.json`` (the seed's format).
"""

from __future__ import annotations

import math
from typing import Any

from graflow_dist.errors import WireError
from graflow_dist.names import is_task_id, is_token
from graflow_dist.scheduler.events import CheckpointRequest, NextTask, TaskOutcome
from graflow_dist.scheduler.frontier import FrontierSnapshot, GroupProgress, ParkedTask
from graflow_dist.scheduler.specs import (
    DEFAULT_MAX_CYCLES,
    GroupPolicySpec,
    NodeShape,
    RetrySettings,
    TaskSpec,
)
from graflow_dist.wire import fields as f

_SPEC_FIELDS = ("task_id", "token", "cycle", "attempt", "crashes", "group", "not_before")
_POLICY_KINDS = frozenset({"strict", "best_effort", "at_least_n", "critical"})


def encode_spec(spec: TaskSpec) -> list[Any]:
    return [spec.task_id, spec.token, spec.cycle, spec.attempt, spec.crashes, spec.group,
            spec.not_before]


def decode_spec(item: Any, what: str) -> TaskSpec:
    """A spec from its positional encoding."""
    if not isinstance(item, list | tuple) or len(item) != len(_SPEC_FIELDS):
        raise WireError(f"{what}: malformed task spec {f.shown(item)}")
    spec = _plain_spec(*item)
    return spec if spec is not None else spec_from_dict(
        dict(zip(_SPEC_FIELDS, item, strict=True)), what)


def spec_from_dict(body: Any, what: str) -> TaskSpec:
    """A spec from its dict form (``.state.json``), every field checked."""
    if type(body) is dict:
        get = body.get
        spec = _plain_spec(get("task_id"), get("token"), get("cycle", 0), get("attempt", 1),
                           get("crashes", 0), get("group"), get("not_before", 0.0))
        if spec is not None:
            return spec
    body = f.mapping(body, what)
    task_id = f.text(body, "task_id", what)
    token = f.text(body, "token", what)
    if not is_task_id(task_id) or not is_token(token):
        raise WireError(f"{what}: task spec needs a valid task id and token, got "
                        f"{f.shown(task_id)} / {f.shown(token)}")
    return TaskSpec(
        task_id=task_id, token=token,
        cycle=f.integer(body, "cycle", what, 0, minimum=0),
        attempt=f.integer(body, "attempt", what, 1, minimum=1),
        crashes=f.integer(body, "crashes", what, 0, minimum=0),
        group=f.optional_text(body, "group", what),
        not_before=f.number(body, "not_before", what, 0.0, minimum=0.0),
    )


def _task_ids(body: dict[str, Any], key: str, what: str, default: Any = None) -> list[str]:
    ids = f.text_list(body, key, what, [] if default is None else default)
    bad = [t for t in ids if not is_task_id(t)]
    if bad:
        raise WireError(f"{what}: {key} holds {f.shown(bad[0])}, not a task id")
    return ids


def _plain_spec(task_id: Any, token: Any, cycle: Any, attempt: Any, crashes: Any,
                group: Any, not_before: Any) -> TaskSpec | None:
    """The spec if every field is well-formed, else None (then the field-by-field
    decoder names what is wrong): checkpoints and frontiers hold thousands of specs."""
    if (type(task_id) is str and type(token) is str and is_task_id(task_id)
            and is_token(token)
            and type(cycle) is int and cycle >= 0 and type(attempt) is int and attempt >= 1
            and type(crashes) is int and crashes >= 0
            and (group is None or type(group) is str)
            and type(not_before) in (int, float) and 0 <= not_before < math.inf):
        return TaskSpec(task_id, token, cycle, attempt, crashes, group, float(not_before))
    return None


def node_shape_from_dict(body: Any, what: str, shared: dict[Any, Any] | None = None
                         ) -> NodeShape:
    """A node shape, every field checked. ``shared`` (kept by the caller across the
    nodes of one graph) makes equal retry settings and code hashes one object each:
    a 200,000-node graph then holds a handful of them, not 200,000."""
    plain = _plain_shape(body, shared)
    if plain is not None:
        return plain
    body = f.mapping(body, what)
    policy = body.get("policy")
    members = body.get("members")
    retry = f.submap(body, "retry", what, {})
    node_id = f.text(body, "node_id", what)
    if not is_task_id(node_id):
        raise WireError(f"{what}: node id {f.shown(node_id)} is not a task id")
    settings = RetrySettings(
        max_retries=f.integer(retry, "max_retries", what, 0, minimum=0),
        initial_interval=f.number(retry, "initial_interval", what, 0.0, minimum=0.0),
        backoff_factor=f.number(retry, "backoff_factor", what, 2.0, minimum=0.0),
        max_interval=f.number(retry, "max_interval", what, 60.0, minimum=0.0),
        jitter=f.flag(retry, "jitter", what, False),
    )
    code = f.text(body, "code", what, "")
    if shared is not None:
        settings = shared.setdefault(settings, settings)
        code = shared.setdefault(code, code)
    return NodeShape(
        node_id=node_id,
        successors=_task_ids(body, "successors", what),
        predecessors=_task_ids(body, "predecessors", what),
        members=None if members is None else _task_ids(body, "members", what),
        policy=None if policy is None else _policy(policy, what),
        max_cycles=f.integer(body, "max_cycles", what, DEFAULT_MAX_CYCLES, minimum=1),
        retry=settings,
        timeout=_timeout(body, what),
        code=code,
    )


def _timeout(body: dict[str, Any], what: str) -> float | None:
    if body.get("timeout") is None:
        return None
    timeout = f.number(body, "timeout", what)
    if timeout <= 0:
        raise WireError(f"{what}: field 'timeout' must be > 0 seconds, got {timeout}")
    return timeout


_NO_RETRY_BODY = NodeShape("").to_dict()["retry"]
_NONE: tuple[str, ...] = ()


def _plain_shape(body: Any, shared: dict[Any, Any] | None) -> NodeShape | None:
    """The shape of a plain task (no group, no policy, no retries, no timeout) when
    every field is well-formed, else None: a large graph is mostly such nodes."""
    if type(body) is not dict or body.get("policy") is not None or \
            body.get("members") is not None or body.get("timeout") is not None:
        return None
    node_id, successors, predecessors = (body.get("node_id"), body.get("successors", []),
                                         body.get("predecessors", []))
    max_cycles, retry, code = (body.get("max_cycles", DEFAULT_MAX_CYCLES),
                               body.get("retry", _NO_RETRY_BODY), body.get("code", ""))
    if not (type(node_id) is str and is_task_id(node_id)
            and type(max_cycles) is int and max_cycles >= 1
            and type(code) is str and retry == _NO_RETRY_BODY
            and all(type(retry[k]) is type(v) for k, v in _NO_RETRY_BODY.items())
            and type(successors) is list and all(is_task_id(n) for n in successors)
            and type(predecessors) is list and all(is_task_id(n) for n in predecessors)):
        return None
    if shared is not None:
        code = shared.setdefault(code, code)
        node_id = shared.setdefault(node_id, node_id)
    return NodeShape(node_id, successors or _NONE, predecessors or _NONE,
                     max_cycles=max_cycles, code=code)


def _policy(body: Any, what: str) -> GroupPolicySpec:
    body = f.mapping(body, what)
    kind = f.text(body, "kind", what)
    if kind not in _POLICY_KINDS:
        raise WireError(f"{what}: unknown group policy {kind!r}")
    return GroupPolicySpec(kind, f.integer(body, "min_success", what, 0, minimum=0),
                           tuple(f.text_list(body, "critical_tasks", what, [])))


def group_progress_from_dict(body: Any, what: str) -> GroupProgress:
    body = f.mapping(body, what)
    failed = f.submap(body, "failed", what, {})
    if not all(isinstance(v, str) for v in failed.values()):
        raise WireError(f"{what}: group failures must map task ids to strings")
    return GroupProgress(f.text_list(body, "outstanding", what, []),
                         f.text_list(body, "succeeded", what, []), dict(failed))


def outcome_from_dict(body: Any, what: str) -> TaskOutcome:
    body = f.mapping(body, what)
    next_tasks = body.get("next_tasks") or []
    if not isinstance(next_tasks, list):
        raise WireError(f"{what}: next_tasks must be a list")
    dynamic = []
    for item in next_tasks:
        item = f.mapping(item, what)
        shape = item.get("shape")
        task_id = f.text(item, "task_id", what)
        if not is_task_id(task_id):
            raise WireError(f"{what}: next task {f.shown(task_id)} is not a task id")
        nodes = item.get("nodes") or []  # a new group's members, a chain's tasks, a join
        if not isinstance(nodes, list):
            raise WireError(f"{what}: next_task nodes must be a list")
        dynamic.append(NextTask(task_id, f.flag(item, "goto", what, False),
                                None if shape is None else node_shape_from_dict(shape, what),
                                tuple(node_shape_from_dict(n, what) for n in nodes)))
    checkpoint = body.get("checkpoint")
    request = None
    if checkpoint is not None:
        checkpoint = f.mapping(checkpoint, what)
        request = CheckpointRequest(f.optional_text(checkpoint, "path", what),
                                    dict(f.submap(checkpoint, "metadata", what, {})))
    return TaskOutcome(
        iterate=f.flag(body, "iterate", what, False), next_tasks=dynamic,
        terminate=f.optional_text(body, "terminate", what),
        cancel=f.optional_text(body, "cancel", what), checkpoint=request,
    )


def frontier_from_dict(body: Any, what: str) -> FrontierSnapshot:
    """A frontier from `FrontierSnapshot.to_dict` form (checkpoints)."""
    body = f.mapping(body, what)
    pending = body.get("pending_tasks", [])
    if not isinstance(pending, list):
        raise WireError(f"{what}: pending_tasks must be a list")
    cycles = f.submap(body, "cycle_counts", what, {})
    crash_workers = f.submap(body, "crash_workers", what, {})
    return FrontierSnapshot(
        session_id=f.text(body, "session_id", what),
        steps=f.integer(body, "steps", what, 0, minimum=0),
        completed_tasks=f.text_list(body, "completed_tasks", what, []),
        released=f.text_list(body, "released", what, []),
        pending_tasks=[spec_from_dict(s, f"{what}: pending task") for s in pending],
        cycle_counts={k: f.integer(cycles, k, what, minimum=0) for k in cycles},
        groups={g: group_progress_from_dict(p, what)
                for g, p in f.submap(body, "groups", what, {}).items()},
        active=f.text_list(body, "active", what, []),
        dispatch_seq=f.integer(body, "dispatch_seq", what, 0, minimum=0),
        crash_workers={t: f.text_list(crash_workers, t, what) for t in crash_workers},
        parked={k: parked_from_dict(v, what)
                for k, v in f.submap(body, "parked", what, {}).items()},
    )


def parked_from_dict(body: Any, what: str) -> ParkedTask:
    body = f.mapping(body, what)
    return ParkedTask(f.text(body, "token", what),
                      f.number(body, "deadline", what, 0.0, minimum=0.0),
                      f.flag(body, "timed_out", what, False))
