"""A simulated Kubernetes cluster on loopback: python3 -m e2e.cluster start|stop|status|smoke.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler run as local processes bound
to 127.0.0.1 on free ports, with a CA, serving and client certificates and a service-account
key made by openssl in the cluster's own folder; kwok plays the kubelet of every Node that
carries the annotation kwok.x-k8s.io/node=fake (as kwokctl configures it: sigs.k8s.io/kwok
v0.8.0 pkg/kwokctl/runtime/kind/cluster_kwok_controller.go), so Nodes turn
Ready and Pods Running with kwok's default Stages. No container runs and nothing listens
beyond 127.0.0.1. The binaries come from e2e/.cache/tools.json (python3 -m e2e.tools.build).

`start` writes <dir>/kubeconfig (cluster-admin) and <dir>/state.json (pids, ports); `stop`
ends exactly those pids. Flags mirror what K3s v1.33 passes its embedded control plane where
it matters to the stack (Node,RBAC authorization, NodeRestriction, anonymous auth off,
privileged pods allowed, profiling off, service CIDR 10.43.0.0/16, cluster CIDR 10.42.0.0/16:
k3s-io/k3s pkg/daemons/control/server.go, apiServer() and defaults(), read at commits 0103601
and c833183, both of them in the days of github.com/rancher/k3s import paths: the tag
v1.33.6+k3s1 could not be read, the k3s repository being too big to fetch here and the search
index holding only those revisions of the file; the two agree on every flag used here).
Pod Security admission is on (a default plugin of kube-apiserver 1.33) with no admission
configuration, as K3s starts it: privileged unless a namespace's pod-security.kubernetes.io
labels say otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from e2e.tools.build import DEFAULT_CACHE

SERVICE_CIDR = "10.43.0.0/16"  # K3s default --service-cidr
SERVICE_IP = "10.43.0.1"  # the first address: the `kubernetes` Service
CLUSTER_CIDR = "10.42.0.0/16"  # K3s default --cluster-cidr (kwok takes pod IPs from it)
POD_CIDR = "10.42.0.0/24"
KWOK_ANNOTATION = "kwok.x-k8s.io/node"  # value "fake": the nodes kwok manages
UNSET_NODE_INFO = (
    "bootID",
    "machineID",
    "systemUUID",
    "kernelVersion",
    "osImage",
    "containerRuntimeVersion",
    "kubeProxyVersion",
)
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")


def _answers_200(conn: http.client.HTTPConnection, path: str) -> bool:
    """Whether GET ``path`` on ``conn`` answers 200; a refused or dropped connection is False."""
    try:
        conn.request("GET", path)
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


class ClusterError(RuntimeError):
    pass


@dataclasses.dataclass
class Node:
    """A Node for kwok to play: what `kubectl get node` shows for a real one."""

    name: str
    labels: dict[str, str] = dataclasses.field(default_factory=dict)
    taints: list[dict[str, str]] = dataclasses.field(default_factory=list)
    cpu: str = "4"
    memory: str = "1Gi"
    pods: str = "110"
    arch: str = "arm64"
    kubelet_version: str = ""  # e.g. the stack's K3s version; "" = kwok's own
    # What the scheduler may hand out (capacity minus what the kubelet reserves); "" = capacity.
    allocatable_cpu: str = ""
    allocatable_memory: str = ""

    def manifest(self) -> dict[str, object]:
        capacity = {"cpu": self.cpu, "memory": self.memory, "pods": self.pods}
        allocatable = {
            "cpu": self.allocatable_cpu or self.cpu,
            "memory": self.allocatable_memory or self.memory,
            "pods": self.pods,
        }
        labels = {
            "kubernetes.io/arch": self.arch,
            "kubernetes.io/os": "linux",
            "kubernetes.io/hostname": self.name,
            "type": "kwok",
            **self.labels,
        }
        status: dict[str, object] = {
            "capacity": capacity,
            "allocatable": allocatable,
            # Every field is required by the schema; kwok's node-initialize Stage keeps the
            # non-empty ones and fills the rest (kubeletVersion "kwok-v0.8.0" unless given).
            "nodeInfo": {
                "architecture": self.arch,
                "operatingSystem": "linux",
                "kubeletVersion": self.kubelet_version,
                **dict.fromkeys(UNSET_NODE_INFO, ""),
            },
        }
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "labels": labels,
                "annotations": {KWOK_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
            },
            "spec": {"taints": self.taints} if self.taints else {},
            "status": status,
        }


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(pki: Path) -> None:
    """CA, apiserver serving cert, one client cert per component, service-account keys."""
    pki.mkdir(parents=True, exist_ok=True)
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "7",
            "-subj", "/CN=e2e-kubernetes-ca", cwd=pki)  # fmt: skip
    certs = {
        # name: (subject, extendedKeyUsage, subjectAltName)
        "apiserver": (
            "/CN=kube-apiserver",
            "serverAuth",
            "IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,"
            f"DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:{SERVICE_IP}",
        ),
        "admin": ("/O=system:masters/CN=e2e-admin", "clientAuth", ""),
        "kube-controller-manager": ("/CN=system:kube-controller-manager", "clientAuth", ""),
        "kube-scheduler": ("/CN=system:kube-scheduler", "clientAuth", ""),
        # kwok writes Node and Pod status and node Leases for every simulated node.
        "kwok": ("/O=system:masters/CN=kwok-controller", "clientAuth", ""),
    }
    for name, (subject, usage, san) in certs.items():
        openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject,
                cwd=pki)  # fmt: skip
        ext = pki / f"{name}.ext"
        ext.write_text(
            f"extendedKeyUsage={usage}\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
            + (f"subjectAltName={san}\n" if san else "")
        )
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "7", "-extfile", ext.name, "-out", f"{name}.crt",
                cwd=pki)  # fmt: skip
    openssl("genrsa", "-out", "sa.key", "2048", cwd=pki)
    openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)


def write_kubeconfig(path: Path, server: str, pki: Path, user: str) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "e2e", "cluster": {"server": server, "certificate-authority": str(pki / "ca.crt")}}
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate": str(pki / f"{user}.crt"),
                    "client-key": str(pki / f"{user}.key"),
                },
            }
        ],
        "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": user}}],
        "current-context": "e2e",
    }
    path.write_text(json.dumps(config, indent=1) + "\n")  # JSON is YAML
    path.chmod(0o600)


class Cluster:
    """One simulated cluster living in `workdir` (certs, etcd data, logs, kubeconfig)."""

    def __init__(
        self,
        workdir: Path,
        cache: Path = DEFAULT_CACHE,
        extra_args: dict[str, Sequence[str]] | None = None,
    ) -> None:
        """extra_args: more flags per component, appended to ours (a later flag wins), e.g.
        {"kube-apiserver": ["--disable-admission-plugins=ValidatingAdmissionWebhook"]}."""
        self.workdir = workdir.resolve()
        self.extra_args = dict(extra_args or {})
        unknown = set(self.extra_args) - set(COMPONENTS)
        if unknown:
            raise ClusterError(f"extra_args for unknown components: {sorted(unknown)}")
        self.pki = self.workdir / "pki"
        self.logs = self.workdir / "logs"
        self.kubeconfig = self.workdir / "kubeconfig"
        self.state_file = self.workdir / "state.json"
        manifest = cache / "tools.json"
        if not manifest.is_file():
            raise ClusterError(f"{manifest} missing: run python3 -m e2e.tools.build first")
        self.tools: dict[str, dict[str, str]] = json.loads(manifest.read_text())
        missing = [name for name in (*COMPONENTS, "kubectl") if name not in self.tools]
        if missing:
            raise ClusterError(f"{manifest}: no {', '.join(missing)} (see e2e/tools/build.py)")
        self.pids: dict[str, int] = {}
        self.ports: dict[str, int] = {}

    # -- processes --------------------------------------------------------------------------
    def _spawn(self, name: str, args: Sequence[str]) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = (self.logs / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            [self.tools[name]["path"], *args, *self.extra_args.get(name, ())],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.workdir,
            start_new_session=True,  # outlives `start`; `stop` ends it by its pid
        )
        self.pids[name] = proc.pid
        self._save()

    def _save(self) -> None:
        state = {"pids": self.pids, "ports": self.ports, "kubeconfig": str(self.kubeconfig)}
        self.state_file.write_text(json.dumps(state, indent=1) + "\n")

    def _alive(self, name: str) -> bool:
        pid = self.pids.get(name)
        if pid is None:
            return False
        with contextlib.suppress(ChildProcessError):
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    def _wait(self, name: str, ready: object, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._alive(name):
                raise ClusterError(f"{name} exited: see {self.logs / (name + '.log')}")
            if callable(ready) and ready():
                return
            time.sleep(0.5)
        raise ClusterError(f"{name} not ready after {timeout:.0f}s: see {self.logs / (name + '.log')}")

    def _https_ok(self, port: int, path: str) -> bool:
        context = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        context.check_hostname = False  # component serving certs are self-signed (cm, scheduler)
        context.verify_mode = ssl.CERT_NONE if port != self.ports["apiserver"] else ssl.CERT_REQUIRED
        context.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        return _answers_200(http.client.HTTPSConnection("127.0.0.1", port, timeout=5, context=context), path)

    def _http_ok(self, port: int, path: str) -> bool:
        return _answers_200(http.client.HTTPConnection("127.0.0.1", port, timeout=5), path)

    # -- lifecycle --------------------------------------------------------------------------
    def start(self, nodes: Sequence[Node] = (), timeout: float = 120) -> None:
        """Bring the control plane and kwok up, then create `nodes` and wait until Ready."""
        if self.state_file.exists():
            raise ClusterError(f"{self.state_file} exists: stop that cluster first")
        self.workdir.mkdir(parents=True, exist_ok=True)
        make_pki(self.pki)
        for port in ("etcd", "etcd-peer", "apiserver", "controller-manager", "scheduler"):
            self.ports[port] = free_port()
        server = f"https://127.0.0.1:{self.ports['apiserver']}"
        write_kubeconfig(self.kubeconfig, server, self.pki, "admin")
        for user in ("kube-controller-manager", "kube-scheduler", "kwok"):
            write_kubeconfig(self.workdir / f"{user}.kubeconfig", server, self.pki, user)
        try:
            self._start_etcd(timeout)
            self._start_apiserver(timeout)
            self._start_controllers(timeout)
            self._start_kwok()
            if nodes:
                self.add_nodes(nodes, timeout)
        except BaseException:
            self.stop()
            raise

    def _start_etcd(self, timeout: float) -> None:
        client = f"http://127.0.0.1:{self.ports['etcd']}"
        peer = f"http://127.0.0.1:{self.ports['etcd-peer']}"
        self._spawn("etcd", [
            "--name=e2e", f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls={client}", f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=e2e={peer}", "--initial-cluster-state=new",
            "--unsafe-no-fsync",  # a throwaway data dir: durability buys nothing here
            "--log-level=warn",
        ])  # fmt: skip
        self._wait("etcd", lambda: self._http_ok(self.ports["etcd"], "/health"), timeout)

    def _start_apiserver(self, timeout: float) -> None:
        pki = self.pki
        self._spawn("kube-apiserver", [
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
            f"--secure-port={self.ports['apiserver']}",
            f"--etcd-servers=http://127.0.0.1:{self.ports['etcd']}",
            f"--tls-cert-file={pki / 'apiserver.crt'}", f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--api-audiences=https://kubernetes.default.svc.cluster.local,k3s",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=Node,RBAC",
            # PodSecurity is on by default in 1.33; named so that no flag change drops it.
            "--enable-admission-plugins=NodeRestriction,PodSecurity",
            "--anonymous-auth=false", "--allow-privileged=true", "--profiling=false",
            # The `kubernetes` Service would get 127.0.0.1 as its endpoint, which Endpoints
            # validation rejects (loopback); nothing in the simulation dials it.
            "--endpoint-reconciler-type=none",
            f"--cert-dir={self.workdir / 'apiserver-certs'}",
        ])  # fmt: skip
        self._wait("kube-apiserver", lambda: self._https_ok(self.ports["apiserver"], "/readyz"), timeout)

    def _start_controllers(self, timeout: float) -> None:
        pki = self.pki
        cm = str(self.workdir / "kube-controller-manager.kubeconfig")
        self._spawn("kube-controller-manager", [
            f"--kubeconfig={cm}", f"--authentication-kubeconfig={cm}", f"--authorization-kubeconfig={cm}",
            "--bind-address=127.0.0.1", f"--secure-port={self.ports['controller-manager']}",
            f"--cert-dir={self.workdir / 'controller-manager-certs'}",
            "--leader-elect=false", "--use-service-account-credentials=true",
            f"--cluster-signing-cert-file={pki / 'ca.crt'}", f"--cluster-signing-key-file={pki / 'ca.key'}",
            f"--root-ca-file={pki / 'ca.crt'}", f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}", f"--cluster-cidr={CLUSTER_CIDR}",
            "--allocate-node-cidrs=false", "--profiling=false",
        ])  # fmt: skip
        sched = str(self.workdir / "kube-scheduler.kubeconfig")
        self._spawn("kube-scheduler", [
            f"--kubeconfig={sched}", f"--authentication-kubeconfig={sched}",
            f"--authorization-kubeconfig={sched}",
            "--bind-address=127.0.0.1", f"--secure-port={self.ports['scheduler']}",
            f"--cert-dir={self.workdir / 'scheduler-certs'}",
            "--leader-elect=false", "--profiling=false",
        ])  # fmt: skip
        self._wait(
            "kube-controller-manager",
            lambda: self._https_ok(self.ports["controller-manager"], "/healthz"),
            timeout,
        )
        self._wait("kube-scheduler", lambda: self._https_ok(self.ports["scheduler"], "/healthz"), timeout)

    def _start_kwok(self) -> None:
        stages = self.tools["kwok"].get("stages")
        if not stages:
            raise ClusterError("tools.json: kwok has no stages file (rerun e2e.tools.build)")
        self._spawn("kwok", [
            f"--kubeconfig={self.workdir / 'kwok.kubeconfig'}", f"--config={stages}",
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={KWOK_ANNOTATION}=fake",
            f"--cidr={POD_CIDR}", "--node-ip=127.0.0.1",
            # Renew each node's Lease as kwokctl has kwok do (pkg/kwokctl/runtime/kind/
            # cluster_kwok_controller.go NodeLeaseDurationSeconds 40): the node-heartbeat-with-lease
            # Stage updates Node status only every 10 minutes, so without leases the node
            # lifecycle controller marks every node NotReady after its grace period, every minute.
            "--node-lease-duration-seconds=40",
            # kwok serves nothing unless --server-address/--node-port is set: leave both unset.
        ])  # fmt: skip

    def kubectl(self, *args: str, input_text: str | None = None) -> str:
        proc = subprocess.run(
            [self.tools["kubectl"]["path"], f"--kubeconfig={self.kubeconfig}", *args],
            input=input_text,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout

    def add_nodes(self, nodes: Sequence[Node], timeout: float = 120) -> None:
        items = [node.manifest() for node in nodes]
        listing = {"apiVersion": "v1", "kind": "List", "items": items}
        self.kubectl("apply", "-f", "-", input_text=json.dumps(listing))
        names = [node.name for node in nodes]
        self._wait("kwok", lambda: all(self.node_ready(n) for n in names), timeout)

    def exists(self, *what: str) -> bool:
        try:
            self.kubectl("get", *what, "-o", "name")
        except ClusterError:
            return False
        return True

    def wait_for(self, check: Callable[[], bool], timeout: float) -> None:
        """Poll check until true, while every component is still running."""
        deadline = time.monotonic() + timeout
        while not check():
            dead = [name for name in self.pids if not self._alive(name)]
            if dead:
                raise ClusterError(f"{', '.join(dead)} exited: see {self.logs}")
            if time.monotonic() > deadline:
                raise ClusterError(f"not true after {timeout:.0f}s: {check}")
            time.sleep(0.5)

    def node_ready(self, name: str) -> bool:
        try:
            node = json.loads(self.kubectl("get", "node", name, "-o", "json"))
        except ClusterError:
            return False
        return any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in node.get("status", {}).get("conditions", [])
        )

    def stop(self) -> None:
        """End the processes this cluster started (by pid, newest first)."""
        if not self.pids and self.state_file.is_file():
            self.pids = json.loads(self.state_file.read_text())["pids"]
        for name in reversed([n for n in COMPONENTS if n in self.pids]):
            pid = self.pids[name]
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 15
            while self._alive(name) and time.monotonic() < deadline:
                time.sleep(0.2)
            if self._alive(name):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        self.pids = {}
        self.state_file.unlink(missing_ok=True)


@contextlib.contextmanager
def running(
    workdir: Path,
    nodes: Sequence[Node] = (),
    cache: Path = DEFAULT_CACHE,
    extra_args: dict[str, Sequence[str]] | None = None,
) -> Iterator[Cluster]:
    """A cluster for the duration of a `with` block, always stopped after it."""
    cluster = Cluster(workdir, cache, extra_args)
    cluster.start(nodes)
    try:
        yield cluster
    finally:
        cluster.stop()


def listeners(pids: Sequence[int]) -> list[str]:
    """Local addresses of the TCP sockets those processes listen on (ss -ltnp)."""
    out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, check=True).stdout
    found = []
    for line in out.splitlines():
        if any(f"pid={pid}," in line for pid in pids):
            found.append(line.split()[3])
    return found


def smoke_pod(name: str, privileged: bool) -> dict[str, object]:
    security: dict[str, object] = (
        {"privileged": True}
        if privileged
        else {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True,
            "runAsUser": 65534,
            "seccompProfile": {"type": "RuntimeDefault"},
        }
    )
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "smoke"},
        "spec": {
            "nodeSelector": {"kubernetes.io/arch": "arm64"},
            "containers": [{"name": "c", "image": "registry.invalid/none:1", "securityContext": security}],
        },
    }


def smoke(cache: Path) -> int:
    """One fake Node Ready; Pod Security rejects a privileged Pod in a restricted namespace;
    the scheduler places a compliant Pod on the node and kwok runs it; every listener is on
    127.0.0.1; then everything stops."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="e2e-cluster-") as tmp:
        node = Node("smoke-node", labels={"node-role.kubernetes.io/worker": "true"}, memory="1Gi")
        with running(Path(tmp), [node], cache) as cluster:
            up = time.monotonic() - started
            print(cluster.kubectl("version"), end="")
            print(cluster.kubectl("get", "nodes", "-o", "wide"), end="")
            bound = listeners(list(cluster.pids.values()))
            print(f"e2e-cluster: listening on {' '.join(sorted(bound))}")
            if not bound or any(not a.startswith("127.0.0.1:") for a in bound):
                raise ClusterError(f"a listener beyond 127.0.0.1: {bound}")
            cluster.kubectl("create", "namespace", "smoke")
            cluster.kubectl("label", "namespace", "smoke", "pod-security.kubernetes.io/enforce=restricted")
            cluster.wait_for(lambda: cluster.exists("serviceaccount", "default", "-n", "smoke"), 60)
            try:
                cluster.kubectl("apply", "-f", "-", input_text=json.dumps(smoke_pod("bad", True)))
                raise ClusterError("Pod Security admission let a privileged Pod in")
            except ClusterError as err:
                if "violates PodSecurity" not in str(err):
                    raise
                print("e2e-cluster: privileged Pod rejected:", str(err).split(": ", 1)[1][:100])
            cluster.kubectl("apply", "-f", "-", input_text=json.dumps(smoke_pod("good", False)))
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                pod = json.loads(cluster.kubectl("get", "pod", "-n", "smoke", "good", "-o", "json"))
                if pod["status"].get("phase") == "Running":
                    break
                time.sleep(0.5)
            else:
                raise ClusterError(f"Pod smoke/good not Running: {pod['status']}")
            print(f"e2e-cluster: Pod smoke/good Running on {pod['spec']['nodeName']}")
            print(f"e2e-cluster: up in {up:.1f}s")
    print(f"e2e-cluster: smoke passed, stopped after {time.monotonic() - started:.1f}s")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("start", "stop", "status", "smoke"))
    parser.add_argument("--dir", type=Path, default=DEFAULT_CACHE / "cluster")
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get("E2E_CACHE", DEFAULT_CACHE)))
    parser.add_argument("--node", action="append", default=[], help="a fake node's name (start)")
    args = parser.parse_args(argv)
    try:
        if args.command == "smoke":
            return smoke(args.cache.resolve())
        cluster = Cluster(args.dir, args.cache)
        if args.command == "start":
            cluster.start([Node(name) for name in args.node])
            print(f"KUBECONFIG={cluster.kubeconfig}")
        elif args.command == "stop":
            cluster.stop()
        else:
            print(cluster.state_file.read_text() if cluster.state_file.is_file() else "stopped")
    except ClusterError as err:
        print(f"e2e-cluster: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
