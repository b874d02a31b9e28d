"""The README and docs/ are the operator's documentation: every command in the bash blocks of
every Markdown file names a Makefile target, a `pulumi` command, a script in the repository or a
listed standard tool; every relative link resolves inside the repository; the guide's 1Password
table covers every item the program reads; its outputs table matches the stack's outputs."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.test_workflows import make_targets_of, makefile_targets
from tools import mockrun

README = ROOT / "README.md"
GUIDE = ROOT / "docs" / "operations.md"


def markdown_files() -> list[Path]:
    """Every Markdown file of the project (not the virtualenvs or node_modules)."""
    skip = {"venv", ".venv", ".scan-venv", "node_modules", "rendered", ".git", ".cache"}
    return sorted(p for p in ROOT.rglob("*.md") if not skip & set(p.relative_to(ROOT).parts))


def all_docs() -> str:
    return "\n".join(p.read_text() for p in markdown_files())


# Standard tools the guide may call besides make, pulumi and repository scripts, and why.
STANDARD_TOOLS = {
    "ssh": "run a command on a node (the remote command runs there, not here)",
    "ssh-keygen": "create the cluster's SSH key, forget a dead host's key",
    "ssh-copy-id": "authorise a new SSH key on a node",
    "ssh-keyscan": "read a node's SSH host key to record it as the node's hostKey",
    "umask": "shell builtin: make the kubeconfig readable by its owner alone",
    "curl": "fetch K3s's install.sh at a new tag to record its sha256",
    "sha256sum": "the digest of K3s's install.sh for k3s.installerSha256",
    "kubectl": "inspect and operate the cluster with the stack's kubeconfig",
    "git": "get the repository",
    "cd": "shell builtin",
    "export": "shell builtin",
    "op": "1Password CLI: create vault, items and the service account",
    "gh": "GitHub CLI: set the repository secrets the workflows read",
    "dig": "check that Pi-hole answers DNS",
    "rsync": "copy backups back from the NAS (the tool the backup jobs use)",
    "date": "a timestamp for ExternalSecret force-sync",
}
# `pulumi` subcommands of the CLI (pulumi --help).
PULUMI_COMMANDS = {
    "about", "cancel", "config", "console", "convert", "destroy", "env", "import", "install",
    "login", "logout", "new", "org", "package", "plugin", "policy", "preview", "refresh",
    "schema", "stack", "state", "up", "version", "watch", "whoami",
}  # fmt: skip
SEPARATORS = {"&&", "||", "|", ";", "&"}
REDIRECTS = {"<", ">", ">>", "2>", "2>&1"}


def bash_blocks(text: str) -> list[str]:
    return re.findall(r"^```bash\n(.*?)^```", text, flags=re.M | re.S)


def commands(block: str) -> list[list[str]]:
    """Each simple command of a bash block as its words (substitutions checked separately)."""
    out: list[list[str]] = []
    for line in block.replace("\\\n", " ").splitlines():
        inner = re.findall(r"\$\(([^()]*)\)", line)
        line = re.sub(r"\$\(([^()]*)\)", "SUBST", line)
        for sub in inner:
            out += commands(sub)
        lex = shlex.shlex(line, posix=True, punctuation_chars=";&|<>")
        lex.whitespace_split = True
        lex.commenters = "#"
        words: list[str] = []
        skip_next = False
        for token in lex:
            if token in SEPARATORS:
                if words:
                    out.append(words)
                words = []
            elif token in REDIRECTS:
                skip_next = True
            elif skip_next:
                skip_next = False
            else:
                words.append(token)
        if words:
            out.append(words)
    return out


def problems(text: str, targets: set[str]) -> list[str]:
    found: list[str] = []
    for block in bash_blocks(text):
        for words in commands(block):
            while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
                words = words[1:]  # leading variable assignments
            if not words:
                continue
            first, line = words[0], " ".join(words)
            if first == "make":
                asked = make_targets_of(line) or []
                found += [f"{line!r}: no Makefile target {t!r}" for t in asked if t not in targets]
            elif first == "pulumi":
                if len(words) < 2 or words[1] not in PULUMI_COMMANDS:
                    found.append(f"{line!r}: not a pulumi command")
            elif "/" in first:
                if not (ROOT / first).is_file():
                    found.append(f"{line!r}: no script {first} in the repository")
            elif first not in STANDARD_TOOLS:
                found.append(f"{line!r}: {first!r} is not make, pulumi, a script or a listed tool")
    return found


def test_docs_exist_and_readme_is_the_front_door() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in markdown_files()}
    assert {"README.md", "docs/architecture.md", "docs/operations.md"} <= names
    assert len(README.read_text().splitlines()) <= 250
    assert "```mermaid" in (ROOT / "docs" / "architecture.md").read_text()


@pytest.mark.parametrize("doc", [p.relative_to(ROOT).as_posix() for p in markdown_files()])
def test_doc_commands_name_targets_pulumi_scripts_or_listed_tools(doc: str) -> None:
    assert problems((ROOT / doc).read_text(), makefile_targets()) == []


def test_docs_have_commands() -> None:
    assert len(bash_blocks(GUIDE.read_text())) >= 10
    assert len(bash_blocks(README.read_text())) >= 2


def test_the_guides_use_make_and_pulumi() -> None:
    firsts = {words[0] for block in bash_blocks(all_docs()) for words in commands(block) if words}
    assert {"make", "pulumi", "kubectl", "ssh"} <= firsts


def test_readme_check_catches_unknown_commands() -> None:
    text = (
        "```bash\nmake no-such-target\nfrobnicate --all   # comment\n./missing.sh\npulumi frobnicate\n"
        "kubectl get pods | tr a b\nX=1 make render && echo $(date)\n```\n"
    )
    found = problems(text, {"render"})
    assert any("no-such-target" in p for p in found)
    assert any("'frobnicate'" in p for p in found)
    assert any("no script ./missing.sh" in p for p in found)
    assert any("not a pulumi command" in p for p in found)
    assert any("'tr'" in p for p in found) and any("'echo'" in p for p in found)
    assert not any("render" in p or "kubectl" in p or "date" in p for p in found)
    assert problems("```bash\n.ci/run\n```\n", set()) == []


def test_command_splitting() -> None:
    assert commands("a 'b && c' && d <in > out\n# x\ne \\\n  f  # note\n") == [
        ["a", "b && c"],
        ["d"],
        ["e", "f"],
    ]
    split = commands("k annotate x force=$(date +%s)")
    assert split == [["date", "+%s"], ["k", "annotate", "x", "force=SUBST"]]


# --- 1Password items --------------------------------------------------------------------------


def section(text: str, heading: str) -> str:
    start = text.index(heading)
    rest = text[start + len(heading) :]
    end = re.search(r"^#{1,3} ", rest, flags=re.M)
    return rest[: end.start()] if end else rest


def item_table(text: str) -> set[tuple[str, str]]:
    body = section(text, "### 1Password items")
    return {(m[0], m[1]) for m in re.findall(r"^\| `([^`]+)` \| `([^`]+)` \|", body, flags=re.M)}


def referenced_items(result: mockrun.Result, prefix: str = "") -> set[tuple[str, str]]:
    refs: set[tuple[str, str]] = set()
    for obj in result.manifests("ExternalSecret"):
        for entry in obj.get("spec", {}).get("data", []):
            key = entry["remoteRef"]["key"].removeprefix(prefix)
            item, _, field = key.partition("/")
            refs.add((item, field))
    return refs


def test_every_1password_reference_is_in_the_readme_table(pi_k3s: mockrun.Result, stack_values: Any) -> None:
    prefix = (stack_values.get("pi-cluster:onepassword") or {}).get("itemPrefix", "")
    table = item_table(GUIDE.read_text())
    assert ("pihole", "password") in table and len(table) >= 10
    assert referenced_items(pi_k3s, prefix) - table == set()


def test_item_check_catches_a_missing_row() -> None:
    table = item_table(GUIDE.read_text())
    assert {("pihole", "password"), ("grafana", "admn-password")} - table == {("grafana", "admn-password")}


# --- stack outputs ----------------------------------------------------------------------------


def documented_outputs(text: str) -> set[str]:
    body = section(text, "## What each stack output means")
    return set(re.findall(r"^\| `([A-Za-z]+)` \|", body, flags=re.M))


def test_every_stack_output_is_documented_and_nothing_else(pi_k3s: mockrun.Result) -> None:
    documented = documented_outputs(GUIDE.read_text())
    assert set(pi_k3s.outputs) <= documented
    assert documented == set(pi_k3s.outputs)
    assert {"urls", "dnsServer", "nodes", "kubeconfig"} <= set(pi_k3s.outputs)
    assert "kubeconfig" in pi_k3s.secret_outputs


@pytest.mark.parametrize("tool", sorted(STANDARD_TOOLS))
def test_every_listed_tool_has_a_reason(tool: str) -> None:
    assert len(STANDARD_TOOLS[tool]) > 10


def test_readme_keeps_the_lan_runner_and_secrets_explained() -> None:
    text = section(GUIDE.read_text(), "## Delivery: pull requests and deploys")
    for needle in ("not reachable from the internet", "`lan`", "PULUMI_ACCESS_TOKEN", "DISCORD_WEBHOOK_URL"):
        assert needle in text


# --- links ------------------------------------------------------------------------------------

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")


def heading_anchors(text: str) -> set[str]:
    """GitHub's anchors: lower case, punctuation but `-` and `_` dropped, spaces to `-`."""
    anchors = set()
    for title in re.findall(r"^#{1,6} (.+)$", text, flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


def broken_links(doc: Path, root: Path = ROOT) -> list[str]:
    """Relative links of a Markdown file that leave the repository or name a missing file or
    heading (absolute URLs are not followed)."""
    found: list[str] = []
    text = re.sub(r"^```.*?^```", "", doc.read_text(), flags=re.M | re.S)
    for m in LINK.finditer(text):
        target = m.group(1) or m.group(2)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):
            continue  # https:, mailto:
        path, _, anchor = target.partition("#")
        dest = (doc.parent / path).resolve() if path else doc
        if root not in dest.parents and dest != root:
            found.append(f"{doc.name}: {target!r} leaves the repository")
        elif not dest.exists():
            found.append(f"{doc.name}: {target!r} does not exist")
        elif anchor and dest.suffix == ".md" and anchor not in heading_anchors(dest.read_text()):
            found.append(f"{doc.name}: {target!r} names no heading of {dest.name}")
    return found


@pytest.mark.parametrize("doc", [p.relative_to(ROOT).as_posix() for p in markdown_files()])
def test_every_relative_link_resolves_inside_the_repository(doc: str) -> None:
    assert broken_links(ROOT / doc) == []


def test_link_check_catches_outside_missing_and_bad_anchor(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "docs").mkdir(parents=True)
    (root / "README.md").write_text("# x\n")
    (root / "docs" / "operations.md").write_text("# Guide\n\n## Rotate a secret\n")
    doc = root / "docs" / "probe.md"
    doc.write_text(
        "[a](../../elsewhere/ARCHITECTURE.md) [b](missing.md) [c](operations.md#no-such-heading)"
        " [d](operations.md#rotate-a-secret) [e](https://example.org/x) [f](../README.md)\n"
        "```bash\n[g](inside-a-code-block.md)\n```\n"
    )
    found = broken_links(doc, root)
    assert len(found) == 3, found
    assert "leaves the repository" in found[0] and "does not exist" in found[1]
    assert "names no heading" in found[2]
