"""The tools the workflows call through make: the Discord deploy notice (against a fake webhook
on 127.0.0.1 and a stub `pulumi`) and the rendered diff for the job summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tools import notify, render_diff

HISTORY = [
    {
        "kind": "update",
        "result": "succeeded",
        "version": 42,
        "resourceChanges": {"create": 3, "update": 1, "delete": 0, "same": 57},
    }
]


@dataclass
class FakeDiscord:
    """A webhook endpoint on 127.0.0.1 answering with the queued status codes (then 204)."""

    statuses: list[int] = field(default_factory=list)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def discord() -> Iterator[FakeDiscord]:
    fake = FakeDiscord()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            fake.bodies.append(json.loads(self.rfile.read(length)))
            fake.headers.append(dict(self.headers))
            status = fake.statuses.pop(0) if fake.statuses else 204
            self.send_response(status)
            if status == 429:
                self.send_header("Retry-After", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}/api/webhooks/123/very-secret-token"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notify, "_sleep", lambda _s: None)


def stub_pulumi(tmp_path: Path, stdout: str, code: int = 0) -> Path:
    calls = tmp_path / "pulumi-calls"
    stub = tmp_path / "pulumi"
    stub.write_text(f"#!/bin/bash\necho \"$*\" >> {calls}\ncat <<'JSON'\n{stdout}\nJSON\nexit {code}\n")
    stub.chmod(0o755)
    return stub


def env(discord: FakeDiscord, pulumi: Path, **extra: str) -> dict[str, str]:
    return {
        "DISCORD_WEBHOOK_URL": discord.url,
        "PULUMI": str(pulumi),
        "NOTIFY_STACK": "pi-k3s",
        "NOTIFY_OUTCOME": "success",
        "NOTIFY_RUN_URL": "https://github.com/o/r/actions/runs/7",
        "NOTIFY_COMMIT": "0123456789abcdef",
        "NOTIFY_ACTOR": "mtgibbs",
        **extra,
    }


def test_notice_carries_outcome_counts_and_run_link(tmp_path: Path, discord: FakeDiscord) -> None:
    pulumi = stub_pulumi(tmp_path, json.dumps(HISTORY))
    assert notify.main(env(discord, pulumi)) == 0
    (body,) = discord.bodies
    embed = body["embeds"][0]
    assert embed["title"] == "pulumi up pi-k3s: success"
    assert embed["url"] == "https://github.com/o/r/actions/runs/7"
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["Resources"] == "3 created, 1 updated, 57 unchanged"
    assert fields["Stack version"] == "42" and fields["Commit"] == "`0123456789ab`"
    assert body["allowed_mentions"] == {"parse": []}
    assert discord.headers[0]["Content-Type"] == "application/json"
    calls = (tmp_path / "pulumi-calls").read_text()
    assert "stack history --stack pi-k3s --json --page-size 1" in calls
    assert "--show-secrets" not in calls


def test_failed_deploy_is_reported_red(tmp_path: Path, discord: FakeDiscord) -> None:
    history = [{**HISTORY[0], "result": "failed", "resourceChanges": {"create": 1, "same": 9}}]
    pulumi = stub_pulumi(tmp_path, json.dumps(history))
    assert notify.main(env(discord, pulumi, NOTIFY_OUTCOME="failure")) == 0
    embed = discord.bodies[0]["embeds"][0]
    assert embed["title"].endswith("failure") and embed["color"] == notify.COLOURS["failure"]


def test_counts_unavailable_still_sends_a_notice(tmp_path: Path, discord: FakeDiscord) -> None:
    pulumi = stub_pulumi(tmp_path, "error: no stack", code=255)
    assert notify.main(env(discord, pulumi, NOTIFY_OUTCOME="failure")) == 0
    assert "unavailable" in discord.bodies[0]["embeds"][0]["fields"][0]["value"]
    assert notify.main(env(discord, tmp_path / "no-such-pulumi")) == 0
    assert notify.counts_text({"resourceChanges": {"same": 0}}) == "no resources"


def test_rate_limit_and_server_errors_are_retried(tmp_path: Path, discord: FakeDiscord) -> None:
    discord.statuses = [429, 502]
    assert notify.main(env(discord, stub_pulumi(tmp_path, "[]"))) == 0
    assert len(discord.bodies) == 3


def test_refused_notice_fails_without_printing_the_webhook(
    tmp_path: Path, discord: FakeDiscord, capsys: pytest.CaptureFixture[str]
) -> None:
    discord.statuses = [404]
    assert notify.main(env(discord, stub_pulumi(tmp_path, "[]"))) == 1
    out = capsys.readouterr()
    assert "HTTP 404" in out.err
    assert "very-secret-token" not in out.err + out.out
    assert len(discord.bodies) == 1


def test_missing_webhook_fails_clearly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert notify.main({"PULUMI": str(tmp_path / "none")}) == 1
    assert "DISCORD_WEBHOOK_URL" in capsys.readouterr().err


def test_unreachable_webhook_fails_without_printing_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    url = "http://127.0.0.1:9/api/webhooks/1/very-secret-token"  # discard port: connection refused
    assert notify.main({"DISCORD_WEBHOOK_URL": url, "PULUMI": str(tmp_path / "none")}) == 1
    out = capsys.readouterr()
    assert "unreachable" in out.err and "very-secret-token" not in out.err + out.out


def test_make_notify_runs_the_tool(tmp_path: Path, discord: FakeDiscord) -> None:
    """The exact command deploy.yml runs, with the webhook from the environment."""
    pulumi = stub_pulumi(tmp_path, json.dumps(HISTORY))
    result = subprocess.run(
        ["make", "--no-print-directory", "notify", f"PY={sys.executable}", "VENV=venv"],
        cwd=ROOT,
        env={**os.environ, **env(discord, pulumi)},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "very-secret-token" not in result.stdout + result.stderr
    assert discord.bodies[0]["embeds"][0]["fields"][0]["value"].startswith("3 created")


# --- rendered diff ---------------------------------------------------------------------------


def tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_diff_lists_added_removed_and_changed_files(tmp_path: Path) -> None:
    base = tree(tmp_path / "base", {"manifests/a.yaml": "x: 1\n", "manifests/gone.yaml": "y\n", "same": "s"})
    head = tree(tmp_path / "head", {"manifests/a.yaml": "x: 2\n", "manifests/new.yaml": "z\n", "same": "s"})
    diff = render_diff.compare(base, head)
    assert diff.added == ["manifests/new.yaml"] and diff.removed == ["manifests/gone.yaml"]
    assert "-x: 1\n+x: 2\n" in diff.changed["manifests/a.yaml"]
    text = render_diff.markdown(diff)
    assert "| 1 | 1 | 1 |" in text
    assert "- changed `manifests/a.yaml`" in text and "````diff" in text
    assert "same" not in diff.changed


def test_no_change_says_so(tmp_path: Path) -> None:
    a = tree(tmp_path / "a", {"f": "1"})
    assert "No change in rendered/." in render_diff.markdown(render_diff.compare(a, a))


def test_long_diffs_are_cut_under_the_summary_limit(tmp_path: Path) -> None:
    base = tree(tmp_path / "b", {f"f{i}": "a\n" * 200 for i in range(20)})
    head = tree(tmp_path / "h", {f"f{i}": "b\n" * 200 for i in range(20)})
    text = render_diff.markdown(render_diff.compare(base, head), limit=5_000)
    assert len(text) < 5_500 and "Diffs cut at 5000 characters" in text


def test_summary_is_appended_to_the_step_summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    head = tree(tmp_path / "h", {"f": "1"})
    summary = tmp_path / "summary.md"
    summary.write_text("before\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert render_diff.main(["--base", str(tmp_path / "missing"), "--head", str(head)]) == 0
    text = summary.read_text()
    assert text.startswith("before\n") and "every file is shown as added" in text and "- added `f`" in text
    assert render_diff.main(["--base", str(head), "--head", str(tmp_path / "none")]) == 2
