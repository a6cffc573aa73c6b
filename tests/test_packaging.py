"""The core install (`make demo`: numpy, scipy, torch, typer, rich) must be enough for the library and the CLI.

`make test` installs every extra, and some extras pull in packages the core does not declare
(e.g. click, which recent typer versions vendor instead of depending on it). These tests
block the undeclared and optional packages in a fresh interpreter and use the library.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: importable in `make test`, but not guaranteed by the core dependencies
NOT_IN_CORE = ("click", "imitation", "gymnasium", "matplotlib", "pyro", "pytorch_lightning", "lightning",
               "mkdocs", "pytest", "pandas", "sklearn", "stable_baselines3")

_RUN = """
import sys
for name in {blocked!r}:
    sys.modules[name] = None  # `import name` now raises ImportError
{body}
"""


def _run_without_extras(body: str) -> subprocess.CompletedProcess:
    code = _RUN.format(blocked=NOT_IN_CORE, body=body)
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=env)


def test_library_and_cli_import_with_core_dependencies_only() -> None:
    out = _run_without_extras("import irl, human_models, priors, demos, irl.cli\nprint('ok')")
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_cli_runs_a_command_and_reports_a_user_error_with_core_dependencies_only() -> None:
    body = """
from irl.cli import main
sys.argv = ["irl", "envs"]
try:
    main()
except SystemExit as e:
    assert e.code in (None, 0), e.code
sys.argv = ["irl", "fit", "missing.npz", "--env", "no-such-env", "--out", "x.npz"]
try:
    main()
except SystemExit as e:
    print("exit", e.code)
"""
    out = _run_without_extras(body)
    assert out.returncode == 0, out.stderr
    assert "gridworld-8x8" in out.stdout and "exit 2" in out.stdout, (out.stdout, out.stderr)  # 2: bad option value
    assert "Traceback" not in out.stderr and "no-such-env" in out.stderr, out.stderr
