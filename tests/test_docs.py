"""The documentation is tested like code.

1. Every ```python block of the tutorials and of the Getting started page runs, in order,
   in a fresh namespace per page and inside a temporary working directory; whatever a block
   prints must match the "Output" box that follows it on the page (numbers within a small
   tolerance), and the key results of each page are checked from its namespace.
2. Every docstring example of the library's public modules runs as a doctest.
3. ``mkdocs build --strict`` succeeds and renders every API module the site promises.
4. The Command line page describes exactly the options of every `irl` command, the figure
   script reproduces the committed figure, and the gradient identity stated on the Concepts
   page holds.
"""

from __future__ import annotations

import contextlib
import doctest
import importlib
import importlib.util
import io
import os
import pkgutil
import re
import struct
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
EXECUTED_PAGES = (sorted(DOCS.glob("tutorials/*.md")) + sorted(DOCS.glob("evidence/*.md"))
                  + [DOCS / "getting-started.md", DOCS / "guides" / "your-own-problem.md",
                     DOCS / "guides" / "interoperability.md"])
PACKAGES = ("irl", "human_models", "priors", "demos")

_FENCE = re.compile(r"^```([\w-]*)([^\n]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
_NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


# ------------------------------------------------------------------ page execution
def fenced_blocks(page: Path) -> list[dict]:
    """The fenced code blocks of a Markdown page: language, info string, code, line number."""
    text = page.read_text(encoding="utf-8")
    out = []
    for m in _FENCE.finditer(text):
        out.append({"lang": m.group(1), "info": m.group(2).strip(), "code": m.group(3),
                    "line": text.count("\n", 0, m.start()) + 1})
    return out


def python_blocks_with_outputs(page: Path) -> list[tuple[dict, dict | None]]:
    """Each ```python block with the ```text title="Output" block right after it, if any."""
    blocks = fenced_blocks(page)
    pairs = []
    for i, b in enumerate(blocks):
        if b["lang"] != "python":
            continue
        nxt = blocks[i + 1] if i + 1 < len(blocks) else None
        is_output = nxt is not None and nxt["lang"] == "text" and 'title="Output"' in nxt["info"]
        pairs.append((b, nxt if is_output else None))
    return pairs


def outputs_match(got: str, want: str, *, rtol: float = 1e-4, atol: float = 2e-3) -> bool:
    """Same text with whitespace runs collapsed, numbers equal within a tolerance.

    ``atol`` allows the last printed digit of a rounded number to flip; everything else
    (words, counts, shapes) must agree.
    """
    def split(s: str) -> tuple[list[str], list[float]]:
        s = " ".join(s.split())
        return _NUMBER.split(s), [float(x) for x in _NUMBER.findall(s)]

    got_text, got_nums = split(got)
    want_text, want_nums = split(want)
    if got_text != want_text or len(got_nums) != len(want_nums):
        return False
    return bool(np.allclose(got_nums, want_nums, rtol=rtol, atol=atol)) if got_nums else True


def run_page(page: Path) -> dict:
    """Execute the page's Python blocks in order in one fresh namespace; check printed outputs."""
    pairs = python_blocks_with_outputs(page)
    assert pairs, f"{page.relative_to(ROOT)} has no ```python block to run"
    ns: dict = {"__name__": f"docs_{page.stem.replace('-', '_')}"}
    for block, output in pairs:
        where = f"{page.relative_to(ROOT)}:{block['line']}"
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            exec(compile(block["code"], where, "exec"), ns)  # noqa: S102 - the docs' own code
        if output is not None:
            assert outputs_match(buf.getvalue(), output["code"]), (
                f"the block at {where} printed\n{buf.getvalue()}\nbut the page shows\n{output['code']}")
    return ns


def _check_first_fit(ns: dict, cwd: Path) -> None:
    import irl

    env, truth = ns["env"], ns["truth"]
    assert env.name == "gridworld-8x8" and len(ns["data"]) == 200
    assert (cwd / "demos.npz").is_file() and (cwd / "reward.npz").is_file()
    assert ns["est"].converged
    # the plan is judged under the true reward: within 2% of the optimal return
    assert ns["v_opt"] > 0
    assert ns["evd"] <= 0.02 * ns["v_opt"], (ns["evd"], ns["v_opt"])
    assert ns["evd"] == pytest.approx(ns["v_opt"] - ns["v_plan"], abs=1e-9)
    assert ns["v_human"] < ns["v_plan"]  # the planner beats the noisy human it learned from
    assert irl.metrics.reward_correlation(env, ns["est"].reward, truth) > 0.95
    # beta and the reward scale are confounded: the beta = 1 fit is the beta = 5 fit times 5
    np.testing.assert_allclose(ns["est1"].theta, 5.0 * ns["est"].theta, rtol=1e-3, atol=1e-3)
    assert ns["evd1"] <= 0.02 * ns["v_opt"]
    np.testing.assert_allclose(ns["again"].theta, ns["est"].theta)


def _check_getting_started(ns: dict, cwd: Path) -> None:
    import irl

    assert (cwd / "demos.npz").is_file()
    assert len(ns["data"]) == 200 and ns["est"].converged
    v_opt = irl.metrics.optimal_return(ns["env"], ns["truth"])
    assert v_opt > 0 and 0.0 <= ns["evd"] <= 0.02 * v_opt, (ns["evd"], v_opt)


def _check_why_the_human_model_matters(ns: dict, cwd: Path) -> None:
    # the right human model recovers a reward whose plan is optimal; the Boltzmann reading does not
    assert ns["v_right"] >= 0.98 * ns["v_opt"], (ns["v_right"], ns["v_opt"])
    assert ns["v_wrong"] < 0.9 * ns["v_opt"] and ns["v_human"] < ns["v_right"]
    # the planning horizon is inferred together with the reward
    horizon = ns["joint"].human_params["myopic.horizon"]
    assert max(horizon, key=horizon.get) == 3 and horizon[3] > 0.9
    # the restaurant example: a tempted naive vegetarian is the best explanation of the path
    posterior, hyp_veg = ns["posterior"], ns["prefers_veg"]
    assert posterior.sum() == pytest.approx(1.0)
    assert posterior[1, hyp_veg].sum() > 0.8 and posterior[:, ns["prefers_donuts"]].sum() < 0.2


def shell_commands(page: Path) -> list[list[str]]:
    """The `irl ...` command lines of the page's ```bash blocks, split into arguments."""
    import shlex

    return [shlex.split(line) for b in fenced_blocks(page) if b["lang"] == "bash"
            for line in b["code"].splitlines() if line.startswith("irl ")]


def _check_your_own_problem(ns: dict, cwd: Path) -> None:
    from typer.testing import CliRunner

    from irl.cli import app

    # the shell commands of the page work, in order, on the files its Python blocks wrote
    page = DOCS / "guides" / "your-own-problem.md"
    commands = shell_commands(page)
    assert len(commands) >= 6
    for argv in commands:
        res = CliRunner().invoke(app, argv[1:])
        assert res.exit_code == 0, f"{' '.join(argv)} failed ({res.exit_code}):\n{res.output}"
    assert (cwd / "est.mdp.npz").is_file() and (cwd / "est_policy.npz").is_file()
    # the plan from the estimated dynamics is judged under the true ones, and cannot beat the known-dynamics plan
    assert 0.5 * ns["known"] < ns["on_estimate"] <= ns["known"] + 1e-12
    # the table's first rows are what the script computes (the whole table: the slow test below)
    assert dynamics_table_rows(page)[:4] == dynamics_script().markdown(
        dynamics_script().rows(sizes=(10, 30, 100, 300))).splitlines()[2:6]


def dynamics_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dynamics_from_logs", DOCS / "scripts" / "dynamics_from_logs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def dynamics_table_rows(page: Path) -> list[str]:
    """The rows of the generated table on the page (between its two marker comments), header excluded."""
    text = page.read_text(encoding="utf-8")
    block = text.split("<!-- dynamics-from-logs table: generated by docs/scripts/dynamics_from_logs.py -->")[1]
    return block.split("<!-- end of table -->")[0].strip().splitlines()[2:]


@pytest.mark.slow
def test_dynamics_from_logs_table_is_what_the_script_computes() -> None:
    module = dynamics_script()
    table = module.rows()
    assert dynamics_table_rows(DOCS / "guides" / "your-own-problem.md") == module.markdown(table).splitlines()[2:]
    means = [row["mean"] for row in table]
    assert means[-1] > 0.9 * table[0]["known"] and means[-1] > means[2] > means[0]


PAGE_CHECKS = {"first-fit.md": _check_first_fit, "getting-started.md": _check_getting_started,
               "why-the-human-model-matters.md": _check_why_the_human_model_matters,
               "your-own-problem.md": _check_your_own_problem}


@pytest.mark.parametrize("page", EXECUTED_PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_page_code_runs_and_prints_what_the_page_shows(page: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    ns = run_page(page)
    check = PAGE_CHECKS.get(page.name)
    if check is not None:
        check(ns, tmp_path)
    else:  # a new page: at least its outputs were compared
        assert any(out is not None for _, out in python_blocks_with_outputs(page)), (
            f"{page.name}: show the output of at least one block, or add a check to PAGE_CHECKS")


def test_output_comparison_catches_wrong_numbers_and_words() -> None:
    shown = "optimal policy  11.1578\nexpected value difference: 0.0000% of optimal"
    assert outputs_match("optimal policy 11.1578\nexpected value difference: 0.0000% of optimal", shown)
    assert outputs_match("optimal policy  11.1579\nexpected value difference: 0.0001% of optimal", shown)
    assert not outputs_match("optimal policy  11.2578\nexpected value difference: 0.0000% of optimal", shown)
    assert not outputs_match("optimal plan  11.1578\nexpected value difference: 0.0000% of optimal", shown)
    assert not outputs_match("(20, 64, 6)", "(20, 64, 5)")


# ------------------------------------------------------------------------- doctests
def public_modules() -> list[str]:
    """Every importable module of the four packages whose dotted name has no ``_`` part."""
    names = []
    for pkg in PACKAGES:
        mod = importlib.import_module(pkg)
        names.append(pkg)
        for info in pkgutil.walk_packages(mod.__path__, prefix=f"{pkg}.", onerror=lambda name: None):
            if not any(part.startswith("_") for part in info.name.split(".")):
                names.append(info.name)
    return sorted(set(names))


def doctests_of(module: ModuleType) -> list[doctest.DocTest]:
    tests = doctest.DocTestFinder(exclude_empty=True).find(module, module.__name__)
    return [t for t in tests if t.examples]


def _has_examples(modname: str) -> bool:
    try:
        return bool(doctests_of(importlib.import_module(modname)))
    except Exception:  # collect it anyway: its test then fails with the import error
        return True


MODULES = public_modules()
MODULES_WITH_EXAMPLES = [m for m in MODULES if _has_examples(m)]


@pytest.mark.parametrize("modname", MODULES_WITH_EXAMPLES)
def test_docstring_examples(modname: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    module = importlib.import_module(modname)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report = io.StringIO()
    for test in doctests_of(module):
        runner.run(test, out=report.write)
    result = runner.summarize(verbose=False)
    assert result.attempted > 0, f"{modname}: every docstring example is skipped"
    assert result.failed == 0, f"{result.failed} docstring example(s) of {modname} failed:\n{report.getvalue()}"


def test_every_package_has_docstring_examples() -> None:
    counts = {m: sum(len(t.examples) for t in doctests_of(importlib.import_module(m))) for m in MODULES}
    for pkg in PACKAGES:
        in_pkg = {m: n for m, n in counts.items() if m == pkg or m.startswith(pkg + ".")}
        assert sum(in_pkg.values()) > 0, f"package {pkg} has no docstring examples: {in_pkg}"
    # the modules whose pages form the API reference each document at least one example
    for modname in ("irl.mdp", "irl.planning", "irl.rewards", "irl.autodiff", "irl.evidence", "irl.solvers.maxent",
                    "irl.plan", "irl.metrics", "irl.envs", "human_models.boltzmann", "priors", "demos", "demos.io"):
        assert counts.get(modname, 0) > 0, f"{modname} has no docstring example"


# ----------------------------------------------------------------------- the site
API_PAGES = {  # page -> anchors that must be rendered on it (one per ::: directive at least)
    "api/mdp": ["irl.mdp.TabularMDP", "irl.mdp.TabularMDP.from_arrays"],
    "api/planning": ["irl.planning.soft_value_iteration", "irl.planning.bellman_q_vjp",
                     "irl.planning.occupancy_measure"],
    "api/rewards": ["irl.rewards.LinearReward", "irl.rewards.NeuralReward"],
    "api/lightning": ["irl.datasets.EvidenceDataset", "irl.lightning.RewardNetModule", "irl.lightning.MapDataModule"],
    "api/autodiff": ["irl.autodiff.q_values"],
    "api/evidence": ["irl.evidence.Evidence"],
    "api/solvers": ["irl.solvers.maxent.MaxEnt", "irl.solvers.base.LogJoint", "irl.solvers.base.RewardEstimate"],
    "api/plan": ["irl.plan.plan"],
    "api/metrics": ["irl.metrics.expected_value_difference"],
    "api/active": ["irl.active.next_query", "irl.active.run", "irl.active.Candidates"],
    "api/envs": ["irl.envs.make", "irl.envs.gridworld.gridworld", "irl.envs.aima.aima_4x3"],
    "api/human-models": ["human_models.make", "human_models.check_human_model", "human_models.boltzmann.Boltzmann",
                         "human_models.base.BaseHumanModel"],
    "api/priors": ["priors.Gaussian", "priors.make"],
    "api/demos": ["demos.simulate", "demos.Trajectories", "demos.io.load", "demos.io.save"],
}


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    site = tmp_path / "site"
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
                           "-d", str(site)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    for page, anchors in API_PAGES.items():
        html = (site / page / "index.html").read_text(encoding="utf-8")
        for anchor in anchors:
            assert f'id="{anchor}"' in html, f"{page} does not document {anchor}"
        # docstring examples render as code, and Sphinx roles / autoref tags do not leak into the page
        assert "&gt;&gt;&gt;" not in html.replace('<span class="gp">&gt;&gt;&gt; </span>', ""), page
        assert ":class:" not in html and ":func:" not in html and "<autoref" not in html, page
    tutorial = (site / "tutorials" / "first-fit" / "index.html").read_text(encoding="utf-8")
    assert "first-fit-reward.png" in tutorial and (site / "img" / "first-fit-reward.png").is_file()
    assert not (site / "scripts").exists()  # helper scripts stay out of the published site


def test_command_line_page_matches_the_cli() -> None:
    """Every command of `irl` has a section on docs/cli.md naming exactly its options."""
    import typer

    from irl.cli import app

    group = typer.main.get_command(app)
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    sections = dict(re.findall(r"^### `irl ([a-z-]+)`.*?\n(.*?)(?=^##|\Z)", text, re.MULTILINE | re.DOTALL))
    listed = set(re.findall(r"`irl ([a-z-]+)`", text))
    for name, command in group.commands.items():
        assert name in listed, f"docs/cli.md does not mention `irl {name}`"
        options = {o for p in command.params for o in p.opts + p.secondary_opts
                   if o.startswith("--") and o != "--help"}
        if not options:
            continue
        assert name in sections, f"docs/cli.md has no section for `irl {name}`, whose options are {sorted(options)}"
        mentioned = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", sections[name])) - {"--help"}
        assert options <= mentioned, f"docs/cli.md, `irl {name}`: options not described: {sorted(options - mentioned)}"
        assert mentioned <= options, f"docs/cli.md, `irl {name}`: options that do not exist: {sorted(mentioned - options)}"


# ------------------------------------------------------------ figure and concepts
def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def test_figure_script_reproduces_the_committed_figure(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("make_figures", DOCS / "scripts" / "make_figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with contextlib.redirect_stdout(io.StringIO()):
        written = module.main(["--out", str(tmp_path)])
    assert [p.name for p in written] == ["first-fit-reward.png"]
    committed = DOCS / "img" / "first-fit-reward.png"
    assert _png_size(written[0]) == _png_size(committed)
    assert written[0].stat().st_size > 10_000  # three annotated panels, not an empty canvas


def _gradient_and_counts(env, beta: float, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact gradient of the Boltzmann log-likelihood, and beta * (empirical - expected) counts."""
    import torch

    import demos
    import human_models as hm
    from irl import planning

    human = hm.Boltzmann(beta)
    data = demos.simulate(env, human, env.true_reward, n=n, seed=seed)
    S, A, H = env.n_states, env.n_actions, env.horizon
    reward = torch.as_tensor(np.random.default_rng(seed).normal(size=(S, A)), dtype=torch.float64)
    reward.requires_grad_(True)
    human.log_likelihood(env, reward, data).backward()
    # empirical counts, with a terminal state reached before the horizon counted once (pi there)
    pi = human.action_probs(env, reward.detach())
    empirical = data.counts(S, A, horizon=H).sum(0)
    ends = data.terminated & (data.lengths < H)
    for s, t in zip(data.final_states[ends], data.lengths[ends]):
        empirical[s] += pi[t, s]
    start = np.bincount(data.initial_states, minlength=S) / len(data)
    expected = planning.occupancy_measure(env, pi, initial=start).sum(0) * len(data)
    return reward.grad.numpy(), beta * (empirical - expected)


def test_concepts_page_gradient_identity() -> None:
    import irl

    # deterministic dynamics, no discount: the adjoint pass equals empirical minus expected counts
    grid = irl.envs.gridworld(4, slip=0.0, horizon=7)
    grad, counts = _gradient_and_counts(grid, beta=2.0, n=25, seed=1)
    np.testing.assert_allclose(grad, counts, atol=1e-9)
    # ... also with terminal states reached before the horizon
    S = 5
    T = np.zeros((S, 2, S))
    for s in range(S):
        T[s, 0, max(s - 1, 0)] = T[s, 1, min(s + 1, S - 1)] = 1.0
    chain = irl.TabularMDP.from_arrays(T, horizon=6, terminal=np.arange(S) == S - 1, initial=[0.5, 0.5, 0, 0, 0],
                                       true_reward=[0.0, -0.1, 0.2, 0.1, 1.0])
    grad, counts = _gradient_and_counts(chain, beta=1.5, n=40, seed=3)
    np.testing.assert_allclose(grad, counts, atol=1e-9)
    # stochastic dynamics: the formula holds only in expectation, so a finite sample differs
    slippery = irl.envs.gridworld(4, slip=0.2, horizon=7)
    grad, counts = _gradient_and_counts(slippery, beta=2.0, n=25, seed=1)
    assert np.abs(grad - counts).max() > 1e-3
