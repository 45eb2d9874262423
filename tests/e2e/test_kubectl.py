"""The book's own commands with the real kubectl 1.32 against the real cluster.

Every test works in this suite's own namespace (created from a manifest, deleted at
the end), so it neither depends on nor disturbs what the walkthrough does in
`default`. Expected outputs are what a real Kubernetes 1.32 cluster prints for the
same commands (column headers, messages, error wording).
"""

from __future__ import annotations

import json
import os
import pty
import queue
import re
import select
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.e2e.conftest import RunningCluster, free_port, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.root]

NS = f"kc-{os.urandom(3).hex()}"


# ---- helpers ----------------------------------------------------------------------------

def curl(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return str(response.read().decode())


class Kubectl:
    """kubectl in this suite's namespace, with the session cluster's kubeconfig."""

    def __init__(self, cluster: RunningCluster, tmp: Path) -> None:
        self.cluster = cluster
        self.tmp = tmp

    def argv(self, *args: str) -> list[str]:
        return ["kubectl", "--kubeconfig", str(self.cluster.kubeconfig), "--cache-dir",
                str(self.cluster.home / "kubectl-cache"), "-n", NS, *args]

    def __call__(self, *args: str, check: bool = True, timeout: float = 60,
                 input: str | None = None, env: dict[str, str] | None = None
                 ) -> subprocess.CompletedProcess[str]:
        return self.cluster.kubectl("-n", NS, *args, check=check, timeout=timeout,
                                    input=input, env=env)

    def out(self, *args: str) -> str:
        return self(*args).stdout

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "-o", "json").stdout)

    def write(self, name: str, text: str) -> str:
        path = self.tmp / name
        path.write_text(text)
        return str(path)

    def popen(self, *args: str) -> Streaming:
        return Streaming(self.argv(*args))


class Streaming:
    """A long-running kubectl (`-w`, `-f`, `port-forward`) whose output lines a thread
    queues, so a test can wait for one line with a timeout."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def read_line_until(self, wanted: str, *, timeout: float = 20) -> str:
        """Lines until one contains `wanted`."""
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            seen.append(line)
            if wanted in line:
                return line
        raise AssertionError(f"no line with {wanted!r} within {timeout}s; got {seen!r}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.thread.join(timeout=5)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


def table(text: str) -> list[list[str]]:
    return [line.split() for line in text.strip().splitlines()]


def ready_pods(k: Kubectl, selector: str) -> list[dict[str, Any]]:
    return [p for p in k.json("get", "pods", "-l", selector)["items"]
            if not p["metadata"].get("deletionTimestamp")
            and p.get("status", {}).get("phase") == "Running"
            and all(c.get("ready") for c in p["status"].get("containerStatuses") or [])
            and p["status"].get("containerStatuses")]


POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: kubia-manual
  labels:
    app: kubia-manual
spec:
  containers:
  - image: kubia
    name: kubia
    ports:
    - containerPort: 8080
      protocol: TCP
"""

RC = """\
apiVersion: v1
kind: ReplicationController
metadata:
  name: kubia-rc
spec:
  replicas: {replicas}
  selector:
    app: kubia-rc
  template:
    metadata:
      labels:
        app: kubia-rc
    spec:
      containers:
      - name: kubia
        image: kubia
        ports:
        - containerPort: 8080
{extra}"""

SVC = """\
apiVersion: v1
kind: Service
metadata:
  name: kubia-svc
spec:
  ports:
  - port: 80
    targetPort: 8080
  selector:
    app: kubia-rc
"""


@pytest.fixture(scope="module")
def k(cluster: RunningCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kubectl]:
    tmp = tmp_path_factory.mktemp("kubectl")
    kubectl = Kubectl(cluster, tmp)
    manifest = kubectl.write("ns.yaml", f"apiVersion: v1\nkind: Namespace\nmetadata:\n"
                                        f"  name: {NS}\n")
    assert cluster.kubectl("apply", "-f", manifest).stdout.strip() == \
        f"namespace/{NS} created"
    try:
        yield kubectl
    finally:
        cluster.kubectl("delete", "namespace", NS, "--wait=false", check=False)


