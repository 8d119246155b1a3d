"""``@task`` forms, task instances, and wiring with ``>>``, ``|``, chain and parallel."""

from __future__ import annotations

import pytest

import graflow_dist
from graflow_dist import (
    AtLeastNGroupPolicy,
    CriticalGroupPolicy,
    ParallelGroup,
    RetryPolicy,
    TaskExecutionContext,
    TaskWrapper,
    chain,
    parallel,
    task,
    workflow,
)
from graflow_dist.core.decorators import task as task_from_module
from graflow_dist.errors import DuplicateTaskError
from graflow_dist.scheduler import GroupPolicySpec

# --- @task forms ------------------------------------------------------------------------


def test_bare_decorator_uses_the_function_name() -> None:
    with workflow("w") as wf:

        @task
        def extract() -> int:
            """Docs stay."""
            return 1

    assert isinstance(extract, TaskWrapper)
    assert extract.task_id == "extract"
    assert extract.__name__ == "extract" and extract.__doc__ == "Docs stay."
    assert list(wf.graph.nodes) == ["extract"]  # registered when declared
    assert wf.graph.nodes["extract"]["task"] is extract


def test_positional_and_keyword_ids() -> None:
    with workflow("w") as wf:

        @task("first")
        def one() -> None: ...

        @task(id="second")
        def two() -> None: ...

        @task()
        def three() -> None: ...

    assert (one.task_id, two.task_id, three.task_id) == ("first", "second", "three")
    assert list(wf.graph.nodes) == ["first", "second", "three"]


def test_options_are_recorded() -> None:
    policy = RetryPolicy(max_retries=4, initial_interval=0.1)
    with workflow("w"):

        @task(id="t", inject_context=True, max_cycles=7, max_retries=2)
        def t(ctx: TaskExecutionContext) -> None: ...

        @task(retry_policy=policy, max_retries=1)
        def r() -> None: ...

    assert t.inject_context and t.max_cycles == 7 and t.max_retries == 2
    assert r.retry_policy is policy
    assert r.max_retries == 4  # the policy wins, as in Graflow
    assert task_from_module is task and graflow_dist.task is task


def test_duplicate_id_in_one_workflow_is_refused() -> None:
    with workflow("w"):

        @task("same")
        def a() -> None: ...

        with pytest.raises(DuplicateTaskError, match="'same'"):

            @task("same")
            def b() -> None: ...


def test_calling_without_arguments_runs_the_function() -> None:
    @task
    def plain() -> int:
        return 42

    @task(inject_context=True)
    def with_ctx(ctx: TaskExecutionContext) -> str:
        return ctx.task_id

    assert plain() == 42
    assert with_ctx() == "with_ctx"


def test_calling_without_arguments_raises_what_the_function_raises() -> None:
    error = ValueError("direct call")

    @task
    def broken() -> None:
        raise error

    with pytest.raises(ValueError) as info:
        broken()
    assert info.value is error


def test_calling_with_keywords_creates_a_bound_instance() -> None:
    with workflow("w") as wf:

        @task
        def add(x: int, y: int) -> int:
            return x + y

        named = add(task_id="add_1", x=1, y=2)
        anonymous = add(x=5, y=6)

    assert isinstance(named, TaskWrapper) and named is not add
    assert named.task_id == "add_1" and named.bound_kwargs == {"x": 1, "y": 2}
    assert anonymous.task_id.startswith("add_") and anonymous.task_id != "add"
    assert {"add", "add_1", anonymous.task_id} == set(wf.graph.nodes)
    assert add.bound_kwargs == {}


def test_positional_call_is_a_clear_type_error() -> None:
    @task
    def f(x: int) -> int:
        return x

    with pytest.raises(TypeError, match="keyword arguments"):
        f(1)


