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


# --- gravity: a 200 that streams failures -------------------------------------------------------


def test_the_fake_streams_gravity_like_ftl(pihole: FakePihole) -> None:
    """200, chunked, whatever gravity reports (FTL src/api/action.c): the status says nothing."""
    import http.client
    from urllib.parse import urlsplit

    pihole.sessions.add("sid-x")
    pihole.lists["https://example.org/gone.txt"] = {
        "address": "https://example.org/gone.txt",
        "type": "block",
    }
    pihole.broken["https://example.org/gone.txt"] = "gone"
    conn = http.client.HTTPConnection(urlsplit(pihole.url).netloc, timeout=10)  # type: ignore[attr-defined]
    conn.request("POST", "/api/action/gravity", headers={"X-FTL-SID": "sid-x"})
    reply = conn.getresponse()
    assert reply.status == 200 and reply.getheader("Transfer-Encoding") == "chunked"
    assert "[✗] List download failed: no cached list available" in reply.read().decode()
    assert pihole.lists["https://example.org/gone.txt"]["status"] == 4


@pytest.mark.parametrize(
    ("how", "status", "reason"),
    [
        ("gone", 4, "download failed and no cached copy exists: it blocks nothing"),
        ("cached", 3, "download failed, the previously cached copy is used"),
    ],
)
def test_a_list_gravity_could_not_download_fails_the_job(
    pihole: FakePihole, tmp_path: Path, how: str, status: int, reason: str
) -> None:
    broken = ADLISTS[3]
    pihole.broken[broken] = how
    result = run(pihole, tmp_path)
    assert result.returncode != 0
    assert pihole.gravity_runs == 1 and pihole.lists[broken]["status"] == status
    assert f"{broken}: {reason}" in result.stderr
    assert "[✗] List download failed" in result.stderr  # gravity's own line, shown
    assert "gravity failed for 1 block list(s)" in result.stderr
    assert pihole.sessions == set()


def test_gravity_success_is_read_from_the_lists_status(pihole: FakePihole, tmp_path: Path) -> None:
    result = run(pihole, tmp_path)
    assert result.returncode == 0, result.stderr
    assert {v["status"] for v in pihole.lists.values()} == {1}
    assert "every block list is in use" in result.stderr
    # after gravity, the lists were read again for their status
    assert pihole.calls[-2].method == "GET" and pihole.calls[-2].path == "/api/lists"


# --- sessions: no free seat --------------------------------------------------------------------


def test_no_free_api_seat_fails_at_once_naming_the_setting(pihole: FakePihole, tmp_path: Path) -> None:
    pihole.max_sessions = 0
    result = run(pihole, tmp_path, ATTEMPTS="5", RETRY_DELAY="1")
    assert result.returncode != 0
    assert len(pihole.made("POST", "/api/auth")) == 1  # not retried
    assert "api_seats_exceeded" in result.stderr and "webserver.api.max_sessions" in result.stderr
    assert pihole.lists == {} and pihole.gravity_runs == 0


def test_other_429s_are_still_retried(pihole: FakePihole, tmp_path: Path) -> None:
    pihole.fail[("GET", "/api/lists")] = [429]
    result = run(pihole, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "HTTP 429 (try 1 of 3)" in result.stderr


# --- writes whose answer is lost ---------------------------------------------------------------------


def test_a_post_applied_but_unanswered_is_not_repeated(pihole: FakePihole, tmp_path: Path) -> None:
    """Pi-hole added the lists but the answer was lost: the collection is read again, nothing is
    missing, nothing is posted twice (a second POST would get UNIQUE errors and fail)."""
    pihole.fail[("POST", "/api/lists")] = [("applied", 504)]
    result = run(pihole, tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(pihole.made("POST", "/api/lists")) == 1
    assert len(pihole.made("GET", "/api/lists")) == 3  # read, read again, status after gravity
    assert "adding got no answer; reading block lists again" in result.stderr
    assert sorted(pihole.lists) == sorted(ADLISTS) and pihole.gravity_runs == 1


def test_a_repeated_post_is_what_would_fail(pihole: FakePihole, tmp_path: Path) -> None:
    """The fake answers a repeated add as FTL does: 201 with a UNIQUE error per item."""
    assert run(pihole, tmp_path).returncode == 0
    import json as _json
    import urllib.request

    pihole.sessions.add("sid-y")
    request = urllib.request.Request(
        f"{pihole.url}/api/lists?type=block",  # type: ignore[attr-defined]
        data=_json.dumps({"address": ADLISTS[:1]}).encode(),
        headers={"X-FTL-SID": "sid-y", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        body = _json.loads(reply.read())
    assert reply.status == 201
    assert body["processed"]["errors"][0]["error"].startswith("UNIQUE constraint failed")


def test_a_delete_applied_but_unanswered_is_not_an_error(pihole: FakePihole, tmp_path: Path) -> None:
    assert run(pihole, tmp_path).returncode == 0
    pihole.calls.clear()
    gone = ADLISTS[0]
    pihole.fail[("DELETE", "/api/lists/")] = [("applied", 502)]
    result = run(pihole, tmp_path, adlists=ADLISTS[1:])
    assert result.returncode == 0, result.stderr
    assert gone not in pihole.lists
    assert len(pihole.made("DELETE", "/api/lists/")) == 1
    assert "reading block lists again" in result.stderr


def test_writes_that_never_get_an_answer_are_bounded(pihole: FakePihole, tmp_path: Path) -> None:
    pihole.fail[("POST", "/api/lists")] = [503] * 10
    result = run(pihole, tmp_path)
    assert result.returncode != 0
    assert len(pihole.made("POST", "/api/lists")) == 3
    assert "block lists: still not in sync after 3 rounds" in result.stderr
    assert pihole.sessions == set()
