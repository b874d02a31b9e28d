"""The repository stands on its own: no file of it refers to a path outside it (the shared folder
beside a checkout, absolute paths of a development machine). The one exception is .ci/run
pointing CHART_MIRROR at a chart mirror beside the clone when one is there."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.conftest import ROOT, require_tool

# Written so that this file does not match itself: "[s]" and "[k]" are those letters.
# A path built in code counts too: ``ROOT.parent / "[s]hared"``.
OUTSIDE = re.compile(r"\.\./[s]hared\b|\.parent\s*/\s*[\"'][s]hared[\"']|(?<![\w.$~-])/wor[k](?![\w-])")
ALLOWED = {(".ci/run", "export CHART_MIRROR=.." + "/shared/charts")}


def repository_files(root: Path) -> list[str]:
    """Tracked and new (not ignored) files, as git sees the work tree."""
    git = require_tool("git")
    out = subprocess.run(
        [git, "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        capture_output=True,
        text=True,
        cwd=root,
        check=True,
    ).stdout
    return sorted(name for name in out.split("\0") if name and (root / name).is_file())


def outside_references(root: Path, names: list[str]) -> list[str]:
    """``file:line: text`` for each line that names a path outside the repository."""
    found = []
    for name in names:
        try:
            text = (root / name).read_text()
        except UnicodeDecodeError:
            continue  # a binary file names no path
        for number, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line) and not any(name == f and ok in line for f, ok in ALLOWED):
                found.append(f"{name}:{number}: {line.strip()}")
    return found


def test_no_file_refers_to_a_path_outside_the_repository() -> None:
    names = repository_files(ROOT)
    assert len(names) > 100
    assert outside_references(ROOT, names) == []


def test_outside_references_are_found_and_only_ci_runs_mirror_line_is_allowed(tmp_path: Path) -> None:
    shared = "../" + "shared"
    work = "/" + "work"
    (tmp_path / ".ci").mkdir()
    (tmp_path / ".ci" / "run").write_text(
        f"if [ -f {shared}/charts/index.yaml ]; then export CHART_MIRROR={shared}/charts; fi\n"
        f"export CRD_SCHEMAS={shared}/crd-schemas\n"
    )
    (tmp_path / "conf.py").write_text(
        f'A = "{work}/.mirror/x"\nB = "{work}"\nC = "https://example.com{work}/x"\nD = "$HOME{work}/x"\n'
        f'E = "{work}er/x"\n'
        'F = ROOT.parent / "' + "shared" + '" / "crd-schemas"\nG = ROOT.parent / "sharedx"\n'
    )
    (tmp_path / "blob.bin").write_bytes(b"\xff\xfe" + shared.encode())
    found = outside_references(tmp_path, [".ci/run", "blob.bin", "conf.py"])
    assert found == [
        f".ci/run:2: export CRD_SCHEMAS={shared}/crd-schemas",
        f'conf.py:1: A = "{work}/.mirror/x"',
        f'conf.py:2: B = "{work}"',
        'conf.py:6: F = ROOT.parent / "' + "shared" + '" / "crd-schemas"',
    ]
