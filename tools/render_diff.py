"""The rendered/ diff between the base branch and a pull request, as Markdown for a job summary.

    python -m tools.render_diff --base ../base/rendered --head rendered

Appends to ``$GITHUB_STEP_SUMMARY`` when set (GitHub Actions), otherwise prints. Secrets are
already ``[secret]`` in rendered/, so the diff can be shown as is. Long diffs are cut so the
summary stays under GitHub's 1 MiB limit per step.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

MAX_CHARS = 900_000  # GitHub refuses step summaries over 1 MiB


@dataclass
class Diff:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: dict[str, str] = field(default_factory=dict)  # path -> unified diff

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)


def _files(root: Path) -> dict[str, Path]:
    if not root.is_dir():
        return {}
    return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*")) if p.is_file()}


def compare(base: Path, head: Path) -> Diff:
    """Which rendered files were added, removed or changed from base to head."""
    old, new = _files(base), _files(head)
    diff = Diff(added=sorted(new.keys() - old.keys()), removed=sorted(old.keys() - new.keys()))
    for path in sorted(old.keys() & new.keys()):
        a, b = old[path].read_text(), new[path].read_text()
        if a != b:
            lines = difflib.unified_diff(
                a.splitlines(keepends=True),
                b.splitlines(keepends=True),
                fromfile=f"base/{path}",
                tofile=f"pr/{path}",
            )
            diff.changed[path] = "".join(lines)
    for path in diff.added:
        lines = difflib.unified_diff(
            [], new[path].read_text().splitlines(keepends=True), "/dev/null", f"pr/{path}"
        )
        diff.changed.setdefault(path, "".join(lines))
    return diff


def markdown(diff: Diff, *, base_found: bool = True, limit: int = MAX_CHARS) -> str:
    """The job-summary text: counts, file lists, then one collapsible diff per file."""
    out = ["## Rendered diff against the base branch", ""]
    if not base_found:
        out += ["The base branch has no rendered/ output; every file is shown as added.", ""]
    if diff.empty:
        return "\n".join([*out, "No change in rendered/.", ""])
    modified = [p for p in diff.changed if p not in diff.added]
    out += [
        "| added | removed | changed |",
        "| ---: | ---: | ---: |",
        f"| {len(diff.added)} | {len(diff.removed)} | {len(modified)} |",
        "",
    ]
    out += [f"- added `{p}`" for p in diff.added]
    out += [f"- removed `{p}`" for p in diff.removed]
    out += [f"- changed `{p}`" for p in modified]
    out.append("")
    used = sum(len(line) + 1 for line in out)
    for path, text in diff.changed.items():
        # A four-backtick fence: rendered files may themselves contain ``` (e.g. Markdown in ConfigMaps).
        block = f"<details><summary><code>{path}</code></summary>\n\n````diff\n{text}````\n\n</details>\n"
        if used + len(block) > limit:
            out.append(
                f"Diffs cut at {limit} characters; run `make render` on both branches to see the rest."
            )
            break
        out.append(block)
        used += len(block)
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True, help="rendered/ of the base branch")
    parser.add_argument("--head", type=Path, default=Path("rendered"), help="rendered/ of the change")
    args = parser.parse_args(argv)
    if not args.head.is_dir():
        print(f"render_diff: {args.head} does not exist; run `make render` first", file=sys.stderr)
        return 2
    text = markdown(compare(args.base, args.head), base_found=args.base.is_dir())
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as fh:
            fh.write(text + "\n")
    else:
        sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
