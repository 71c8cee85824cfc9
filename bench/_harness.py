"""Shared pieces of the benchmarks: a local control plane, the operator as a process, timing."""
from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from kubernetes import client, watch

from tokenwarden import devcluster, kube

REPO = Path(__file__).resolve().parents[1]
GROUP, VERSION = "tokenwarden.io", "v1alpha1"


@contextlib.contextmanager
def control_plane(**kwargs):
    plane = devcluster.ControlPlane(devcluster.ensure_binaries(log=lambda *_: None), log=lambda *_: None, **kwargs)
    plane.start()
    try:
        kube.install_crds(kube.load_api_client(str(plane.kubeconfig)), REPO / "crds")
        yield plane
    finally:
        plane.stop()


BENCH_AGENT = "tokenwarden-bench"  # the User-Agent of the benchmarks' own client


def api_client(plane, pool: int = 32) -> client.ApiClient:
    """The benchmark's own client, known in the API server's records by :data:`BENCH_AGENT`."""
    api = kube.load_api_client(str(plane.kubeconfig))
    api.rest_client.pool_manager.connection_pool_kw["maxsize"] = pool
    api.user_agent = BENCH_AGENT
    return api


@contextlib.contextmanager
def operator_process(plane, settings: str = "", webhook: bool = True, extra: list[str] | None = None):
    workdir = Path(tempfile.mkdtemp(prefix="tokenwarden-bench-"))
    (workdir / "settings.yaml").write_text(settings or "{}\n")
    liveness = devcluster.free_port()
    argv = [sys.executable, "-m", "tokenwarden", "operator", "--all-namespaces", "--kubeconfig", str(plane.kubeconfig),
            "--config", str(workdir / "settings.yaml"), "--liveness", f"http://127.0.0.1:{liveness}/healthz",
            *(extra or [])]
    if webhook:
        argv += ["--webhook-port", str(devcluster.free_port())]
    log = open(workdir / "operator.log", "wb")
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{liveness}/healthz", timeout=1):
                break
        except OSError:
            time.sleep(0.2)
    try:
        yield process
    finally:
        process.terminate()
        process.wait(30)
        log.close()


@contextlib.contextmanager
def authenticator_process(plane, extra: list[str] | None = None):
    """An authenticator on loopback against ``plane``, yielded once ready with its health and
    metrics port; stopped (and waited for) after the block."""
    port, metrics = devcluster.free_port(), devcluster.free_port()
    process = subprocess.Popen([sys.executable, "-m", "tokenwarden", "authenticator", "--kubeconfig",
                                str(plane.kubeconfig), "--host", "127.0.0.1", "--port", str(port),
                                "--metrics-port", str(metrics), *(extra or [])],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(metrics)
        yield process, metrics
    finally:
        process.terminate()
        process.wait(30)


def new_namespace(api) -> str:
    name = f"bench-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(api).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    return name


def parallel(function, items, workers: int = 16) -> None:
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(function, items))


def create_fleet(custom: client.CustomObjectsApi, namespace: str, tokens: int, accounts: int,
                 spec: dict | None = None) -> None:
    """``accounts`` ServiceAccounts with a writer binding each, then ``tokens`` ServiceTokens
    spread over them (with ``spec`` besides, a ttl for example), all created at once (16 clients)."""
    parallel(lambda a: custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "serviceaccounts", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "ServiceAccount", "metadata": {"name": f"acct-{a}"},
        "spec": {}}), range(accounts))
    parallel(lambda a: custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "rolebindings", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "RoleBinding", "metadata": {"name": f"acct-{a}-writer"},
        "spec": {"serviceAccountName": f"acct-{a}", "roles": ["writer"]}}), range(accounts))
    parallel(lambda i: custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "servicetokens", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "ServiceToken", "metadata": {"name": f"t-{i}"},
        "spec": {"serviceAccountName": f"acct-{i % accounts}", **(spec or {})}}), range(tokens))


def probe_settled(api, namespace: str, tokens: int) -> None:
    """A probe token created beside ``tokens`` Active ones, waited for until all are Active:
    a restarted operator has settled once it mints it (its queue is drained)."""
    deadline = time.monotonic() + 300
    while True:  # a restarted operator's webhook may not answer yet (failurePolicy Fail): retry, as a user would
        try:
            client.CustomObjectsApi(api).create_namespaced_custom_object(GROUP, VERSION, namespace, "servicetokens", {
                "apiVersion": f"{GROUP}/{VERSION}", "kind": "ServiceToken", "metadata": {"name": "probe"},
                "spec": {"roles": ["reader"]}})
            break
        except client.ApiException as error:
            if error.status < 500 or time.monotonic() > deadline:
                raise
            time.sleep(1)
    wait_all(api, namespace, "servicetokens", tokens + 1,
             lambda o: (o.get("status") or {}).get("phase") == "Active", timeout=3600)


