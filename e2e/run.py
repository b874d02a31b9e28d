"""`make e2e`: the real Pulumi engine and Kubernetes provider run the program against a
simulated cluster of the stack's own nodes; the report says what that proved.

    venv/bin/python -m e2e.run [--out e2e/out] [--cache e2e/.cache] [--skip-side-by-side]

Steps, each with ok, wall seconds and the engine's change summary: ``preview`` on the empty
cluster, ``up`` (then the checks of what it left), ``up-again`` (--expect-no-changes),
``policy`` (preview with the CrossGuard pack), ``change`` (one image tag changed previews as
exactly one update), ``destroy`` (and no namespace of ours left). Then, on a fresh cluster, the
same objects with kubectl and helm, timed. Writes e2e/out/report.json and e2e/out/summary.md;
exits 1 when a step or a check fails. Every cluster it starts is stopped on the way out (also
on a failure, Ctrl-C or SIGTERM). CHART_MIRROR must name the chart mirror.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from config import chart_mirror
from config.settings import NAMESPACE
from e2e import checks, prepare, sidebyside
from e2e import stack as e2e_stack
from e2e.cluster import Cluster, ClusterError
from e2e.engine import STREAMING, Engine, Run, change_summary, policy_findings
from e2e.kube import Api
from e2e.mirror import derive as derive_mirror
from e2e.report import NOT_COVERED, Report, cluster_section, engine_section
from e2e.stand_ins import StandIns, wait
from e2e.tools.build import DEFAULT_CACHE
from tools.charts import RELEASE_TYPE as RELEASE

REPO = prepare.REPO
DEFAULT_OUT = REPO / "e2e" / "out"
# The one image tag the `change` step moves: a Deployment of the program's own.
CHANGE_KEY, CHANGE_TAG = "homepage.image", "ghcr.io/gethomepage/homepage:v1.8.1"
# Upper bounds per step (the slowest cold up measured here took 80 s); the watchdog stops `up`
# long before when the cluster shows it cannot finish.
STEP_TIMEOUT = {"preview": 600, "up": 1200, "up-again": 600, "policy": 600, "change": 600, "destroy": 900}


class StepError(RuntimeError):
    """A step failed; the report says why."""


def log(message: str) -> None:
    print(f"e2e: {message}", flush=True)


class E2E:
    """One run: the stack made from pi-k3s, its steps on one simulated cluster, the side by side
    on another."""

    def __init__(self, report: Report, out: Path, cache: Path) -> None:
        self.report, self.out, self.cache = report, out, cache
        self.tools = prepare.load_tools(cache)
        try:
            source = chart_mirror.from_environment()
        except chart_mirror.MirrorError as err:
            raise SystemExit(f"e2e: {err}") from None
        if source is None:
            raise SystemExit("e2e: CHART_MIRROR must name a Helm repository on disk with every pinned chart")
        for stale in ("state", "logs", "cluster", "cluster-apply", "render", "policy-pack"):
            shutil.rmtree(out / stale, ignore_errors=True)
        (out / "state").mkdir(parents=True)
        self.home = cache / "pulumi-home"
        plugins = prepare.ensure_plugin(self.tools, self.home)
        report.data["engine"] = engine_section(self.tools, plugins)
        mirror, changes = derive_mirror(source, cache / "chart-mirror", self.tools["helm"]["path"])
        report.data["chart_mirror"] = {"source": str(source), "used": str(mirror), "changes": changes}

        # The stack, and the program run once under mocks for it: its settings, its capacity
        # plan, its registrations and its render (what `make render` writes for it).
        from tools import mockrun

        base, _ = mockrun.stack_config(e2e_stack.BASE)
        plugin = self.tools["pulumi-resource-kubernetes"]["version"]
        self.values = e2e_stack.settings_values(base, mirror=mirror, plugin_version=plugin)
        self.result = mockrun.run(e2e_stack.NAME, config=self.values)
        self.nodes = prepare.kwok_nodes(self.result.program["settings"])
        self.config_file = out / f"Pulumi.{e2e_stack.NAME}.yaml"
        report.data["stack"] = {
            "name": e2e_stack.NAME,
            "made_from": f"Pulumi.{e2e_stack.BASE}.yaml",
            "differences": e2e_stack.differences(base, self.values),
            "secrets": sorted(["kubeconfig", *e2e_stack.STAND_IN_SECRETS]),
            "config_file": str(self.config_file),
            "resources": len([r for r in self.result.registrations if r.custom]),
        }
        report.data["cluster"] = cluster_section(self.tools, self.nodes)
        report.data["not_covered"] = NOT_COVERED
        self.engine = Engine(
            self.tools, cache / "bin", REPO, self.home, out / "state", self.config_file, out / "logs"
        )

    # -- the Pulumi steps --------------------------------------------------------------------
    def pulumi_steps(self) -> None:
        with prepare.simulated_cluster(self.out / "cluster", self.nodes, self.cache) as (
            cluster,
            api,
            stand_ins,
        ):
            log(f"cluster up: {', '.join(n.name for n in self.nodes)}")
            try:
                self._steps(cluster, api, stand_ins)
            except StepError:
                prepare.dump(cluster, self.out / "logs" / "cluster-at-failure.txt")
                raise
            finally:
                self.report.data["stand_ins"] = {
                    "local_path_volumes": stand_ins.provisioned,
                    "local_path_deleted": stand_ins.reclaimed,
                    "refused_claims": stand_ins.refused,
                    "ingresses_given_a_status": len(stand_ins.published),
                    "errors": stand_ins.errors,
                }

    def _steps(self, cluster: Cluster, api: Api, stand_ins: StandIns) -> None:
        self.make_stack(cluster)
        watchdog = checks.Watchdog(api, lambda: stand_ins.refused)
        self.step("preview", ["preview", "--json"])
        self.step("up", ["up", "--yes", "--skip-preview", "--json"], abort=watchdog)
        self.after_up(api, cluster.kubeconfig)
        self.step(
            "up-again", ["up", "--yes", "--skip-preview", "--expect-no-changes", "--json"], abort=watchdog
        )
        self.policy()
        self.change()
        self.step("destroy", ["destroy", "--yes", "--skip-preview", "--json"])
        ours = {m["metadata"]["name"] for m in self.result.manifests("Namespace")}
        ours |= {r.plain_inputs.get("namespace") for r in self.result.by_type(RELEASE)}
        left = sorted(ours & {n["metadata"]["name"] for n in api.items("/api/v1/namespaces")})
        self.report.data["steps"]["destroy"]["namespaces_left"] = left
        if left:
            self.report.data["steps"]["destroy"]["ok"] = False
            self.report.fail("destroy", f"namespaces of the stack left: {left}")

    def make_stack(self, cluster: Cluster) -> None:
        """`pulumi stack init` with the passphrase provider, the plain config, the secrets."""
        # stack init writes the provider's salt into Pulumi.e2e.yaml beside the real stacks: it
        # moves under e2e/out at once, and every later command names it there.
        stray = REPO / f"Pulumi.{e2e_stack.NAME}.yaml"
        self.config_file.unlink(missing_ok=True)
        try:
            init = self.engine.pulumi(
                "stack",
                "init",
                e2e_stack.NAME,
                "--secrets-provider",
                "passphrase",
                log="stack-init",
                config=False,
            )
            if not init.ok:
                raise StepError(f"stack init: {init.tail()}")
            shutil.move(stray, self.config_file)
        finally:
            stray.unlink(missing_ok=True)
        e2e_stack.write_config(self.config_file, self.values)
        for key, value in e2e_stack.secret_values(prepare.inline_kubeconfig(cluster.kubeconfig)).items():
            run = self.engine.pulumi(
                "config", "set", "--secret", key, log=f"config-{key.split(':')[1]}", stdin=value
            )
            if not run.ok:
                raise StepError(f"config set --secret {key}: {run.tail()}")

    def step(
        self,
        name: str,
        args: list[str],
        *,
        expect: Callable[[dict[str, int]], str | None] | None = None,
        abort: Callable[[], str | None] | None = None,
        **kw: Any,
    ) -> Run:
        """One pulumi command as a step of the report; StepError when it fails."""
        log(f"{name}: pulumi {' '.join(args)}")
        run = self.engine.pulumi(
            *args, log=name, timeout=STEP_TIMEOUT[name], env=STREAMING, abort=abort, **kw
        )
        changes = change_summary(run.events())
        error = None if run.ok else (f"stopped: {run.stopped}" if run.stopped else run.tail(15))
        if error is None and expect is not None:
            error = expect(changes)
        self.report.step(name, run.seconds, changes, error)
        log(f"{name}: {'ok' if error is None else 'FAILED'} in {run.seconds}s {changes}")
        if error is not None:
            raise StepError(f"{name}: {error}")
        return run

    def after_up(self, api: Api, kubeconfig: Path) -> None:
        """The checks of what `up` left: report["checks"]."""
        helm = subprocess.run(
            [self.tools["helm"]["path"], "list", "-A", "-o", "json", f"--kubeconfig={kubeconfig}"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        listed = json.loads(helm.stdout or "[]") if helm.returncode == 0 else []
        export = self.engine.pulumi("stack", "export", log="stack-export")
        state = (export.json() or {}).get("deployment", {}).get("resources", []) if export.ok else []
        helm_error = f"helm list: {helm.stderr.strip()}" if helm.returncode else ""
        found, details = checks.collect(api, self.result, listed, helm_error, state)
        self.report.data["checks"] = {**found, **details}
        for name, items in found.items():
            if items:
                self.report.fail(f"check {name}", f"{len(items)}: {items[:3]}")
        log(f"checks: {', '.join(f'{k} {len(v)}' for k, v in found.items())}")

    def policy(self) -> None:
        from policy.policies import MANDATORY_POLICIES

        pack = prepare.policy_pack(self.cache, self.out)
        run = self.step("policy", ["preview", "--policy-pack", str(pack), "--json"])
        findings = policy_findings(run.events(), {p.name for p in MANDATORY_POLICIES})
        entry = self.report.data["steps"]["policy"]
        entry["policies"] = findings
        if findings["mandatory_failures"] or not findings["packs"] or not findings["resources_analyzed"]:
            entry["ok"] = False
            self.report.fail(
                "policy", f"mandatory policies failed or no pack ran: {findings['mandatory_failures']}"
            )

    def change(self) -> None:
        """One image tag changed, in a copy of the stack's config: exactly one update."""
        changed = self.out / f"Pulumi.{e2e_stack.NAME}-change.yaml"
        shutil.copyfile(self.config_file, changed)
        key = f"{NAMESPACE}:{CHANGE_KEY}"
        run = self.engine.pulumi(
            "config", "set", "--path", key, CHANGE_TAG, log="config-change", config_file=changed
        )
        if not run.ok:
            raise StepError(f"config set {key}: {run.tail()}")

        def one_update(changes: dict[str, int]) -> str | None:
            others = {k: v for k, v in changes.items() if k not in ("same", "update")}
            if changes.get("update") != 1 or others:
                return f"{CHANGE_KEY} {CHANGE_TAG} previews as {changes}, not exactly one update"
            return None

        self.step("change", ["preview", "--json"], expect=one_update, config_file=changed)
        self.report.data["steps"]["change"]["setting"] = {CHANGE_KEY: CHANGE_TAG}

    # -- side by side --------------------------------------------------------------------------
    def side_by_side(self) -> None:
        resources = sidebyside.render_stack(self.result, self.out / "render")
        runs: dict[str, Any] = {}
        with prepare.simulated_cluster(self.out / "cluster-apply", self.nodes, self.cache) as (
            cluster,
            api,
            _,
        ):
            builtin = sidebyside.builtin_groups(api)

            def ready() -> None:
                def done() -> bool:
                    return not checks.workloads_not_ready(
                        api.items("/apis/apps/v1/deployments"),
                        api.items("/apis/apps/v1/statefulsets"),
                        api.items("/apis/apps/v1/daemonsets"),
                    )

                wait(done, 600, "every workload kubectl and helm applied is available")

            for name in ("apply", "noop-apply"):
                timer = sidebyside.Timer()
                log(f"side by side: {name}")
                seconds = sidebyside.apply_all(
                    kubectl=self.tools["kubectl"]["path"], helm=self.tools["helm"]["path"],
                    kubeconfig=cluster.kubeconfig, manifests=self.out / "render" / "manifests",
                    resources=resources, builtin=builtin, wait_ready=ready, timer=timer,
                )  # fmt: skip
                runs[name] = {"seconds": seconds, "commands": timer.steps}
                log(f"side by side: {name} in {seconds}s")
        steps = self.report.data.get("steps", {})
        up, noop = steps.get("up", {}).get("seconds"), steps.get("up-again", {}).get("seconds")
        self.report.data["side_by_side"] = {
            **runs,
            "ratio_up_to_apply": round(up / runs["apply"]["seconds"], 2) if up else None,
            "ratio_noop_up_to_noop_apply": round(noop / runs["noop-apply"]["seconds"], 2) if noop else None,
            "what": sidebyside.__doc__.split("\n\n")[1].replace("\n", " ") if sidebyside.__doc__ else "",
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get("E2E_CACHE", DEFAULT_CACHE)))
    parser.add_argument("--skip-side-by-side", action="store_true", help="only the Pulumi steps")
    args = parser.parse_args(argv)
    out, cache = args.out.resolve(), args.cache.resolve()

    def stop(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    # Also SIGINT: a shell starts a background job with SIGINT ignored, and Python then installs
    # no KeyboardInterrupt handler of its own.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)
    started = time.monotonic()
    report = Report()
    try:
        run = E2E(report, out, cache)
        run.pulumi_steps()
        if not args.skip_side_by_side:
            run.side_by_side()
    except StepError as err:
        log(f"FAILED: {err}")
    except (ClusterError, TimeoutError, RuntimeError, OSError, subprocess.CalledProcessError) as err:
        report.fail("harness", str(err))
        traceback.print_exc()
    except KeyboardInterrupt as err:
        report.fail("interrupted", str(err) or "Ctrl-C")
    except SystemExit as err:
        report.fail("harness", str(err.code))
    finally:
        report.write(out, round(time.monotonic() - started, 1))
    log(f"{'passed' if report.data['ok'] else 'FAILED'} in {report.data['seconds']}s: {out / 'report.json'}")
    for failure in report.failures:
        print(f"e2e: FAIL {failure}", file=sys.stderr)
    return 0 if report.data["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