@pytest.fixture(scope="module")
def bare_pod(k: Kubectl) -> str:
    """`kubectl run kubia --image=kubia --port=8080`: a bare Pod, as 1.32 makes it."""
    assert k.out("run", "kubia", "--image=kubia", "--port=8080").strip() == "pod/kubia created"
    wait_for(lambda: ready_pods(k, "run=kubia"), timeout=60, what="pod kubia ready")
    return "kubia"


# ---- cluster ------------------------------------------------------------------------------

def test_cluster_info_version_api_resources(cluster: RunningCluster, k: Kubectl) -> None:
    info = k.out("cluster-info")
    assert f"Kubernetes control plane is running at https://127.0.0.1:{cluster.api_port}" \
        in info
    version = k.out("version")
    assert "Client Version: v1.32" in version and "Server Version: v1.32" in version
    # Core rows only: metrics.k8s.io serves "pods" and "nodes" too (PodMetrics,
    # NodeMetrics), as a cluster with metrics-server does.
    resources = {row[0]: row for row in table(k.out("api-resources"))[1:]
                 if "metrics.k8s.io/v1beta1" not in row}
    assert resources["pods"][1:] == ["po", "v1", "true", "Pod"]
    assert resources["replicationcontrollers"][1] == "rc"
    assert resources["services"][1] == "svc"
    assert resources["endpoints"][1] == "ep"
    assert resources["events"][1] == "ev"
    assert resources["namespaces"][1:] == ["ns", "v1", "false", "Namespace"]
    assert resources["nodes"][1] == "no"
    # The book's `kubectl create namespace` (kubectl's typed client sends protobuf).
    extra = f"{NS}-extra"
    assert cluster.kubectl("create", "namespace", extra).stdout.strip() == \
        f"namespace/{extra} created"
    assert cluster.kubectl("delete", "ns", extra).stdout.strip() == \
        f'namespace "{extra}" deleted'


def test_get_and_describe_node(k: Kubectl, bare_pod: str) -> None:
    rows = table(k.out("get", "nodes"))
    assert rows[0] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert [r[0] for r in rows[1:]] == ["node-1", "node-2", "node-3"]
    assert all(r[1] == "Ready" and r[2] == "<none>" for r in rows[1:])
    wide = table(k.out("get", "no", "-o", "wide"))
    assert wide[0][5:] == ["INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION",
                           "CONTAINER-RUNTIME"] or wide[0][5:7] == ["INTERNAL-IP",
                                                                    "EXTERNAL-IP"]
    node = k.json("get", "pod", bare_pod)["spec"]["nodeName"]
    out = k.out("describe", "node", node)
    for section in ("Capacity:", "Allocatable:", "System Info:", "Kernel Version:",
                    "Container Runtime Version:", "Kube-Proxy Version:", "Conditions:",
                    "Ready            True", "Non-terminated Pods:", "Allocated resources:",
                    "Events:", f"HolderIdentity:  {node}"):
        assert section in out, f"{section!r} missing from describe node:\n{out}"
    assert "Failed to get lease" not in out and "NaN" not in out
    assert any(line.split()[:2] == [NS, bare_pod] for line in out.splitlines()
               if line.strip()), out


# ---- run, create, apply -----------------------------------------------------------------------

def test_run_makes_a_ready_bare_pod(k: Kubectl, bare_pod: str) -> None:
    pod = k.json("get", "pod", bare_pod)
    assert pod["metadata"]["labels"] == {"run": "kubia"}
    assert not pod["metadata"].get("ownerReferences")
    assert pod["spec"]["containers"][0]["ports"][0]["containerPort"] == 8080
    assert curl(f"http://{pod['status']['podIP']}:8080").strip() == f"You've hit {bare_pod}"
    rows = table(k.out("get", "pods", bare_pod))
    assert rows[0] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert rows[1][:4] == [bare_pod, "1/1", "Running", "0"]