def test_retry_policy_backoff() -> None:
    policy = RetryPolicy(max_retries=5, initial_interval=1.0, backoff_factor=2.0, max_interval=5)
    assert [policy.get_delay(k) for k in range(4)] == [1.0, 2.0, 4.0, 5.0]
    assert RetryPolicy().max_retries == 0 and RetryPolicy().initial_interval == 1.0


# --- wiring ------------------------------------------------------------------------------


def _tasks(*names: str) -> list[TaskWrapper]:
    return [TaskWrapper(n, lambda: None) for n in names]


def test_rshift_adds_edges_left_to_right() -> None:
    with workflow("w") as wf:
        a, b, c = _tasks("a", "b", "c")
        seq = a >> b >> c
    assert wf.graph.edges == [("a", "b"), ("b", "c")]
    assert seq.task_id == "a"
    assert wf.graph.successors("a") == ["b"] and wf.graph.predecessors("c") == ["b"]


def test_lshift_is_the_mirror() -> None:
    with workflow("w") as wf:
        a, b = _tasks("a", "b")
        b << a
    assert wf.graph.edges == [("a", "b")]


def test_chain_and_parallel() -> None:
    with workflow("w") as wf:
        a, b, c, d, e = _tasks("a", "b", "c", "d", "e")
        chain(a, b, c)
        group = parallel(d, e)
    assert ("a", "b") in wf.graph.edges and ("b", "c") in wf.graph.edges
    assert isinstance(group, ParallelGroup) and group.member_ids == ["d", "e"]
    with pytest.raises(ValueError, match="at least two"):
        parallel(a)
    with pytest.raises(ValueError, match="at least one"):
        chain()


def test_group_joins_at_its_own_node() -> None:
    with workflow("w") as wf:
        a, b, c, d = _tasks("a", "b", "c", "d")
        a >> (b | c) >> d
    assert wf.graph.edges == [("a", "ParallelGroup_1"), ("ParallelGroup_1", "d")]
    assert wf.graph.get_start_nodes() == ["a"]
    group = wf.graph.get_node("ParallelGroup_1")
    assert group.member_ids == ["b", "c"]


def test_or_chains_flatten_into_one_group() -> None:
    with workflow("w") as wf:
        a, b, c, d = _tasks("a", "b", "c", "d")
        group = a | b | c
        group2 = d | (a | b)
    assert group.member_ids == ["a", "b", "c"]
    assert group2.member_ids == ["d", "a", "b"]
    groups = [n for n in wf.graph.nodes if n.startswith("ParallelGroup_")]
    assert sorted(groups) == sorted([group.task_id, group2.task_id])


def test_group_can_be_renamed() -> None:
    with workflow("w") as wf:
        a, b, c = _tasks("a", "b", "c")
        group = (a | b).set_group_name("fanout")
        group >> c
    assert group.task_id == "fanout"
    assert wf.graph.edges == [("fanout", "c")]


def test_group_policies_are_validated() -> None:
    with workflow("w"):
        a, b, c = _tasks("a", "b", "c")
        group = a | b | c
        assert group.with_execution(policy="best_effort") is group
        assert group.policy == GroupPolicySpec("best_effort")
        group.with_execution(policy=AtLeastNGroupPolicy(2))
        assert group.policy == GroupPolicySpec("at_least_n", min_success=2)
        group.with_execution(policy=CriticalGroupPolicy(["a"]))
        assert group.policy == GroupPolicySpec("critical", critical_tasks=("a",))
        with pytest.raises(ValueError, match="cannot be met"):
            group.with_execution(policy=AtLeastNGroupPolicy(4))
        with pytest.raises(ValueError, match="not members"):
            group.with_execution(policy=CriticalGroupPolicy(["zz"]))
        with pytest.raises(ValueError, match="unknown group policy"):
            group.with_execution(policy="mostly")
        with pytest.raises(ValueError, match=">= 1"):
            AtLeastNGroupPolicy(0)


def test_workflow_name_and_repr() -> None:
    with workflow("etl") as wf:
        _tasks("a")
    assert wf.name == "etl"
    assert "etl" in repr(wf)
