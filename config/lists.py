"""Data files the DNS stack ships: Pi-hole's block lists (URLs) and allowlisted domains.

One entry per line, ``#`` starts a comment (whole line or trailing). A bad line is reported with
its file and line number, so a typo is caught at preview rather than by gravity on the Pi.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9_]([-a-z0-9_]{0,61}[a-z0-9])?\.)+[a-z][-a-z0-9]{0,61}[a-z0-9]$")


def resolve(path: str) -> Path:
    """A data file path as written in settings: relative to the project root, or absolute."""
    p = Path(path)
    return p if p.is_absolute() else ROOT / p


def _entries(path: str) -> tuple[list[tuple[int, str]], list[str]]:
    file = resolve(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as err:
        return [], [f"{path}: cannot read ({err.strerror or err})"]
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        # A comment is a whole line starting with '#' or ' #...' after the value.
        value = re.split(r"\s+#", line.strip(), maxsplit=1)[0].strip()
        if value and not value.startswith("#"):
            entries.append((number, value))
    return entries, []


def _check_duplicates(path: str, entries: list[tuple[int, str]], key: str) -> list[str]:
    first: dict[str, int] = {}
    problems = []
    for number, value in entries:
        norm = value.lower() if key == "domain" else value
        if norm in first:
            problems.append(f"{path}:{number}: duplicate {key} {value!r} (first on line {first[norm]})")
        else:
            first[norm] = number
    return problems


def adlist_problems(path: str) -> tuple[list[str], list[str]]:
    """(URLs in file order, problems). Each URL must be an absolute http(s) URL without spaces."""
    entries, problems = _entries(path)
    urls = []
    for number, value in entries:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in value):
            problems.append(f"{path}:{number}: {value!r} is not an http(s) URL")
        else:
            urls.append(value)
    problems += _check_duplicates(path, entries, "URL")
    return urls, problems


def allowlist_problems(path: str) -> tuple[list[str], list[str]]:
    """(domains in file order, problems). Each entry must be a lowercase DNS name."""
    entries, problems = _entries(path)
    domains = []
    for number, value in entries:
        if not _DOMAIN.match(value):
            problems.append(f"{path}:{number}: {value!r} is not a lowercase domain name")
        else:
            domains.append(value)
    problems += _check_duplicates(path, entries, "domain")
    return domains, problems
