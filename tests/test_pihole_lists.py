"""The list reconciler (components/scripts/pihole-lists.sh) run for real against a fake Pi-hole v6 API."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.lists import adlist_problems, allowlist_problems
from tests.conftest import ROOT, require_tool
from tests.fake_pihole import FakePihole

SCRIPT = ROOT / "components" / "scripts" / "pihole-lists.sh"
ADLISTS = adlist_problems("config/adlists.txt")[0]
ALLOW = allowlist_problems("config/allowlist.txt")[0]


@pytest.fixture
def pihole() -> Iterator[FakePihole]:
    fake = FakePihole()
    fake.url = fake.start()  # type: ignore[attr-defined]
    yield fake
    fake.stop()


def run(
    fake: FakePihole,
    tmp_path: Path,
    adlists: list[str] = ADLISTS,
    allow: list[str] = ALLOW,
    password: str | None = None,
    url: str | None = None,
    **env: str,
) -> subprocess.CompletedProcess[str]:
    for tool in ("bash", "curl", "jq"):
        require_tool(tool)
    (tmp_path / "adlists.txt").write_text("# comment\n\n" + "\n".join(adlists) + "\n")
    (tmp_path / "allowlist.txt").write_text("\n".join(f"{d}   # why" for d in allow) + "\n")
    environment = {
        "PATH": os.environ["PATH"],
        "PIHOLE_URL": url or fake.url,  # type: ignore[attr-defined]
        "PIHOLE_PASSWORD": fake.password if password is None else password,
        "ADLISTS_FILE": str(tmp_path / "adlists.txt"),
        "ALLOWLIST_FILE": str(tmp_path / "allowlist.txt"),
        "ATTEMPTS": "3",
        "TIMEOUT": "5",
        "RETRY_DELAY": "0",
        **env,
    }
    return subprocess.run(
        ["bash", str(SCRIPT)], env=environment, capture_output=True, text=True, timeout=120, check=False
    )


def writes(fake: FakePihole) -> list[tuple[str, str]]:
    return [
        (c.method, c.path) for c in fake.calls if c.method in ("POST", "DELETE") and c.path != "/api/auth"
    ]


def test_first_run_adds_every_list_and_domain_then_gravity(pihole: FakePihole, tmp_path: Path) -> None:
    result = run(pihole, tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(pihole.lists) == sorted(ADLISTS) and len(pihole.lists) == 25
    assert sorted(pihole.allow) == sorted(ALLOW)
    assert all(v["type"] == "block" and v["enabled"] for v in pihole.lists.values())
    assert pihole.gravity_runs == 1
    # one login, one logout, the session is gone
    assert len(pihole.made("POST", "/api/auth")) == 1
    assert len(pihole.made("DELETE", "/api/auth")) == 1
    assert pihole.sessions == set()
    # the password travels only in the login body, never in a URL
    assert all(pihole.password not in c.path and pihole.password not in str(c.query) for c in pihole.calls)


def test_second_run_changes_nothing(pihole: FakePihole, tmp_path: Path) -> None:
    assert run(pihole, tmp_path).returncode == 0
    pihole.calls.clear()
    result = run(pihole, tmp_path)
    assert result.returncode == 0, result.stderr
    assert writes(pihole) == []
    assert pihole.gravity_runs == 1
    assert "nothing changed" in result.stderr
    assert len(pihole.made("DELETE", "/api/auth")) == 1 and pihole.sessions == set()


def test_removing_one_url_deletes_exactly_that_list(pihole: FakePihole, tmp_path: Path) -> None:
    assert run(pihole, tmp_path).returncode == 0
    pihole.calls.clear()
    gone = next(u for u in ADLISTS if "%20" in u)  # contains "%20": the API path must encode it once more
    assert "%20" in gone
    result = run(pihole, tmp_path, adlists=[u for u in ADLISTS if u != gone])
    assert result.returncode == 0, result.stderr
    assert writes(pihole) == [("DELETE", f"/api/lists/{gone}"), ("POST", "/api/action/gravity")]
    assert sorted(pihole.lists) == sorted(u for u in ADLISTS if u != gone)
    assert pihole.sessions == set()


def test_removing_an_allowlisted_domain_deletes_it(pihole: FakePihole, tmp_path: Path) -> None:
    assert run(pihole, tmp_path).returncode == 0
    pihole.calls.clear()
    assert run(pihole, tmp_path, allow=ALLOW[1:]).returncode == 0
    assert writes(pihole) == [
        ("DELETE", f"/api/domains/allow/exact/{ALLOW[0]}"),
        ("POST", "/api/action/gravity"),
    ]


def test_lists_added_by_hand_are_removed(pihole: FakePihole, tmp_path: Path) -> None:
    """The data file is the single owner of the block lists."""
    pihole.lists["https://example.org/hand-added.txt"] = {
        "address": "https://example.org/hand-added.txt",
        "type": "block",
        "enabled": True,
    }
    assert run(pihole, tmp_path).returncode == 0
    assert "https://example.org/hand-added.txt" not in pihole.lists


def test_wrong_password_fails_clearly(pihole: FakePihole, tmp_path: Path) -> None:
    result = run(pihole, tmp_path, password="wrong")
    assert result.returncode != 0
    assert "Pi-hole rejected the password (HTTP 401" in result.stderr
    assert "wrong" not in result.stderr
    assert pihole.lists == {} and pihole.gravity_runs == 0
    assert pihole.sessions == set()


def test_session_released_when_a_later_step_fails(pihole: FakePihole, tmp_path: Path) -> None:
    pihole.fail[("POST", "/api/lists")] = [400]
    result = run(pihole, tmp_path)
    assert result.returncode != 0
    assert "adding block lists: HTTP 400" in result.stderr
    assert len(pihole.made("DELETE", "/api/auth")) == 1
    assert pihole.sessions == set()


def test_session_released_when_gravity_fails(pihole: FakePihole, tmp_path: Path) -> None:
    pihole.fail[("POST", "/api/action/gravity")] = [500]
    result = run(pihole, tmp_path)
    assert result.returncode != 0
    assert "gravity did not finish" in result.stderr
    assert pihole.sessions == set()


def test_transient_errors_are_retried(pihole: FakePihole, tmp_path: Path) -> None:
    pihole.fail[("GET", "/api/lists")] = [503, 503]
    result = run(pihole, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "HTTP 503 (try 1 of 3)" in result.stderr and "HTTP 503 (try 2 of 3)" in result.stderr
    assert len(pihole.lists) == 25


def test_retries_are_bounded(pihole: FakePihole, tmp_path: Path) -> None:
    pihole.fail[("GET", "/api/lists")] = [503] * 10
    result = run(pihole, tmp_path)
    assert result.returncode != 0
    assert len(pihole.made("GET", "/api/lists")) == 3
    assert "cannot read block lists" in result.stderr
    assert pihole.sessions == set()


def test_a_hanging_request_times_out(pihole: FakePihole, tmp_path: Path) -> None:
    pihole.fail[("GET", "/api/domains")] = [("hang", 4), ("hang", 4)]
    started = time.monotonic()
    result = run(pihole, tmp_path, TIMEOUT="1", ATTEMPTS="2")
    assert result.returncode != 0
    assert time.monotonic() - started < 30
    assert "no answer" in result.stderr
    assert pihole.sessions == set()


def test_unreachable_pihole_fails_after_bounded_tries(pihole: FakePihole, tmp_path: Path) -> None:
    result = run(pihole, tmp_path, url="http://127.0.0.1:9")
    assert result.returncode != 0
    assert result.stderr.count("no answer from http://127.0.0.1:9") == 3
    assert "did not answer after 3 tries" in result.stderr


def test_script_is_shellcheck_clean() -> None:
    shellcheck = require_tool("shellcheck")
    result = subprocess.run([shellcheck, str(SCRIPT)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout
