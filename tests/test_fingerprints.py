"""Code dependencies come from the import graph: each stage depends on exactly the project files it runs."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import yaml

from backdoor.pipeline.fingerprints import code_sha256, fingerprint_file, import_closure, stage_scripts

ROOT = Path(__file__).resolve().parents[1]


def closure(script: str) -> set[str]:
    return {p.as_posix() for p in import_closure(script, ROOT)}


def test_closure_follows_imports_transitively_and_stops_at_the_project():
    train = closure("stages/train.py")
    # direct imports, their imports (training -> regularizers -> hooks), packages' __init__ files, lazy imports
    assert {
        "stages/train.py",
        "backdoor/training.py",
        "backdoor/regularizers/snnl.py",
        "backdoor/hooks.py",
        "backdoor/__init__.py",
        "backdoor/models/__init__.py",
        "backdoor/models/small_cnn.py",
        "backdoor/models/timm_models.py",
        "backdoor/datasets/__init__.py",
        "backdoor/datasets/base.py",
    } <= train
    assert all(path.startswith(("backdoor/", "stages/")) for path in train)  # torch, timm: not project files


def test_closures_are_narrow_where_the_stages_differ():
    """Editing a trigger must not retrain; editing fine-tuning must not re-poison or retrain; editing a
    dataset reader must not touch anything that only loads stored data."""
    train, finetune, poison = closure("stages/train.py"), closure("stages/finetune.py"), closure("stages/poison.py")
    assert not any(str(f).startswith("backdoor/triggers/") for f in train | finetune)
    assert "backdoor/triggers/blend.py" in poison
    assert "backdoor/finetuning.py" in finetune and "backdoor/finetuning.py" not in train | poison
    assert "backdoor/regularizers/snnl.py" in train and "backdoor/regularizers/snnl.py" not in finetune
    readers = {"backdoor/datasets/cifar10.py", "backdoor/datasets/registry.py", "backdoor/datasets/photos.py"}
    assert readers <= closure("stages/download.py") and not readers & (train | finetune | poison)


PROBE = """
import json, runpy, sys
loaded = {}
for script in sys.argv[1:]:
    for name in [m for m in sys.modules if m.split(".")[0] == "backdoor"]:
        del sys.modules[name]  # each script imports the project afresh (torch stays loaded)
    sys.argv[1:] = ["--help"]
    try:
        runpy.run_path(script, run_name="probe")
    except SystemExit:
        pass
    loaded[script] = sorted(m.__file__ for m in list(sys.modules.values())
                            if getattr(m, "__file__", None) and m.__name__.split(".")[0] == "backdoor")
print(json.dumps(loaded))
"""


def test_closure_covers_every_project_module_a_stage_imports():
    """Cross-check with Python itself: every project module loaded by importing a stage script is in the
    closure (which also counts the modules it would import lazily)."""
    scripts = [str(ROOT / script) for script in stage_scripts(ROOT)]
    out = subprocess.run([sys.executable, "-c", PROBE, *scripts], capture_output=True, text=True, cwd=ROOT, check=True)
    for script, files in json.loads(out.stdout).items():
        loaded = {Path(f).resolve().relative_to(ROOT).as_posix() for f in files}
        expected = closure(Path(script).relative_to(ROOT).as_posix())
        assert loaded and loaded <= expected, (script, loaded - expected)


def test_every_stage_depends_on_its_own_scripts_fingerprint():
    """The focus dvc.yaml (hand-written) and the planned grid stages name the fingerprint of the script
    their command runs, and nothing else for code."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        script = stage["cmd"].split()[1]
        if name == "code":
            assert set(stage["deps"]) == {"backdoor", "stages"}
            continue
        code_deps = [d for d in stage["deps"] if d.startswith("data/code/") or d.endswith(".py") or d == "backdoor"]
        assert code_deps == [fingerprint_file(script)], name


def test_fingerprint_changes_with_the_files_content_and_names(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "b.py").write_text("y = 2\n")
    files = [Path("a.py"), Path("b.py")]
    before = code_sha256(files, tmp_path)
    assert code_sha256(files[::-1], tmp_path) == before
    (tmp_path / "a.py").write_text("x = 1  # edited\n")
    assert code_sha256(files, tmp_path) != before
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "c.py").write_text("x = 1\n")
    assert code_sha256([Path("c.py"), Path("b.py")], tmp_path) != before  # same content, another file


def test_relative_imports_resolve_inside_packages(tmp_path):
    pkg = tmp_path / "backdoor" / "sub"
    pkg.mkdir(parents=True)
    (tmp_path / "backdoor" / "__init__.py").write_text("")
    (tmp_path / "backdoor" / "errors.py").write_text("")
    (pkg / "__init__.py").write_text("from .mod import f\n")
    (pkg / "mod.py").write_text("from ..errors import E\nfrom . import other\n\ndef f():\n    from .lazy import g\n")
    (pkg / "other.py").write_text("")
    (pkg / "lazy.py").write_text("")
    (pkg / "unused.py").write_text("")
    (tmp_path / "run.py").write_text("import json\nfrom backdoor.sub import f\n")
    ast.parse((pkg / "mod.py").read_text())
    assert {p.as_posix() for p in import_closure("run.py", tmp_path)} == {
        "run.py",
        "backdoor/__init__.py",
        "backdoor/errors.py",
        "backdoor/sub/__init__.py",
        "backdoor/sub/mod.py",
        "backdoor/sub/other.py",
        "backdoor/sub/lazy.py",
    }