def test_create_apply_manifests(k: Kubectl) -> None:
    pod = k.write("pod.yaml", POD)
    assert k.out("create", "-f", pod).strip() == "pod/kubia-manual created"
    again = k("create", "-f", pod, check=False)
    assert again.returncode == 1
    assert again.stderr.strip() == ('Error from server (AlreadyExists): error when creating '
                                    f'"{pod}": pods "kubia-manual" already exists')
    rc = k.write("rc.yaml", RC.format(replicas=2, extra=""))
    svc = k.write("svc.yaml", SVC)
    assert k.out("apply", "-f", rc).strip() == "replicationcontroller/kubia-rc created"
    assert k.out("apply", "-f", svc).strip() == "service/kubia-svc created"
    # Unchanged: no write at all (a ClusterIP Service has no status writer to race with;
    # the RC's controller keeps writing its status, so compare its generation).
    before = k.json("get", "svc", "kubia-svc")["metadata"]["resourceVersion"]
    assert k.out("apply", "-f", svc).strip() == "service/kubia-svc unchanged"
    assert k.json("get", "svc", "kubia-svc")["metadata"]["resourceVersion"] == before
    assert k.out("apply", "-f", rc).strip() == "replicationcontroller/kubia-rc unchanged"
    assert k.json("get", "rc", "kubia-rc")["metadata"]["generation"] == 1

    # A changed file: strategic merge keeps containers merged by name.
    k("patch", "rc", "kubia-rc", "--type", "strategic", "-p",
      '{"spec":{"template":{"spec":{"containers":[{"name":"kubia",'
      '"env":[{"name":"FROM_PATCH","value":"1"}]}]}}}}')
    changed = k.write("rc2.yaml", RC.format(replicas=3, extra=(
        "        env:\n        - name: GREETING\n          value: hi\n")))
    assert k.out("apply", "-f", changed).strip() == "replicationcontroller/kubia-rc configured"
    obj = k.json("get", "rc", "kubia-rc")
    assert obj["spec"]["replicas"] == 3
    containers = obj["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["kubia"]
    env = {e["name"]: e["value"] for e in containers[0]["env"]}
    assert env == {"GREETING": "hi", "FROM_PATCH": "1"}
    assert containers[0]["image"] == "kubia"
    last = json.loads(obj["metadata"]["annotations"][
        "kubectl.kubernetes.io/last-applied-configuration"])
    assert last["spec"]["replicas"] == 3
    wait_for(lambda: len(ready_pods(k, "app=kubia-rc")) == 3, timeout=60,
             what="3 kubia-rc pods ready")
    wait_for(lambda: len(ready_pods(k, "app=kubia-manual")) == 1, timeout=60,
             what="kubia-manual ready")


# ---- get ---------------------------------------------------------------------------------------

def test_get_tables_and_formats(k: Kubectl) -> None:
    pods = table(k.out("get", "pods", "-o", "wide"))
    assert pods[0] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE",
                       "NOMINATED", "NODE", "READINESS", "GATES"]
    names = {r[0] for r in pods[1:]}
    assert {"kubia", "kubia-manual"} <= names
    assert all(r[5].startswith("10.244.") and r[6].startswith("node-") for r in pods[1:])

    rc = table(k.out("get", "rc"))
    assert rc[0] == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
    assert rc[1][:4] == ["kubia-rc", "3", "3", "3"]
    rc_wide = table(k.out("get", "rc", "-o", "wide"))
    assert rc_wide[0][5:] == ["CONTAINERS", "IMAGES", "SELECTOR"]
    assert rc_wide[1][5:] == ["kubia", "kubia", "app=kubia-rc"]

    svc = table(k.out("get", "svc"))
    assert svc[0] == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert svc[1][:2] == ["kubia-svc", "ClusterIP"] and svc[1][3:5] == ["<none>", "80/TCP"]
    assert svc[1][2].startswith("10.96.")

    def endpoints() -> list[list[str]] | None:
        ep = table(k.out("get", "ep", "kubia-svc"))
        return ep if ep[1][1].count(":8080") == 3 else None
    ep = wait_for(endpoints, what="3 endpoints")
    assert ep[0] == ["NAME", "ENDPOINTS", "AGE"]

    ev = k.out("get", "ev")
    assert ev.splitlines()[0].split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT",
                                          "MESSAGE"]
    assert "pod/kubia-manual" in ev and "Scheduled" in ev

    everything = k.out("get", "all")
    for name in ("pod/kubia ", "pod/kubia-manual", "replicationcontroller/kubia-rc",
                 "service/kubia-svc"):
        assert name in everything

    pod_names = k.out("get", "pods", "-o", "name").split()
    assert "pod/kubia" in pod_names and "pod/kubia-manual" in pod_names
    one = k.json("get", "pod", "kubia-manual")
    assert one["kind"] == "Pod" and one["apiVersion"] == "v1"
    yaml_out = k.out("get", "pod", "kubia-manual", "-o", "yaml")
    assert "kind: Pod" in yaml_out and "name: kubia-manual" in yaml_out
    ip = k.out("get", "pod", "kubia-manual", "-o", "jsonpath={.status.podIP}")
    assert ip == one["status"]["podIP"]
    rc_names = k.out("get", "pods", "-l", "app=kubia-rc", "-o",
                     "jsonpath={.items[*].metadata.name}").split()
    assert len(rc_names) == 3 and all(n.startswith("kubia-rc-") for n in rc_names)

    selected = table(k.out("get", "pods", "-l", "app in (kubia-manual)", "--show-labels"))
    assert selected[0][-1] == "LABELS"
    assert [r[0] for r in selected[1:]] == ["kubia-manual"]
    assert selected[1][-1] == "app=kubia-manual"
    field = table(k.out("get", "pods", "--field-selector", "metadata.name=kubia"))
    assert [r[0] for r in field[1:]] == ["kubia"]
    running = table(k.out("get", "pods", "--field-selector", "status.phase=Running"))
    assert len(running) - 1 >= 5

    everywhere = table(k.cluster.kubectl("get", "pods", "-A").stdout)
    assert everywhere[0][:2] == ["NAMESPACE", "NAME"]
    assert any(r[:2] == [NS, "kubia-manual"] for r in everywhere[1:])
    other = k.cluster.kubectl("get", "pods", "-n", f"{NS}-nope")
    assert other.stdout == "" and f"No resources found in {NS}-nope namespace." in other.stderr

    by_name = [r[0] for r in table(k.out("get", "pods", "--sort-by=.metadata.name"))[1:]]
    assert by_name == sorted(by_name)
    by_time = [r[0] for r in table(k.out("get", "pods",
                                         "--sort-by=.metadata.creationTimestamp"))[1:]]
    assert by_time.index("kubia") < by_time.index("kubia-manual")


