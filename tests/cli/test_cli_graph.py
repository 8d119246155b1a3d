"""``graflow-dist graph``: draw a workflow from MODULE:ATTR without Redis."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from graflow_dist.broker.connection import REDIS_URL_ENV

WORKFLOW = '''
from graflow_dist.core.decorators import task
from graflow_dist.core.workflow import workflow


def build():
    with workflow("etl") as wf:
        @task
        def extract():
            return [1, 2]

        @task
        def clean(extract):
            return extract

        @task
        def enrich(extract):
            return extract

        @task
        def load(clean, enrich):
            return None

        extract >> (clean | enrich) >> load
    return wf


wf = build()
'''


def write_workflow(tmp_path: Path) -> Path:
    path = tmp_path / "etl_flow.py"
    path.write_text(WORKFLOW)
    return path


def test_svg_to_a_file_without_redis(graflow_dist, env_with, tmp_path) -> None:
    flow = write_workflow(tmp_path)
    out = tmp_path / "etl.svg"
    # An unreachable Redis URL proves the command never connects.
    env = env_with(**{REDIS_URL_ENV: "redis://127.0.0.1:1/0"})
    result = graflow_dist("graph", f"{flow}:wf", "-o", str(out), env=env)
    assert result.returncode == 0, result.stderr
    assert f"wrote {out} (svg)" in result.stderr
    root = ET.fromstring(out.read_text())
    texts = {t.text for t in root.iter("{http://www.w3.org/2000/svg}text")}
    assert {"extract", "clean", "enrich", "load", "ParallelGroup_1"} <= texts
    assert root.find("{http://www.w3.org/2000/svg}title").text == "etl"


def test_text_and_mermaid_on_stdout(graflow_dist, tmp_path) -> None:
    flow = write_workflow(tmp_path)
    text = graflow_dist("graph", f"{flow}:build")  # a function returning a workflow
    assert text.returncode == 0, text.stderr
    assert "| extract |" in text.stdout and "ParallelGroup_1" in text.stdout
    mermaid = graflow_dist("graph", f"{flow}:wf", "--format", "mermaid")
    assert mermaid.returncode == 0, mermaid.stderr
    assert "graph TD;" in mermaid.stdout and "extract --> ParallelGroup_1;" in mermaid.stdout
    tb = graflow_dist("graph", f"{flow}:wf", "--format", "svg", "--direction", "TB")
    assert tb.returncode == 0 and 'data-direction="TB"' in tb.stdout


def test_format_follows_the_output_suffix(graflow_dist, tmp_path) -> None:
    flow = write_workflow(tmp_path)
    out = tmp_path / "etl.mmd"
    assert graflow_dist("graph", f"{flow}:wf", "-o", str(out)).returncode == 0
    assert out.read_text().startswith("---\nconfig:")


def test_bad_references_fail_with_one_clear_line(graflow_dist, tmp_path) -> None:
    flow = write_workflow(tmp_path)
    missing = graflow_dist("graph", f"{flow}:nope")
    assert missing.returncode == 1
    assert missing.stderr.strip() == f"error: {flow} has no attribute 'nope'; workflows in it: wf"
    assert "Traceback" not in missing.stderr
    no_file = graflow_dist("graph", f"{tmp_path}/absent.py:wf")
    assert no_file.returncode == 1 and "no such workflow file" in no_file.stderr
    bad_format = graflow_dist("graph", f"{flow}:wf", "--format", "jpeg")
    assert bad_format.returncode == 2 and "'jpeg' is not one of" in bad_format.stderr


def test_png_and_dot_by_suffix(graflow_dist, tmp_path) -> None:
    flow = write_workflow(tmp_path)
    png, dot = tmp_path / "etl.png", tmp_path / "etl.gv"
    result = graflow_dist("graph", f"{flow}:wf", "-o", str(png))
    assert result.returncode == 0, result.stderr
    assert f"wrote {png} (png)" in result.stderr
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert graflow_dist("graph", f"{flow}:wf", "-o", str(dot)).returncode == 0
    assert dot.read_text().startswith('digraph "workflow" {') and '"extract"' in dot.read_text()


def test_a_suffix_without_a_format_is_refused_not_written_as_text(graflow_dist,
                                                                  tmp_path) -> None:
    flow = write_workflow(tmp_path)
    out = tmp_path / "etl.jpg"
    result = graflow_dist("graph", f"{flow}:wf", "-o", str(out))
    assert result.returncode == 2 and not out.exists()
    assert "no format is drawn as '.jpg'" in result.stderr and ".png" in result.stderr
    to_stdout = graflow_dist("graph", f"{flow}:wf", "--format", "png")
    assert to_stdout.returncode == 2 and "give -o FILE.png" in to_stdout.stderr
    assert to_stdout.stdout == ""


def test_png_without_matplotlib_says_what_to_install(graflow_dist, tmp_path,
                                                     env_without_optional) -> None:
    flow = write_workflow(tmp_path)
    out = tmp_path / "etl.png"
    result = graflow_dist("graph", f"{flow}:wf", "-o", str(out), env=env_without_optional)
    assert result.returncode == 1 and not out.exists()
    assert "matplotlib" in result.stderr and "pip install" in result.stderr
    assert "Traceback" not in result.stderr
