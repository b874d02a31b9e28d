"""Post the outcome of a deploy to Discord: outcome, changed resource counts, link to the run.

    make notify   (in deploy.yml, after `pulumi up`)

Reads its parameters from the environment, as the workflow passes them:
``DISCORD_WEBHOOK_URL`` (secret; never printed), ``NOTIFY_STACK``, ``NOTIFY_OUTCOME`` (the
step outcome: success, failure, cancelled, skipped), ``NOTIFY_RUN_URL``, ``NOTIFY_COMMIT``,
``NOTIFY_ACTOR``. The counts come from the stack's last update as the Pulumi CLI records it
(``pulumi stack history --json``, never ``--show-secrets``); when they cannot be read the
notice says so instead of failing. Exits non-zero when the notice cannot be delivered.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

COLOURS = {"success": 0x2ECC71, "failure": 0xE74C3C, "cancelled": 0x95A5A6, "skipped": 0x95A5A6}
# Order and wording of Pulumi's resource change kinds in the notice.
CHANGE_KINDS = (
    ("create", "created"),
    ("update", "updated"),
    ("replace", "replaced"),
    ("delete", "deleted"),
    ("same", "unchanged"),
)
USER_AGENT = "pi-cluster-deploy-notice/1.0"
_sleep = time.sleep  # replaced in tests


class NoticeError(RuntimeError):
    """The notice could not be delivered; the message never contains the webhook URL."""


def last_update(stack: str, pulumi: str = "pulumi") -> dict[str, Any] | None:
    """The newest entry of the stack's update history, or None when the CLI cannot tell."""
    try:
        proc = subprocess.run(
            [pulumi, "stack", "history", "--stack", stack, "--json", "--page-size", "1", "--page", "1"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    try:
        entries = json.loads(proc.stdout)
    except json.JSONDecodeError:
        return None
    return entries[0] if isinstance(entries, list) and entries and isinstance(entries[0], dict) else None


def counts_text(update: Mapping[str, Any] | None) -> str:
    """'+2 created, ~1 updated, 40 unchanged' from an update's resourceChanges."""
    changes = (update or {}).get("resourceChanges")
    if not isinstance(changes, Mapping):
        return "resource counts unavailable (no update recorded)"
    parts = [f"{int(changes[k])} {word}" for k, word in CHANGE_KINDS if int(changes.get(k) or 0)]
    extra = sorted(k for k in changes if k not in dict(CHANGE_KINDS) and int(changes[k] or 0))
    parts += [f"{int(changes[k])} {k}" for k in extra]
    return ", ".join(parts) or "no resources"


def payload(env: Mapping[str, str], update: Mapping[str, Any] | None) -> dict[str, Any]:
    """The Discord webhook body (an embed; mentions disabled)."""
    stack = env.get("NOTIFY_STACK", "pi-k3s")
    outcome = env.get("NOTIFY_OUTCOME") or "unknown"
    commit = (env.get("NOTIFY_COMMIT") or "")[:12]
    fields = [{"name": "Resources", "value": counts_text(update), "inline": False}]
    if update and update.get("version") is not None:
        fields.append({"name": "Stack version", "value": str(update["version"]), "inline": True})
    if commit:
        fields.append({"name": "Commit", "value": f"`{commit}`", "inline": True})
    if env.get("NOTIFY_ACTOR"):
        fields.append({"name": "By", "value": env["NOTIFY_ACTOR"], "inline": True})
    embed: dict[str, Any] = {
        "title": f"pulumi up {stack}: {outcome}",
        "color": COLOURS.get(outcome, 0xF1C40F),
        "fields": fields,
    }
    if env.get("NOTIFY_RUN_URL"):
        embed["url"] = env["NOTIFY_RUN_URL"]
        embed["description"] = f"[Workflow run]({env['NOTIFY_RUN_URL']})"
    return {"username": "pi-cluster", "embeds": [embed], "allowed_mentions": {"parse": []}}


def post(url: str, body: Mapping[str, Any], *, attempts: int = 3, timeout: float = 10.0) -> None:
    """POST the body as JSON; retry on 429 and 5xx a bounded number of times."""
    data = json.dumps(body).encode()
    for attempt in range(1, attempts + 1):
        request = urllib.request.Request(
            url,
            data=data,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": USER_AGENT},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout):
                return
        except urllib.error.HTTPError as err:
            retry = err.code == 429 or err.code >= 500
            if not retry or attempt == attempts:
                raise NoticeError(f"Discord webhook refused the notice: HTTP {err.code}") from None
            wait = float(err.headers.get("Retry-After") or 1)
        except (urllib.error.URLError, TimeoutError, OSError) as err:
            if attempt == attempts:
                reason = getattr(err, "reason", err)
                raise NoticeError(f"Discord webhook unreachable: {type(reason).__name__}") from None
            wait = 1.0
        _sleep(min(wait, 5.0))


def main(env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    url = env.get("DISCORD_WEBHOOK_URL", "")
    if not url.startswith(("https://", "http://")):
        print("notify: DISCORD_WEBHOOK_URL is missing or not a URL (repository secret)", file=sys.stderr)
        return 1
    update = last_update(env.get("NOTIFY_STACK", "pi-k3s"), env.get("PULUMI", "pulumi"))
    body = payload(env, update)
    try:
        post(url, body)
    except NoticeError as err:
        print(f"notify: {err}", file=sys.stderr)
        return 1
    print(f"notify: sent '{body['embeds'][0]['title']}' ({body['embeds'][0]['fields'][0]['value']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