def test_get_pods_watch_streams_changes(k: Kubectl) -> None:
    proc = k.popen("get", "pods", "-w")
    try:
        proc.read_line_until("kubia-manual")
        k("label", "pod", "kubia-manual", "watched=yes")
        k("delete", "pod", "kubia-manual", "--wait=false")
        proc.read_line_until("Terminating")
    finally:
        proc.stop()
    wait_for(lambda: k("get", "pod", "kubia-manual", check=False).returncode != 0,
             timeout=60, what="kubia-manual gone")


# ---- describe -------------------------------------------------------------------------------

def test_describe_pod_rc_svc(k: Kubectl, bare_pod: str) -> None:
    pod = re.sub(r"[ \t]+", " ", k.out("describe", "pod", bare_pod))
    for field in (f"Name: {bare_pod}\n", f"Namespace: {NS}\n", "Node: node-",
                  "Start Time:", "Labels: run=kubia\n", "Status: Running\n",
                  "IP: 10.244.", "Containers:", "Image: kubia\n", "Port: 8080/TCP\n",
                  "State: Running\n", "Ready: True\n", "Conditions:", "Restart Count: 0",
                  "Events:", "Scheduled", "Pulled", "Created", "Started"):
        assert field in pod, f"{field!r} missing from describe pod:\n{pod}"
    rc = re.sub(r"[ \t]+", " ", k.out("describe", "rc", "kubia-rc"))
    for field in ("Name: kubia-rc\n", "Selector: app=kubia-rc\n",
                  "Replicas: 3 current / 3 desired\n",
                  "Pods Status: 3 Running / 0 Waiting / 0 Succeeded / 0 Failed\n",
                  "Pod Template:", "SuccessfulCreate"):
        assert field in rc, f"{field!r} missing from describe rc:\n{rc}"
    svc = re.sub(r"[ \t]+", " ", k.out("describe", "svc", "kubia-svc"))
    for field in ("Name:", "kubia-svc", "Selector:", "app=kubia-rc", "Type:", "ClusterIP",
                  "IP:", "Port:", "80/TCP", "TargetPort:", "8080/TCP", "Endpoints:"):
        assert field in svc, f"{field!r} missing from describe svc:\n{svc}"


