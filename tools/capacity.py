"""Print the capacity proof: per node, requested and limited CPU/memory against allocatable.

    python -m tools.capacity [--stack pi-k3s]

Runs the program under mocks (as `make render` does) and reads the stack output ``capacity``;
a stack that does not fit fails here with the same message as ``pulumi preview``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tools import batch

if __name__ == "__main__":  # one short batch run: before the SDK imports below (tools/batch.py)
    batch.collect_rarely()

from tools import mockrun

COLUMNS = (
    "node",
    "cpu req",
    "cpu limit",
    "cpu alloc",
    "mem req",
    "mem limit",
    "mem alloc",
    "headroom",
    "pods",
)


def table(capacity: dict[str, dict[str, Any]]) -> str:
    rows = [COLUMNS]
    for node, row in capacity.items():
        rows.append(
            (
                node,
                row["requested"]["cpu"],
                row["limit"]["cpu"],
                row["allocatable"]["cpu"],
                row["requested"]["memory"],
                row["limit"]["memory"],
                row["allocatable"]["memory"],
                f"{row['headroomPercent']}%",
                str(len(row["pods"])),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    for node, row in capacity.items():
        lines.append(f"\n{node}:")
        lines += [f"  {pod}" for pod in row["pods"]] or ["  (no pods)"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="pi-k3s")
    args = parser.parse_args(argv)
    from config.settings import SettingsError

    try:
        result = mockrun.run(args.stack)
    except SettingsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(table(result.outputs["capacity"]))
    return 0


if __name__ == "__main__":
    code = main()
    batch.skip_collections_at_exit()
    sys.exit(code)
