"""The distributed runtime end to end: real redis-server, coordinator and workers."""

from __future__ import annotations

from graflow_dist import Client, parallel, task, workflow
from graflow_dist.embedded.cluster import LocalCluster


def test_fan_out_join_and_chain_on_a_cluster(cluster: LocalCluster) -> None:
    with workflow("smoke") as wf:

        @task
        def source() -> int:
            return 3

        def leaf(i: int):  # noqa: ANN202
            @task(f"leaf_{i}")
            def run(source: int) -> int:
                return source * i

            return run

        @task(inject_context=True)
        def join(ctx) -> int:  # noqa: ANN001
            return sum(ctx.get_result(f"leaf_{i}") for i in range(20))

        source >> parallel(*[leaf(i) for i in range(20)]) >> join

    run = Client(cluster.url).submit(wf)
    assert run.wait(timeout=30) == 3 * sum(range(20))
    ctx = run.context()
    assert set(ctx.completed_tasks) >= {"source", "join", *(f"leaf_{i}" for i in range(20))}
    assert run.progress().status == "completed"
