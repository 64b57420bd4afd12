"""The CI workflow that posts review reports cannot run here: its file is checked against GitHub's workflow schema
(vendored by check-jsonschema, offline), and what it runs is the Makefile's own targets."""

import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "review.yaml"


def schema_check(path: Path) -> subprocess.CompletedProcess:
    tool = shutil.which("check-jsonschema") or str(Path(__file__).parents[1] / ".venv" / "bin" / "check-jsonschema")
    return subprocess.run(
        [tool, "--builtin-schema", "vendor.github-workflows", str(path)], capture_output=True, text=True
    )


def test_the_review_workflow_is_a_valid_github_workflow(tmp_path):
    result = schema_check(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr
    broken = yaml.safe_load(WORKFLOW.read_text())
    broken["jobs"]["review"]["steps"][0]["uses"] = {"not": "a string"}
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(broken))
    assert schema_check(tmp_path / "broken.yaml").returncode != 0


def test_the_workflow_runs_the_readme_command_then_make_review_and_posts_its_report():
    steps = yaml.safe_load(WORKFLOW.read_text())["jobs"]["review"]["steps"]
    commands = [step.get("run", "") for step in steps]
    assert "make repro" in commands and any(c.startswith("make review BASE=") for c in commands)
    assert any("cml comment update" in c and "review/report.md" in c for c in commands)
    makefile = (ROOT / "Makefile").read_text()
    assert "\nreview: " in makefile and "tools/review.py" in makefile
