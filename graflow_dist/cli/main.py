"""``graflow-dist``: run workers and coordinators, submit and watch runs, a local cluster."""

from __future__ import annotations

from graflow_dist.cli import (  # noqa: F401 - registers commands
    feedback_commands,
    graph_command,
    run_commands,
    service_commands,
    ui_command,
)
from graflow_dist.cli.app import cli


def main() -> None:
    cli(prog_name="graflow-dist")


if __name__ == "__main__":
    main()
