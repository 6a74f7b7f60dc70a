"""The composite GitHub Action (action.yml) and `memlane ci`, run locally the way the
runner runs them: the action's shell steps extracted from action.yml, its `${{ inputs.* }}`
and `${{ github.* }}` expressions substituted as the runner does, executed with bash and
the runner's environment (GITHUB_ACTIONS, GITHUB_STEP_SUMMARY, GITHUB_OUTPUT, GITHUB_PATH).
Checked: the summary Markdown, the step output, annotations naming the migration file and
line, and the exit codes for pass, block (a lint error) and review (a gate)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Dict, Tuple

import pytest
import yaml

from test_interop import ROOT, memlane_bin, run

ACTION = ROOT / "action.yml"
EX04 = ROOT / "migrations-examples" / "04-reembed-new-model"


def expand(text: str, inputs: Dict[str, str], action_path: Path) -> str:
    def one(m: re.Match) -> str:
        expr = m.group(1).strip()
        if expr.startswith("inputs."):
            return inputs[expr[len("inputs.") :]]
        if expr == "github.action_path":
            return str(action_path)
        raise AssertionError(f"expression the test does not know: {expr}")

    return re.sub(r"\$\{\{(.*?)\}\}", one, text)


def condition(cond: str, inputs: Dict[str, str]) -> bool:
    m = re.fullmatch(r"inputs\.([\w-]+) == '(.*)'", cond.strip())
    assert m, f"condition the test does not know: {cond}"
    return inputs[m.group(1)] == m.group(2)


def run_action(tmp: Path, **given: str) -> Tuple[int, str, str, Dict[str, str]]:
    spec = yaml.safe_load(ACTION.read_text())
    inputs = {k: str(v.get("default", "")) for k, v in spec["inputs"].items()}
    missing = [k for k, v in spec["inputs"].items() if v.get("required") and k not in given]
    assert not missing, missing
    inputs.update(given)
    summary, output, path = tmp / "summary.md", tmp / "output", tmp / "path"
    for f in (summary, output, path):
        f.write_text("")
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp),
        "GITHUB_ACTIONS": "true",
        "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_OUTPUT": str(output),
        "GITHUB_PATH": str(path),
    }
    code, out = 0, ""
    for step in spec["runs"]["steps"]:
        if "if" in step and not condition(step["if"], inputs):
            continue
        assert step["shell"] == "bash"
        step_env = {k: expand(str(v), inputs, ROOT) for k, v in (step.get("env") or {}).items()}
        # the runner never splices inputs into scripts: every input reaches them as env
        assert "${{" not in step["run"], "inputs must reach the script through env"
        script = tmp / "step.sh"
        script.write_text(step["run"])
        # exactly how the runner runs a `shell: bash` step
        p = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
            env={**env, **step_env},
            capture_output=True,
            text=True,
            cwd=tmp,
            timeout=600,
        )
        code, out = p.returncode, out + p.stdout + p.stderr
        if code != 0:
            break
    outputs = dict(x.split("=", 1) for x in output.read_text().splitlines() if "=" in x)
    return code, out, summary.read_text(), outputs


@pytest.fixture
def store(tmp_path: Path) -> str:
    s = str(tmp_path / "store")
    run("init", s, "--from", ROOT / "migrations-examples" / "data" / "corpus.jsonl")
    run("apply", s, EX04, "--to", "1", "--yes")
    return s


def test_the_action_passes_a_good_migration_and_writes_the_summary(tmp_path: Path, store: str) -> None:
    code, out, summary, outputs = run_action(tmp_path, store=store, migrations=str(EX04), **{"memlane-bin": memlane_bin()})
    assert code == 0, out
    assert outputs["verdict"] == "pass"
    assert "## memlane: ✅ PASS" in summary
    assert "| plan | 1 pending: 0002_new_model.toml |" in summary
    assert "| verify | ok |" in summary
    assert "reembed `old256` → `new384`" in summary
    assert "::error" not in out


def test_the_action_blocks_a_lint_error_with_an_annotation_on_its_line(tmp_path: Path, store: str) -> None:
    folder = tmp_path / "migs"
    shutil.copytree(EX04, folder)
    bad = folder / "0002_new_model.toml"
    # a cast that loses data: lint error `lossy-cast`... here: a rename of a field that does not exist
    bad.write_text(bad.read_text() + '\n[[steps]]\nop = "rename_field"\nfrom = "no_such_field"\nto = "x"\n')
    code, out, summary, outputs = run_action(tmp_path, store=store, migrations=str(folder), **{"memlane-bin": memlane_bin()})
    assert code == 3, out
    assert outputs["verdict"] == "block"
    line = next(i + 1 for i, l in enumerate(bad.read_text().splitlines()) if l == 'op = "rename_field"')
    ann = [l for l in out.splitlines() if l.startswith("::error file=")]
    assert ann, out
    assert any(f"file={bad}".replace(":", "%3A").replace(",", "%2C") in a and abs(int(re.search(r"line=(\d+)", a).group(1)) - line) <= 1 for a in ann), (ann, line)
    assert "no_such_field" in " ".join(ann) and "Fix:" in " ".join(ann)
    assert "## memlane: ⛔ BLOCK" in summary and "### Lint findings" in summary


def test_the_action_reports_a_review_and_can_let_it_pass(tmp_path: Path, store: str) -> None:
    folder = tmp_path / "migs"
    shutil.copytree(EX04, folder)
    m = folder / "0002_new_model.toml"
    m.write_text(m.read_text() + '\n[gates]\n"overlap@10" = { review_below = 0.99 }\n')
    code, out, summary, outputs = run_action(tmp_path, store=store, migrations=str(folder), **{"memlane-bin": memlane_bin()})
    assert code == 4 and outputs["verdict"] == "review", out
    assert "🟡 REVIEW" in summary and "overlap@10" in summary
    assert "::warning title=memlane review::" in out
    code, out, _, outputs = run_action(
        tmp_path, store=store, migrations=str(folder), **{"memlane-bin": memlane_bin(), "fail-on-review": "false"}
    )
    assert code == 0 and outputs["verdict"] == "review", out


def test_memlane_ci_json_and_a_tampered_store(tmp_path: Path, store: str) -> None:
    r = json.loads(run("--json", "ci", store, EX04, "--summary", tmp_path / "s.md").stdout)
    assert r["verdict"] == "pass" and r["verified"] is True and r["review"]["verdict"] == "pass"
    assert (tmp_path / "s.md").read_text().startswith("## memlane")
    # a data file changed by hand: verify fails, ci blocks and says why
    data = sorted((Path(store) / "data").glob("*.lance"))[0]
    b = bytearray(data.read_bytes())
    b[len(b) // 2] ^= 0xFF
    data.write_bytes(bytes(b))
    p = run("--json", "ci", store, EX04, ok=False)
    assert p.returncode == 3, p.stderr
    r = json.loads(p.stdout)
    assert r["verdict"] == "block" and any(x.startswith("verify digests") for x in r["reasons"]), r["reasons"]
