"""The Pulumi CLI as the harness runs it: the pinned binaries of e2e/.cache/bin first on PATH,
its own PULUMI_HOME (the built plugin installed there), a local file backend, the passphrase
secrets provider, and nothing that reaches beyond this machine.

Why each variable (pulumi/pulumi v3.274.1, the CLI built here):
- ``PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true``: the Python language host reports every
  installed package that ships a pulumi-plugin.json (pulumi_command 1.2.1, pulumi_cloudflare
  6.23.1, pulumi_kubernetes 4.34.2 are in the venv); without it the engine downloads each
  plugin it does not have before the update (pkg/engine/plugins.go ensurePluginsAreInstalled,
  resource/deploy/providers/registry.go loadProvider). With it, a missing plugin is only an
  error once something asks for that provider, which nothing in the e2e stack does.
- ``PULUMI_SKIP_UPDATE_CHECK=true``: no query for a newer CLI.
- ``PULUMI_BACKEND_URL=file://...``: state in a folder of the run, no login.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from e2e import stack as e2e_stack

POLL_SECONDS = 2.0  # how often a running command's timeout and abort are looked at
# The commands that read the stack's config (`--config-file`); stack export/history do not.
CONFIG_FILE_COMMANDS = frozenset({"config", "preview", "up", "destroy", "refresh"})


@dataclass
class Run:
    """One CLI command: its words, exit code, wall seconds and output."""

    args: list[str]
    code: int
    seconds: float
    stdout: str
    stderr: str
    stopped: str = ""  # why the harness stopped it (a timeout, a stuck cluster)

    @property
    def ok(self) -> bool:
        return self.code == 0 and not self.stopped

    def json(self) -> Any:
        """The JSON document a ``--json`` command printed."""
        text = self.stdout.strip()
        return json.loads(text) if text else None

    def events(self) -> list[dict[str, Any]]:
        """The engine events a streaming ``--json`` command printed, one JSON object a line."""
        out = []
        for line in self.stdout.splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
        return out

    def tail(self, lines: int = 25) -> str:
        return "\n".join((self.stdout + "\n" + self.stderr).strip().splitlines()[-lines:])


@dataclass
class Engine:
    """`pulumi` for one stack of the project in ``project``."""

    tools: dict[str, dict[str, str]]
    bin_dir: Path  # e2e/.cache/bin: every tool under its own name (the language host too)
    project: Path
    home: Path  # PULUMI_HOME
    state: Path  # the file backend's folder
    config_file: Path
    logs: Path
    stack: str = e2e_stack.NAME
    passphrase: str = "e2e-stand-in-passphrase"

    def env(self) -> dict[str, str]:
        path = os.pathsep.join([str(self.bin_dir), os.environ.get("PATH", "")])
        env = {k: v for k, v in os.environ.items() if not k.startswith("PULUMI_")}
        env.update(
            {
                "PATH": path,
                "PULUMI_HOME": str(self.home),
                "PULUMI_BACKEND_URL": f"file://{self.state}",
                "PULUMI_CONFIG_PASSPHRASE": self.passphrase,
                "PULUMI_SKIP_UPDATE_CHECK": "true",
                "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
                "PULUMI_SKIP_CONFIRMATIONS": "true",
            }
        )
        return env

    def pulumi(
        self,
        *args: str,
        log: str,
        timeout: float = 900,
        stdin: str | None = None,
        config: bool = True,
        config_file: Path | None = None,
        env: dict[str, str] | None = None,
        abort: Callable[[], str | None] | None = None,
    ) -> Run:
        """``pulumi <args> --stack e2e [--config-file ...]``; output saved to logs/<log>.log."""
        argv = [self.tools["pulumi"]["path"], *args, "--non-interactive", "--color", "never"]
        if config:
            argv += ["--stack", self.stack]
            if args[0] in CONFIG_FILE_COMMANDS:
                argv += ["--config-file", str(config_file or self.config_file)]
        return self.command(argv, log=log, timeout=timeout, stdin=stdin, env=env, abort=abort)

    def command(
        self,
        argv: list[str],
        *,
        log: str,
        timeout: float,
        stdin: str | None = None,
        env: dict[str, str] | None = None,
        abort: Callable[[], str | None] | None = None,
    ) -> Run:
        """Run ``argv``; stop it (SIGINT, then SIGKILL) past ``timeout`` or as soon as
        ``abort``, asked every few seconds, gives a reason."""
        self.logs.mkdir(parents=True, exist_ok=True)
        start = time.monotonic()
        proc = subprocess.Popen(
            argv,
            cwd=self.project,
            env={**self.env(), **(env or {})},
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its plugins and language host are ended with it
        )
        stopped, first = "", True
        try:
            while True:
                try:
                    out, err = proc.communicate(stdin if first else None, timeout=POLL_SECONDS)
                    break
                except subprocess.TimeoutExpired:
                    first = False
                    if time.monotonic() - start > timeout:
                        stopped = f"timed out after {timeout:.0f}s"
                    elif abort is not None:
                        stopped = abort() or ""
                    if stopped:
                        stop_group(proc)
                        out, err = proc.communicate()
                        break
        except BaseException:  # Ctrl-C or the harness stopping: end the whole command first
            stop_group(proc)
            proc.communicate()
            raise
        run = Run(argv, proc.returncode, round(time.monotonic() - start, 1), out, err, stopped)
        shown = [a if len(a) < 200 else a[:60] + "..." for a in argv]
        (self.logs / f"{log}.log").write_text(
            f"$ {' '.join(shown)}\n# exit {run.code}{f' (stopped: {stopped})' if stopped else ''}, "
            f"{run.seconds}s\n--- stdout\n{out}\n--- stderr\n{err}\n"
        )
        return run


def stop_group(proc: subprocess.Popen[str]) -> None:
    """SIGINT (Pulumi cancels cleanly), then SIGKILL after 30 s, to the command's own group."""
    for sig, grace in ((signal.SIGINT, 30.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


# `preview --json` prints one digest without policy events (pkg/backend/display/json.go: "we
# don't handle policy events in JSON serialization"); streamed, preview prints every engine
# event as `up --json` and `destroy --json` do.
STREAMING = {"PULUMI_ENABLE_STREAMING_JSON_PREVIEW": "true"}


def summary_event(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The engine's closing summaryEvent (resourceChanges, durationSeconds, PolicyPacks)."""
    found = [e["summaryEvent"] for e in events if "summaryEvent" in e]
    return found[-1] if found else {}


def change_summary(events: list[dict[str, Any]]) -> dict[str, int]:
    """Operation -> count of a streamed preview, up or destroy."""
    changes = summary_event(events).get("resourceChanges") or {}
    return {str(k): int(v) for k, v in sorted(changes.items())}


def policy_findings(events: list[dict[str, Any]], mandatory: set[str]) -> dict[str, Any]:
    """What the policy packs reported: per policy, the resources it passed and failed
    (policyAnalyzeSummaryEvent, one per resource) and its violations by enforcement level
    (policyEvent); ``mandatory_failures`` lists every failure of a policy in ``mandatory``."""
    per: dict[str, dict[str, int]] = {}
    failures: list[str] = []
    analyzed = 0
    for e in events:
        summary = e.get("policyAnalyzeSummaryEvent")
        if summary:
            analyzed += 1
            for outcome in ("passed", "failed"):
                for name in summary.get(outcome) or []:
                    counts = per.setdefault(str(name), {})
                    counts[outcome] = counts.get(outcome, 0) + 1
        violation = e.get("policyEvent")
        if violation:
            name, level = str(violation.get("policyName")), str(violation.get("enforcementLevel", ""))
            counts = per.setdefault(name, {})
            counts[level] = counts.get(level, 0) + 1
            if name in mandatory or level == "mandatory":
                message = " ".join(str(violation.get("message", "")).split())
                failures.append(
                    f"{name}: {violation.get('resourceUrn', '').rsplit('::', 1)[-1]}: {message[:300]}"
                )
    return {
        "packs": summary_event(events).get("PolicyPacks") or {},
        "resources_analyzed": analyzed,
        "policies": dict(sorted(per.items())),
        "mandatory": sorted(mandatory),
        "mandatory_failures": failures,
    }