# ---- expose, scale, label, annotate, patch, edit -----------------------------------------------

def test_expose_loadbalancer_is_curlable(k: Kubectl) -> None:
    name = f"kubia-http-{NS[-6:]}"
    out = k.out("expose", "rc", "kubia-rc", "--type=LoadBalancer", "--name", name,
                "--port=8080")
    assert out.strip() == f"service/{name} exposed"

    def external_ip() -> str | None:
        row = table(k.out("get", "svc", name))[1]
        return row[3] if row[3].startswith("127.0.100.") else None
    ip = wait_for(external_ip, what="an EXTERNAL-IP")
    row = table(k.out("get", "svc", name))[1]
    assert row[1] == "LoadBalancer" and row[4].startswith("8080:") and row[4].endswith("/TCP")
    pods = {p["metadata"]["name"] for p in ready_pods(k, "app=kubia-rc")}

    def answered_by_all() -> bool:
        hits = {curl(f"http://{ip}:8080").removeprefix("You've hit ").strip()
                for _ in range(12)}
        return hits == pods
    wait_for(answered_by_all, timeout=30, what="the LoadBalancer balancing over 3 pods")
    assert k.out("delete", "svc", name).strip() == f'service "{name}" deleted'


def test_scale_label_annotate_patch_edit(k: Kubectl, bare_pod: str) -> None:
    assert k.out("scale", "rc", "kubia-rc", "--replicas=2").strip() == \
        "replicationcontroller/kubia-rc scaled"
    wait_for(lambda: table(k.out("get", "rc", "kubia-rc"))[1][1:4] == ["2", "2", "2"],
             timeout=60, what="kubia-rc at 2 replicas")

    assert k.out("label", "pod", bare_pod, "tier=web").strip() == f"pod/{bare_pod} labeled"
    clash = k("label", "pod", bare_pod, "tier=db", check=False)
    assert clash.returncode == 1 and "'tier' already has a value (web)" in clash.stderr
    k("label", "pod", bare_pod, "tier=db", "--overwrite")
    assert k.out("annotate", "pod", bare_pod, "note=hello").strip() == \
        f"pod/{bare_pod} annotated"
    meta = k.json("get", "pod", bare_pod)["metadata"]
    assert meta["labels"]["tier"] == "db" and meta["annotations"]["note"] == "hello"
    k("label", "pod", bare_pod, "tier-")
    assert "tier" not in k.json("get", "pod", bare_pod)["metadata"]["labels"]

    out = k.out("patch", "pod", bare_pod, "--type", "merge", "-p",
                '{"metadata":{"labels":{"patched":"merge"}}}')
    assert out.strip() == f"pod/{bare_pod} patched"
    k("patch", "pod", bare_pod, "-p", '{"metadata":{"labels":{"patched":"strategic"}}}')
    k("patch", "pod", bare_pod, "--type", "json", "-p",
      '[{"op":"add","path":"/metadata/annotations/json","value":"patch"}]')
    meta = k.json("get", "pod", bare_pod)["metadata"]
    assert meta["labels"]["patched"] == "strategic" and meta["annotations"]["json"] == "patch"
    unchanged = k.out("patch", "pod", bare_pod, "--type", "merge", "-p",
                      '{"metadata":{"labels":{"patched":"strategic"}}}')
    assert unchanged.strip() == f"pod/{bare_pod} patched (no change)"

    editor = k.write("editor.sh", "#!/bin/sh\nsed -i 's/^  replicas: 2$/  replicas: 1/' \"$1\"\n")
    os.chmod(editor, 0o755)
    edited = k("edit", "rc", "kubia-rc", env={"EDITOR": editor, "KUBE_EDITOR": editor})
    assert edited.stdout.strip() == "replicationcontroller/kubia-rc edited"
    assert k.json("get", "rc", "kubia-rc")["spec"]["replicas"] == 1
    wait_for(lambda: table(k.out("get", "rc", "kubia-rc"))[1][1:4] == ["1", "1", "1"],
             timeout=60, what="kubia-rc at 1 replica")


