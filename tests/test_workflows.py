"""The GitHub workflows: actionlint passes, steps call only Makefile targets and the pinned
official actions, and no secret reaches a `run:` line."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, require_tool

WORKFLOWS = ROOT / ".github" / "workflows"
# Actions a workflow may use, at the major tags verified in their repositories
# (git tags v7 of actions/checkout, actions/setup-python and pulumi/actions).
ALLOWED_ACTIONS = {"actions/checkout": "v7", "actions/setup-python": "v7", "pulumi/actions": "v7"}
SECRET = re.compile(r"\$\{\{[^}]*\bsecrets\.")


def makefile_targets(makefile: Path = ROOT / "Makefile") -> set[str]:
    targets: set[str] = set()
    for line in makefile.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.-]+(?:\s+[A-Za-z0-9_.-]+)*)\s*:(?!=)", line)
        if m and not line.startswith((".", "\t", "$")):
            targets.update(m.group(1).split())
    return targets


def make_targets_of(command: str) -> list[str] | None:
    """The targets a `make ...` command line asks for; None when it is not a make call."""
    words = command.split()
    if not words or words[0] != "make":
        return None
    targets, skip = [], False
    for word in words[1:]:
        if skip:
            skip = False
        elif word in ("-C", "-f", "--directory", "--file"):
            skip = True
        elif word.startswith("-") or "=" in word:
            continue
        else:
            targets.append(word)
    return targets


def load(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text())
    if True in doc:  # YAML 1.1 reads the key `on` as a boolean
        doc["on"] = doc.pop(True)
    return doc


def _walk(value: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], str]]:
    if isinstance(value, dict):
        return [x for k, v in value.items() for x in _walk(v, (*path, str(k)))]
    if isinstance(value, list):
        return [x for i, v in enumerate(value) for x in _walk(v, (*path, str(i)))]
    return [(path, value)] if isinstance(value, str) else []


def problems(doc: dict[str, Any], targets: set[str]) -> list[str]:
    """Every way a workflow breaks the delivery rules."""
    found: list[str] = []
    for job_name, job in (doc.get("jobs") or {}).items():
        for i, step in enumerate(job.get("steps") or []):
            where = f"jobs.{job_name}.steps[{i}]"
            if "uses" in step:
                action, _, ref = step["uses"].partition("@")
                if ALLOWED_ACTIONS.get(action) != ref:
                    found.append(f"{where}: action {step['uses']!r} is not an allowed pinned action")
            if "run" in step:
                for line in str(step["run"]).splitlines():
                    line = line.strip()
                    if not line or line.startswith("#"):
                        continue
                    asked = make_targets_of(line)
                    if asked is None:
                        found.append(f"{where}: {line!r} is not a Makefile target")
                    else:
                        found += [f"{where}: no Makefile target {t!r}" for t in asked if t not in targets]
                        if not asked:
                            found.append(f"{where}: {line!r} names no target")
    for path, text in _walk(doc):
        if SECRET.search(text) and not ({"env", "with"} & set(path[-2:-1])):
            found.append(f"{'.'.join(path)}: a secret outside env/with")
    return found


def workflow_files() -> list[Path]:
    return sorted(WORKFLOWS.glob("*.yml"))


def actionlint() -> str:
    local = Path(sys.executable).parent / "actionlint"
    return str(local) if local.exists() else require_tool("actionlint")


def test_both_workflows_exist() -> None:
    assert [p.name for p in workflow_files()] == ["deploy.yml", "preview.yml"]


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_workflow_follows_the_delivery_rules(path: Path) -> None:
    assert problems(load(path), makefile_targets()) == []


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_actionlint_passes(path: Path) -> None:
    result = subprocess.run([actionlint(), str(path)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    bad = tmp_path / ".github" / "workflows" / "bad.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text(
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: make test\n        if: ${{ github.event.no_such_thing.( }}\n"
    )
    result = subprocess.run([actionlint(), str(bad)], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode != 0


def test_rules_catch_echoed_secrets_foreign_commands_and_unpinned_actions() -> None:
    doc = {
        "jobs": {
            "x": {
                "env": {"OK": "${{ secrets.FINE }}"},
                "steps": [
                    {"run": "echo ${{ secrets.DISCORD_WEBHOOK_URL }}"},
                    {"run": "curl -X POST https://example.invalid"},
                    {"run": "make no-such-target"},
                    {"uses": "actions/checkout@main"},
                    {"uses": "someone/deploy@v1"},
                    {
                        "uses": "pulumi/actions@v7",
                        "with": {"command": "up"},
                        "env": {"T": "${{ secrets.T }}"},
                    },
                ],
            }
        }
    }
    found = problems(doc, {"test", "render"})
    assert any("steps[0]" in p and "not a Makefile target" in p for p in found)
    assert any("steps.0.run: a secret outside env/with" in p for p in found)
    assert any("steps[1]" in p for p in found)
    assert any("no Makefile target 'no-such-target'" in p for p in found)
    assert any("actions/checkout@main" in p for p in found)
    assert any("someone/deploy@v1" in p for p in found)
    assert not any("steps[5]" in p or "steps.5" in p for p in found)
    assert not any("jobs.x.env" in p for p in found)


def test_make_command_parsing() -> None:
    assert make_targets_of("make -C ../base render") == ["render"]
    assert make_targets_of("make render-diff BASE_RENDERED=../base/rendered") == ["render-diff"]
    assert make_targets_of("pulumi up") is None
    assert {"render", "test", "ci-tools", "render-diff", "notify"} <= makefile_targets()


def _pulumi_step(doc: dict[str, Any], job: str) -> dict[str, Any]:
    steps = [s for s in doc["jobs"][job]["steps"] if s.get("uses", "").startswith("pulumi/actions@")]
    assert len(steps) == 1
    return steps[0]


def test_preview_runs_checks_diff_and_policy_preview_on_pull_requests() -> None:
    doc = load(WORKFLOWS / "preview.yml")
    assert "pull_request" in doc["on"]
    runs = [s.get("run") for s in doc["jobs"]["checks"]["steps"]]
    assert runs.index("make test") < runs.index("make render-diff BASE_RENDERED=../base/rendered")
    assert {"make test", "make scan", "make render", "make -C ../base render"} <= set(runs)
    setup = next(
        s for s in doc["jobs"]["checks"]["steps"] if s.get("uses", "").startswith("actions/setup-python")
    )
    assert setup["with"]["python-version"] == "3.11" and setup["with"]["cache"] == "pip"
    base = [s for s in doc["jobs"]["checks"]["steps"] if s.get("with", {}).get("path") == "base"]
    assert base and base[0]["with"]["ref"] == "${{ github.event.pull_request.base.sha }}"
    step = _pulumi_step(doc, "preview")
    assert step["with"]["command"] == "preview"
    assert step["with"]["stack-name"] == "pi-k3s"
    assert step["with"]["policyPacks"] == "policy"
    assert step["with"]["comment-on-pr"] is True
    assert step["env"]["PULUMI_ACCESS_TOKEN"] == "${{ secrets.PULUMI_ACCESS_TOKEN }}"
    assert doc["jobs"]["preview"]["permissions"]["pull-requests"] == "write"


def test_deploy_runs_in_the_lan_one_at_a_time_and_always_notifies() -> None:
    doc = load(WORKFLOWS / "deploy.yml")
    assert doc["on"]["push"]["branches"] == ["main"] and "workflow_dispatch" in doc["on"]
    assert doc["concurrency"]["cancel-in-progress"] is False
    job = doc["jobs"]["up"]
    assert job["runs-on"] == ["self-hosted", "linux", "lan"]
    step = _pulumi_step(doc, "up")
    assert step["with"]["command"] == "up" and step["with"]["stack-name"] == "pi-k3s"
    notify = next(s for s in job["steps"] if s.get("run") == "make notify")
    assert notify["if"] == "always()"
    assert notify["env"]["DISCORD_WEBHOOK_URL"] == "${{ secrets.DISCORD_WEBHOOK_URL }}"
    assert notify["env"]["NOTIFY_OUTCOME"] == f"${{{{ steps.{step['id']}.outcome }}}}"
    assert "actions/runs/${{ github.run_id }}" in notify["env"]["NOTIFY_RUN_URL"]


def test_shellcheck_accepts_the_ci_scripts() -> None:
    shellcheck = require_tool("shellcheck")
    result = subprocess.run(
        [shellcheck, ".ci/run", ".ci/install-tools"], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0, result.stdout


def _stub(directory: Path, name: str, body: str = "") -> None:
    path = directory / name
    path.write_text(f'#!/bin/bash\necho "{name} $*" >> "$CALLS"\n{body}\n')
    path.chmod(0o755)


def _install_tools_run(
    tmp_path: Path,
    *,
    uid: str = "0",
    tools_present: bool = False,
    validator_present: bool = False,
    missing: tuple[str, ...] = (),
    sudo_body: str = '[ "$1" = -n ] && shift\n"$@"',
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """.ci/install-tools in a copy of the repository, every command it may call a stub."""
    repo, stubs = tmp_path / "repo", tmp_path / "bin"
    (repo / ".ci").mkdir(parents=True)
    stubs.mkdir()
    shutil.copy(ROOT / ".ci" / "install-tools", repo / ".ci" / "install-tools")
    for tool in {"apt-get", "npm", "sudo"} - set(missing):
        _stub(stubs, tool, sudo_body if tool == "sudo" else "")
    _stub(stubs, "id", f"echo {uid}")
    (stubs / "dirname").symlink_to(shutil.which("dirname") or "/usr/bin/dirname")
    if tools_present:
        for tool in (
            *("unbound-checkconf", "unbound-anchor", "shellcheck", "promtool", "amtool"),
            *("busybox", "sqlite3", "ssh", "ssh-keygen", "ssh-keyscan", "sshd"),
        ):
            _stub(stubs, tool)
    if validator_present:
        bin_dir = repo / "tools" / "node" / "node_modules" / ".bin"
        bin_dir.mkdir(parents=True)
        _stub(bin_dir, "renovate-config-validator")
    calls = tmp_path / "calls"
    calls.touch()
    env = {"PATH": str(stubs), "CALLS": str(calls), "HOME": str(tmp_path)}
    result = subprocess.run(
        ["/bin/bash", str(repo / ".ci" / "install-tools")], capture_output=True, text=True, env=env
    )
    return result, [c for c in calls.read_text().splitlines() if not c.startswith("id")]


@pytest.mark.parametrize(
    ("uid", "tools_present", "validator_present", "expected"),
    [
        ("0", False, False, ["apt-get update -qq", "apt-get install", "npm ci --prefix tools/node"]),
        (
            "1000",
            False,
            True,
            [
                "sudo -n true",
                "sudo -n apt-get update -qq",
                "apt-get update -qq",
                "sudo -n apt-get install",
                "apt-get install",
            ],
        ),
        ("0", True, True, []),
    ],
)
def test_install_tools_installs_only_what_is_missing(
    tmp_path: Path, uid: str, tools_present: bool, validator_present: bool, expected: list[str]
) -> None:
    result, recorded = _install_tools_run(
        tmp_path, uid=uid, tools_present=tools_present, validator_present=validator_present
    )
    assert result.returncode == 0, result.stderr
    assert len(recorded) == len(expected), recorded
    for call, want in zip(recorded, expected, strict=True):
        assert call.startswith(want), (call, want)


APT_COMMAND = (
    "sudo apt-get update && sudo apt-get install -y --no-install-recommends "
    "unbound unbound-anchor shellcheck prometheus prometheus-alertmanager busybox sqlite3 "
    "openssh-client openssh-server"
)


@pytest.mark.parametrize(
    ("case", "kwargs", "command"),
    [
        ("sudo wants a password", {"uid": "1000", "sudo_body": "exit 1"}, APT_COMMAND),
        ("no sudo", {"uid": "1000", "missing": ("sudo",)}, APT_COMMAND),
        ("no apt-get", {"missing": ("apt-get",)}, APT_COMMAND),
        (
            "no npm",
            {"tools_present": True, "missing": ("npm",)},
            "install Node.js 20 or 22 with npm, then: npm ci --prefix tools/node --no-audit --no-fund "
            "--ignore-scripts",
        ),
    ],
)
def test_install_tools_stops_at_once_with_the_command_that_installs(
    tmp_path: Path, case: str, kwargs: dict[str, Any], command: str
) -> None:
    result, recorded = _install_tools_run(tmp_path, **kwargs)
    assert result.returncode == 1, case
    assert result.stderr.splitlines()[-1] == f"  {command}"
    assert not [c for c in recorded if c.startswith(("apt-get", "npm"))]