def wait_all(api, namespace: str, plural: str, count: int, done, timeout: float = 600) -> dict[str, float]:
    """Watch until ``count`` objects satisfy ``done``; return name → monotonic time it happened."""
    custom = client.CustomObjectsApi(api)
    seen: dict[str, float] = {}
    listing = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, plural)
    for obj in listing["items"]:
        if done(obj):
            seen[obj["metadata"]["name"]] = time.monotonic()
    version = listing["metadata"]["resourceVersion"]
    deadline = time.monotonic() + timeout
    while len(seen) < count and time.monotonic() < deadline:
        for event in watch.Watch().stream(custom.list_namespaced_custom_object, GROUP, VERSION, namespace, plural,
                                          resource_version=version, timeout_seconds=30):
            obj = event["object"]
            version = obj["metadata"]["resourceVersion"]
            if done(obj) and obj["metadata"]["name"] not in seen:
                seen[obj["metadata"]["name"]] = time.monotonic()
            if len(seen) >= count:
                break
    return seen


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def median(values: list[float]) -> float:
    return statistics.median(values)


def wait_ready(port: int) -> float:
    """Seconds until the authenticator whose health and metrics port is ``port`` answers /readyz."""
    started = time.monotonic()
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1):
                return time.monotonic() - started
        except OSError:
            time.sleep(0.2)


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """CPU time (user + system) each named process has used so far, in seconds."""
    tick = os.sysconf("SC_CLK_TCK")
    used = {}
    for name, pid in pids.items():
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        used[name] = (int(fields[11]) + int(fields[12])) / tick
    return used


@contextlib.contextmanager
def profiled(pid: int, output: Path):
    """py-spy samples ``pid`` while the block runs (only threads holding the GIL: CPU, not
    waits), into ``output`` as collapsed stacks; its top frames are printed after."""
    spy = subprocess.Popen(["py-spy", "record", "--pid", str(pid), "--rate", "200", "--gil", "--nonblocking",
                            "--format", "raw", "-o", str(output)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1)  # py-spy attaches
    try:
        yield
    finally:
        spy.send_signal(2)
        spy.wait(60)
    print(f"profile: {output} (collapsed stacks; flamegraph.pl or speedscope draws them)")
    for share, frame in top_frames(output):
        print(f"  {share:5.1f}%  {frame}")


def top_frames(collapsed: Path, count: int = 30) -> list[tuple[float, str]]:
    """The ``count`` frames with the largest inclusive share of samples, leaving out the
    event loop's, the threads' and the command line's own outer frames."""
    inclusive: dict[str, int] = {}
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        total += int(samples)
        for frame in {f.split(" (")[0] + " (" + "/".join(f.split("/")[-2:]) for f in stack.split(";")}:
            inclusive[frame] = inclusive.get(frame, 0) + int(samples)
    outer = ("_run_module_as_main", "_run_code", "<module>", "main ", "Command.", "Group.", "Context.", "operator ",
             "run_operator", "run ", "Runner.", "BaseEventLoop.run", "BaseEventLoop._run_once", "Handle._run", "Thread.", "_worker ", "_WorkItem")
    ranked = sorted(((n, name) for name, n in inclusive.items() if not name.startswith(outer)), reverse=True)
    return [(100 * n / max(total, 1), name) for n, name in ranked[:count]]


def rss_mb(pid: int, field: str = "VmHWM") -> float:
    """Peak resident set size (VmHWM) of a process, in MB; or its size now (``field`` VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def steady_rss_mb(pid: int, within: float = 1.0, every: float = 3.0, limit: float = 180.0) -> float:
    """A process's resident set size (VmRSS) once it no longer grows: three looks ``every``
    seconds apart within ``within`` MB of each other (or the last look after ``limit`` seconds)."""
    looks = [rss_mb(pid, "VmRSS")]
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and (len(looks) < 3 or max(looks[-3:]) - min(looks[-3:]) > within):
        time.sleep(every)
        looks.append(rss_mb(pid, "VmRSS"))
    return looks[-1]


def request_counts(plane) -> dict[tuple[str, str], float]:
    """kube-apiserver's apiserver_request_total, summed by (verb, resource)."""
    with urllib.request.urlopen(f"{plane.server}/metrics", context=plane._ssl_context(), timeout=10) as r:
        text = r.read().decode()
    counts: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(part.split("=", 1) for part in line[line.index("{") + 1:line.index("}")].split(","))
        labels = {k: v.strip('"') for k, v in labels.items()}
        key = (labels.get("verb", ""), labels.get("resource", "") + (
            "/" + labels["subresource"] if labels.get("subresource") else ""))
        counts[key] = counts.get(key, 0) + float(line.rsplit(" ", 1)[1])
    return counts