# ---- logs and exec ----------------------------------------------------------------------------

def test_logs(cluster: RunningCluster, k: Kubectl, bare_pod: str) -> None:
    ip = k.json("get", "pod", bare_pod)["status"]["podIP"]
    proc = k.popen("logs", "-f", bare_pod)
    try:
        curl(f"http://{ip}:8080")
        proc.read_line_until("Received request from")
        curl(f"http://{ip}:8080")
        proc.read_line_until("Received request from")
    finally:
        proc.stop()
    tail = k.out("logs", bare_pod, "--tail=1").splitlines()
    assert len(tail) == 1 and "Received request from" in tail[0]
    stamped = k.out("logs", bare_pod, "--tail=2", "--timestamps").splitlines()
    assert len(stamped) == 2 and all(line[:4].isdigit() and "T" in line.split()[0]
                                     and line.split()[0].endswith("Z") for line in stamped)
    assert k.out("logs", bare_pod, "-c", "kubia", "--tail=1") == "\n".join(tail) + "\n"
    wrong = k("logs", bare_pod, "-c", "nope", check=False)
    assert wrong.returncode == 1
    assert "container nope is not valid for pod kubia" in wrong.stderr

    # --previous: kill the app from the host, as a crash would.
    pod = k.json("get", "pod", bare_pod)
    sandbox = next((cluster.home / "pods").glob(
        f"{NS}_{bare_pod}_{pod['metadata']['uid']}/sandbox.json"))
    app_pid = int(json.loads(sandbox.read_text())["containers"]["kubia"]["pid"])
    assert psutil.Process(app_pid).is_running()
    os.kill(app_pid, signal.SIGKILL)

    def restarted() -> bool:
        statuses = k.json("get", "pod", bare_pod)["status"]["containerStatuses"]
        return bool(statuses[0]["restartCount"] == 1 and statuses[0].get("ready"))
    wait_for(restarted, timeout=60, what="the app restarted")
    previous = k.out("logs", bare_pod, "--previous")
    assert "Received request from" in previous
    assert "Received request from" not in k.out("logs", bare_pod)
    row = table(k.out("get", "pod", bare_pod))[1]
    assert row[3] == "1" and row[5] == "ago)", row


def test_exec(k: Kubectl, bare_pod: str) -> None:
    assert k.out("exec", bare_pod, "--", "hostname").strip() == bare_pod
    failed = k("exec", bare_pod, "--", "sh", "-c", "echo out; echo err >&2; exit 3",
               check=False)
    assert failed.returncode == 3
    assert failed.stdout == "out\n"
    assert failed.stderr == "err\ncommand terminated with exit code 3\n"
    piped = k("exec", "-i", bare_pod, "--", "sh", "-c", "tr a-z A-Z", input="hello pod\n")
    assert piped.stdout == "HELLO POD\n"
    missing = k("exec", "nope", "--", "true", check=False)
    assert missing.stderr.strip() == 'Error from server (NotFound): pods "nope" not found'


def test_exec_interactive_tty(k: Kubectl, bare_pod: str) -> None:
    pid, fd = pty.fork()
    if pid == 0:  # the child: kubectl on a terminal of 100x30
        os.execvp("kubectl", k.argv("exec", "-it", bare_pod, "--", "sh"))
    try:
        import fcntl
        import struct
        import termios
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
        buffer = b""

        def expect(wanted: bytes, timeout: float = 20) -> None:
            nonlocal buffer
            deadline = time.monotonic() + timeout
            while wanted not in buffer:
                left = deadline - time.monotonic()
                assert left > 0, f"no {wanted!r} in {buffer!r}"
                ready, _, _ = select.select([fd], [], [], left)
                if ready:
                    try:
                        chunk = os.read(fd, 4096)
                    except OSError:
                        break
                    if not chunk:
                        break
                    buffer += chunk
            assert wanted in buffer, buffer
        expect(b"#")
        os.write(fd, b"hostname; stty size\n")
        expect(f"{bare_pod}\r\n".encode())
        expect(b"30 100")
        os.write(fd, b"exit\n")
        _, status = os.waitpid(pid, 0)
        pid = 0
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        if pid:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)


