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


def test_with_a_remote_the_workflow_pulls_first_with_the_secrets_and_make_review_uses_it():
    """The remote comes from repository variables and the key from secrets (job env, read by make's REMOTE and
    botocore); the pull step runs only when DVC_REMOTE is set, before the pipeline and the review; make review and
    make pull hand REMOTE to their tools."""
    job = yaml.safe_load(WORKFLOW.read_text())["jobs"]["review"]
    assert job["env"] == {
        "REMOTE": "${{ vars.DVC_REMOTE }}",
        "REMOTE_ENDPOINT": "${{ vars.DVC_REMOTE_ENDPOINT }}",
        "AWS_ACCESS_KEY_ID": "${{ secrets.DVC_AWS_ACCESS_KEY_ID }}",
        "AWS_SECRET_ACCESS_KEY": "${{ secrets.DVC_AWS_SECRET_ACCESS_KEY }}",
    }
    commands = [step.get("run", "") for step in job["steps"]]
    pull = commands.index("make pull ALLOW_MISSING=1")
    assert job["steps"][pull]["if"] == "${{ vars.DVC_REMOTE != '' }}"
    review = next(i for i, c in enumerate(commands) if c.startswith("make review BASE="))
    repro = commands.index("make repro")
    assert pull < review and pull < repro and "if" not in job["steps"][review]
    assert job["steps"][repro]["if"] == "${{ vars.DVC_REMOTE == '' }}"  # with one, make review runs dvc repro --pull
    makefile = (ROOT / "Makefile").read_text()
    assert "--out review $(REMOTE_ARGS)" in makefile and "python tools/remote.py pull $(REMOTE_ARGS)" in makefile


def test_the_ci_workflow_runs_ci_run_on_pushes_and_pull_requests():
    """.github/workflows/ci.yaml: the same .ci/run as CI here (lock check, lint, make test, the SLURM tests)."""
    ci = ROOT / ".github" / "workflows" / "ci.yaml"
    result = schema_check(ci)
    assert result.returncode == 0, result.stdout + result.stderr
    workflow = yaml.safe_load(ci.read_text())
    assert {"push", "pull_request"} <= set(workflow[True])  # YAML reads the key `on` as true
    assert [step.get("run") for step in workflow["jobs"]["ci"]["steps"]][-1] == ".ci/run"
    assert "make lint" in (ROOT / ".ci" / "run").read_text()
