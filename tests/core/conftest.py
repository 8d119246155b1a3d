"""Fixtures for the in-process core tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from graflow_dist import ExecutionContext, TaskExecutionContext, task, workflow
from graflow_dist.wire.signing import SECRET_ENV

TEST_SECRET = "core-tests-secret-0123456789abcdef"


@pytest.fixture(autouse=True)
def signing_secret(monkeypatch: pytest.MonkeyPatch) -> str:
    """A fixed signing secret, so no test creates ``~/.graflow-dist/secret``."""
    monkeypatch.setenv(SECRET_ENV, TEST_SECRET)
    return TEST_SECRET


@dataclass
class PipelineCheckpoint:
    """A finished ``s1 >> s2 >> s3`` run that checkpointed after ``s1``."""

    base: Path
    context: ExecutionContext
    result: Any

    @property
    def pkl(self) -> Path:
        return self.base.with_name(self.base.name + ".pkl")

    @property
    def state(self) -> Path:
        return self.base.with_name(self.base.name + ".state.json")

    @property
    def meta(self) -> Path:
        return self.base.with_name(self.base.name + ".meta.json")


@pytest.fixture
def pipeline_checkpoint(tmp_path: Path) -> PipelineCheckpoint:
    """Run ``s1 >> s2 >> s3``; s1 stores channel data and asks for a checkpoint at
    ``tmp_path/ck/pipeline``. Each task appends its name to the channel's ``log``."""
    base = tmp_path / "ck" / "pipeline"
    with workflow("pipeline") as wf:

        @task(inject_context=True)
        def s1(ctx: TaskExecutionContext) -> dict[str, int]:
            channel = ctx.get_channel()
            channel.set("shape", (3, 4))
            channel.set("tags", {"a", "b"})
            channel.set("nested", {"k": {"inner": [1, (2, 3)]}, "none": None})
            channel.append("log", "s1")
            ctx.checkpoint(path=str(base), metadata={"stage": "extract"})
            return {"rows": 10}

        @task(inject_context=True)
        def s2(ctx: TaskExecutionContext, s1: dict[str, int]) -> int:
            ctx.get_channel().append("log", "s2")
            return s1["rows"] * 2

        @task(inject_context=True)
        def s3(ctx: TaskExecutionContext, s2: int) -> str:
            ctx.get_channel().append("log", "s3")
            return f"total {s2}"

        s1 >> s2 >> s3

    result, ctx = wf.execute(ret_context=True)
    return PipelineCheckpoint(base, ctx, result)