# ---- port-forward -------------------------------------------------------------------------

def test_port_forward(k: Kubectl, bare_pod: str) -> None:
    port = free_port()
    proc = k.popen("port-forward", f"pod/{bare_pod}", f"{port}:8080")
    try:
        proc.read_line_until(f"Forwarding from 127.0.0.1:{port} -> 8080")
        for _ in range(2):
            assert curl(f"http://127.0.0.1:{port}").strip() == f"You've hit {bare_pod}"
    finally:
        proc.stop()


# ---- errors ------------------------------------------------------------------------------

def test_errors_read_like_kubernetes(cluster: RunningCluster, k: Kubectl) -> None:
    missing = k("get", "pod", "nope", check=False)
    assert missing.returncode == 1
    assert missing.stderr.strip() == 'Error from server (NotFound): pods "nope" not found'
    bad = k.write("bad-rc.yaml", RC.format(replicas=-1, extra="").replace("kubia-rc",
                                                                          "bad-rc"))
    invalid = k("create", "-f", bad, check=False)
    assert invalid.returncode == 1
    assert 'The ReplicationController "bad-rc" is invalid: spec.replicas: Invalid value: -1' \
        in invalid.stderr

    stale = k.write("stale.yaml", k.out("get", "rc", "kubia-rc", "-o", "yaml"))
    k("annotate", "rc", "kubia-rc", "touched=yes")
    conflict = k("replace", "-f", stale, check=False)
    assert conflict.returncode == 1
    assert ('Error from server (Conflict): error when replacing "' + stale + '": Operation '
            'cannot be fulfilled on replicationcontrollers "kubia-rc": the object has been '
            'modified; please apply your changes to the latest version and try again') \
        in conflict.stderr

    config = cluster.kubeconfig.read_text()
    token = next(line.split(":", 1)[1].strip() for line in config.splitlines()
                 if line.strip().startswith("token:"))
    wrong = k.write("bad-kubeconfig", config.replace(token, "not-the-token"))
    unauthorized = subprocess.run(["kubectl", "--kubeconfig", wrong, "--cache-dir",
                                   str(k.tmp / "cache"), "get", "pods"],
                                  capture_output=True, text=True, timeout=30)
    assert unauthorized.returncode == 1
    # kubectl 1.32 words a 401 during discovery this way against any cluster.
    assert "error: You must be logged in to the server (the server has asked for the " \
        "client to provide credentials)" in unauthorized.stderr


# ---- delete ------------------------------------------------------------------------------

def test_delete_cascade_orphan_and_wait(k: Kubectl) -> None:
    k("scale", "rc", "kubia-rc", "--replicas=2")
    wait_for(lambda: len(ready_pods(k, "app=kubia-rc")) == 2, timeout=60,
             what="2 kubia-rc pods")
    out = k.out("delete", "rc", "kubia-rc", "--cascade=orphan")
    assert out.strip() == 'replicationcontroller "kubia-rc" deleted'
    orphans = k.json("get", "pods", "-l", "app=kubia-rc")["items"]
    assert len(orphans) == 2
    assert all(not p["metadata"].get("ownerReferences") for p in orphans)

    k("delete", "pods", "-l", "app=kubia-rc", "--wait")
    assert not k.json("get", "pods", "-l", "app=kubia-rc")["items"]

    k("apply", "-f", k.write("rc3.yaml", RC.format(replicas=2, extra="")))
    wait_for(lambda: len(k.json("get", "pods", "-l", "app=kubia-rc")["items"]) == 2,
             what="2 new kubia-rc pods")
    k("delete", "rc", "kubia-rc")
    wait_for(lambda: not k.json("get", "pods", "-l", "app=kubia-rc")["items"], timeout=60,
             what="cascading deletion of the RC's pods")

    assert k.out("delete", "pod", "kubia", "--wait").strip() == 'pod "kubia" deleted'
    gone = k("get", "pod", "kubia", check=False)
    assert gone.stderr.strip() == 'Error from server (NotFound): pods "kubia" not found'
    assert k.out("delete", "svc", "kubia-svc").strip() == 'service "kubia-svc" deleted'
