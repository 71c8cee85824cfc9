"""A local cluster with a real node: the control plane plus containerd, a kubelet,
kube-scheduler, kube-proxy and cluster DNS, all inside one network namespace.

How it is arranged (so nothing but loopback and addresses of our own namespace
ever carries traffic):

- ``ip netns add tokenwarden-<id>`` makes a network namespace with ``lo`` and one
  dummy interface holding the node's address (:data:`NODE_IP`). The default route
  points at that dummy interface, which drops what it is given: nothing can leave.
- Every component runs in that namespace (``nsenter --net``; the mount namespace
  stays the host's, so the kubelet's volume mounts are visible to containerd).
- containerd's CRI plugin puts each pod on a bridge (``cni0``, :data:`POD_CIDR`)
  with the reference CNI plugins; kube-proxy turns Service IPs into pod IPs with
  iptables inside the namespace, so kube-apiserver reaches the admission webhook's
  Service and pods reach the API server through the ``kubernetes`` Service.
- The host reaches kube-apiserver through a Unix socket: one socat listens on
  the socket inside the namespace and connects to the API server there, another
  listens on the host's 127.0.0.1 and connects to the socket. The kubeconfig
  written for the host points at that loopback port.
- Pods run in cgroups under a root of this cluster's own, so stopping the cluster
  kills exactly its containers; images are imported from archives (nothing is
  pulled), the pause image included.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import yaml

from tokenwarden.devcluster._build import Binaries, NodeBinaries
from tokenwarden.devcluster._cluster import (
    ControlPlane,
    _Process,
    component_kubeconfig_flags,
    free_port,
    write_kubeconfig,
)
from tokenwarden.devcluster._errors import ControlPlaneError
from tokenwarden.tls import KeyPair, issue_client_cert, issue_serving_cert

NODE_NAME = "tokenwarden-node"
NODE_IP = "10.200.0.1"
POD_CIDR = "10.244.0.0/24"
APISERVER_PORT = 6443
CNI_BIN_DIR = "/usr/lib/cni"
# Debian packages that provide what the node runs besides our Go binaries.
NODE_PACKAGES = {
    "containerd": "containerd",
    "runc": "runc",
    "ctr": "containerd",
    "socat": "socat",
    "nsenter": "util-linux",
    "ip": "iproute2",
    "iptables": "iptables",
    "conntrack": "conntrack",
    "curl": "curl",
    f"{CNI_BIN_DIR}/bridge": "containernetworking-plugins",
}
_NODE_READY_TIMEOUT = 180.0


def node_problems() -> list[str]:
    """Why a node cannot run on this machine (empty when it can)."""
    problems = []
    if os.geteuid() != 0:
        problems.append("a node needs root (network namespaces, cgroups, mounts): run as root")
    if not Path("/sys/fs/cgroup").is_dir() or not any(Path("/sys/fs/cgroup").iterdir()):
        problems.append("no cgroup filesystem at /sys/fs/cgroup: containers cannot run here")
    if not Path("/proc/sys/net/bridge").is_dir():
        problems.append("the kernel has no bridge netfilter (br_netfilter): Services cannot reach pods")
    missing = sorted({package for tool, package in NODE_PACKAGES.items() if not _have(tool)})
    if missing:
        problems.append(f"missing Debian packages: {' '.join(missing)} (apt-get install {' '.join(missing)})")
    return problems


def _have(tool: str) -> bool:
    return Path(tool).exists() if tool.startswith("/") else shutil.which(tool) is not None


def ensure_node_packages(log=print) -> None:
    """Install the Debian packages the node needs, when some are missing and we are root."""
    missing = sorted({package for tool, package in NODE_PACKAGES.items() if not _have(tool)})
    if not missing or os.geteuid() != 0 or shutil.which("apt-get") is None:
        return
    log(f"installing Debian packages for the node: {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *missing]):
        result = subprocess.run(argv, capture_output=True, text=True, env=env)
        if result.returncode != 0:
            raise ControlPlaneError(f"{' '.join(argv)} failed:\n{result.stderr.strip()[-2000:]}")


def _run(argv: list[str], what: str) -> str:
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        raise ControlPlaneError(f"{what} failed ({' '.join(argv)}):\n{(result.stderr or result.stdout).strip()}")
    return result.stdout


@dataclass(frozen=True)
class NodeImages:
    """Image archives (docker-archive tars) the node imports at start, and the
    name of the pause image among them that containerd uses for pod sandboxes."""
    pause: str
    archives: tuple[Path, ...]


def _read(path: Path) -> str:
    """A cgroup file's text, or nothing when the cgroup went while we looked (ENODEV)."""
    try:
        return path.read_text()
    except OSError:
        return ""


def _cgroup_tree(cgroup: Path) -> list[Path]:
    """A cgroup and every cgroup below it, parents before children. The kubelet and runc remove
    cgroups while we look: one that went meanwhile is left out, never an error."""
    return [Path(directory) for directory, _, _ in os.walk(cgroup)]  # os.walk skips what it cannot read


class NodeCluster(ControlPlane):
    """The control plane with one real node. ``with NodeCluster(...) as cluster:``;
    :attr:`kubeconfig` is usable from the host (kubectl, helm, clients) once
    :meth:`start` returns, which is when the node is Ready."""

    _authorization_mode = "Node,RBAC"
    _apiserver_hosts = (NODE_IP,)

    def __init__(self, binaries: Binaries, node: NodeBinaries, images: NodeImages, *,
                 coredns: Path | None = None, **kwargs) -> None:
        super().__init__(binaries, **kwargs)
        self.node = node
        self.images = images
        self.coredns = coredns
        self.id = uuid.uuid4().hex[:8]
        self.netns = f"tokenwarden-{self.id}"
        self.cgroup_root = f"/tokenwarden-{self.id}"
        self.containerd_socket = self.workdir / "containerd" / "containerd.sock"
        self._netns_made = False
        self._cgroups_made: list[Path] = []

    # -- lifecycle -------------------------------------------------------
    def start(self) -> None:
        problems = node_problems()
        if problems:
            raise ControlPlaneError("a node cannot run here: " + "; ".join(problems))
        try:
            self._make_netns()
            self._make_cgroup_root()
            self._start_containerd()
            self._import_images()
            super().start()
            self._start_node_components()
            self._wait_node_ready()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        # Containers first (they are not our children), then our processes, then
        # mounts, cgroups and the namespace; each step tolerates a half-made cluster.
        self._kill_containers()
        for process in reversed(self._processes):
            process.stop(grace=5.0)
        self._processes.clear()
        self._kill_shims()
        self._unmount_under(self.workdir)
        self._remove_cgroups()
        if self._netns_made:
            subprocess.run(["ip", "netns", "delete", self.netns], capture_output=True)
            self._netns_made = False
        super().stop()

    # -- the network namespace -------------------------------------------
    def _command(self, argv: list[str]) -> list[str]:
        return ["nsenter", f"--net=/run/netns/{self.netns}", "--", *argv]

    def _in_netns(self, argv: list[str], what: str) -> str:
        return _run(self._command(argv), what)

    def _make_netns(self) -> None:
        _run(["ip", "netns", "add", self.netns], "creating the node's network namespace")
        self._netns_made = True
        for argv in (
            ["ip", "link", "set", "lo", "up"],
            ["ip", "link", "add", "node0", "type", "bridge"],
            ["ip", "addr", "add", f"{NODE_IP}/32", "dev", "node0"],
            ["ip", "link", "set", "node0", "up"],
            # Everything not on the pod bridge goes to the dummy interface, which drops it.
            ["ip", "route", "add", "default", "dev", "node0"],
            ["sysctl", "-qw", "net.ipv4.ip_forward=1", "net.bridge.bridge-nf-call-iptables=1"],
        ):
            self._in_netns(argv, "setting up the node's network namespace")

    def _http_ok(self, url: str, *, insecure: bool = False) -> bool:
        argv = ["curl", "-fsS", "--max-time", "2", "-o", "/dev/null"]
        if insecure:
            argv.append("-k")
        return subprocess.run(self._command([*argv, url]), capture_output=True).returncode == 0

    def _etcd_ports(self) -> tuple[int, int]:
        return 2379, 2380

    def _etcd_healthy(self, url: str) -> bool:
        return self._http_ok(f"{url}/health")

    def _apiserver_address(self) -> list[str]:
        socket_path = self.workdir / "apiserver.sock"
        self._spawn("apiserver-socket", [
            "socat", f"UNIX-LISTEN:{socket_path},fork,mode=600", f"TCP:127.0.0.1:{APISERVER_PORT}"])
        port = free_port()
        (self.workdir / "logs").mkdir(exist_ok=True)
        self._processes.append(_Process("apiserver-forward", [
            "socat", f"TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr", f"UNIX-CONNECT:{socket_path}"],
            self.workdir / "logs" / "apiserver-forward.log"))
        self.server = f"https://127.0.0.1:{port}"
        assert self.pki is not None
        return [
            "--bind-address=0.0.0.0",
            f"--advertise-address={NODE_IP}",
            f"--secure-port={APISERVER_PORT}",
            "--enable-admission-plugins=NodeRestriction",
            f"--kubelet-client-certificate={self.pki.admin.cert}",
            f"--kubelet-client-key={self.pki.admin.key}",
            "--kubelet-preferred-address-types=InternalIP",
        ]

    def _in_cluster_kubeconfig(self, stem: str, user: KeyPair) -> Path:
        """A kubeconfig for a component inside the namespace, as ``user``."""
        assert self.pki is not None
        return write_kubeconfig(self.workdir / f"{stem}.kubeconfig", f"https://{NODE_IP}:{APISERVER_PORT}",
                                self.pki.ca, user, stem)

    # -- cgroups ---------------------------------------------------------
    def _controllers(self) -> list[Path]:
        return [p for p in Path("/sys/fs/cgroup").iterdir() if p.is_dir() and not p.is_symlink()]

    def _make_cgroup_root(self) -> None:
        """Pods run under a cgroup root of their own, so stopping kills exactly them."""
        for controller in self._controllers():
            path = controller / self.cgroup_root.lstrip("/")
            try:
                path.mkdir(exist_ok=True)
            except OSError:
                continue
            self._cgroups_made.append(path)
            for name in ("cpuset.cpus", "cpuset.mems"):  # a new cpuset starts empty
                if (path / name).exists() and not (path / name).read_text().strip():
                    (path / name).write_text((controller / name).read_text())

    def _kill_containers(self) -> None:
        for _ in range(20):
            pids = {int(pid) for cgroup in self._cgroups_made for directory in _cgroup_tree(cgroup)
                    for pid in _read(directory / "cgroup.procs").split()}
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.2)

    def _remove_cgroups(self) -> None:
        for cgroup in self._cgroups_made:
            for directory in reversed(_cgroup_tree(cgroup)):  # the deepest first; the cgroup itself last
                try:
                    directory.rmdir()
                except OSError:
                    pass
        self._cgroups_made.clear()

    def _kill_shims(self) -> None:
        """containerd's shims outlive containerd by design; end the ones of this cluster."""
        marker = str(self.containerd_socket).encode()
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if b"containerd-shim" in cmdline and marker in cmdline:
                try:
                    os.kill(int(proc.name), signal.SIGKILL)
                except ProcessLookupError:
                    pass

    @staticmethod
    def _unmount_under(root: Path) -> None:
        prefix = str(root.resolve()) + "/"
        mounts = []
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4].replace("\\040", " ")
            if point.startswith(prefix):
                mounts.append(point)
        for point in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True)

    # -- containerd --------------------------------------------------------
    def _start_containerd(self) -> None:
        base = self.workdir / "containerd"
        base.mkdir(parents=True, exist_ok=True)
        cni_conf = self.workdir / "cni"
        cni_conf.mkdir()
        (cni_conf / "10-tokenwarden.conflist").write_text(json.dumps({
            "cniVersion": "1.0.0",
            "name": "tokenwarden",
            "plugins": [{
                "type": "bridge", "bridge": "cni0", "isGateway": True, "ipMasq": False,
                "hairpinMode": True,
                "ipam": {"type": "host-local", "ranges": [[{"subnet": POD_CIDR}]],
                         "routes": [{"dst": "0.0.0.0/0"}], "dataDir": str(self.workdir / "cni-ipam")},
            }],
        }, indent=2))
        config = base / "config.toml"
        config.write_text(f"""version = 2
root = "{base / 'root'}"
state = "{base / 'state'}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.internal.v1.opt", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "{self.containerd_socket}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{self.images.pause}"
  # Root here may not lower oom_score_adj below its own (no CAP_SYS_RESOURCE).
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  # Pods' network namespaces live in our state folder, not /run/netns, so stopping removes them.
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = "{base / 'runc'}"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{cni_conf}"
""")
        process = self._spawn("containerd", ["containerd", "--config", str(config), "--log-level", "warn"])

        def serving() -> bool:
            return self.containerd_socket.exists() and subprocess.run(
                ["ctr", "--address", str(self.containerd_socket), "version"], capture_output=True
            ).returncode == 0

        self._wait(process, serving, "containerd")

    def _ctr(self, *args: str) -> str:
        return _run(["ctr", "--address", str(self.containerd_socket), "-n", "k8s.io", *args], "ctr")

    def _import_images(self) -> None:
        for archive in self.images.archives:
            self.load_image(archive)

    def load_image(self, archive: Path) -> None:
        """Import a docker-archive tar into the node's containerd (for imagePullPolicy: Never)."""
        self._ctr("images", "import", "--no-unpack", str(archive))

    # -- node components ------------------------------------------------
    def _start_controller_manager(self) -> None:
        assert self.pki is not None
        admin = self._in_cluster_kubeconfig("controller-manager", self.pki.admin)
        process = self._spawn("kube-controller-manager", [
            str(self.binaries.kube_controller_manager),
            *component_kubeconfig_flags(admin),
            # What a node's workloads need: Deployments, DaemonSets, Services' endpoints,
            # ServiceAccount tokens and the CA ConfigMap they mount, PDBs, cleanup.
            "--controllers=" + ",".join(f"{name}-controller" for name in (
                "garbage-collector", "namespace", "serviceaccount", "serviceaccount-token",
                "deployment", "replicaset", "daemonset", "endpoints", "endpointslice",
                "endpointslice-mirroring", "root-ca-certificate-publisher", "disruption",
                "pod-garbage-collector", "clusterrole-aggregation", "ttl-after-finished", "job",
                "service-cidr", "node-lifecycle")),
            f"--service-account-private-key-file={self.pki.service_account_key}",
            f"--root-ca-file={self.pki.ca.cert}",
            "--use-service-account-credentials=false",
            "--bind-address=127.0.0.1",
            "--secure-port=10257",
            f"--cert-dir={self.workdir / 'kcm-certs'}",
        ])
        self._wait(process, lambda: self._http_ok("https://127.0.0.1:10257/healthz", insecure=True),
                   "kube-controller-manager")

    def _start_node_components(self) -> None:
        assert self.pki is not None
        pki_dir = self.workdir / "pki"
        scheduler = self._in_cluster_kubeconfig("scheduler", issue_client_cert(
            self.pki.ca, pki_dir, "scheduler", "system:kube-scheduler"))
        process = self._spawn("kube-scheduler", [
            str(self.node.kube_scheduler),
            *component_kubeconfig_flags(scheduler),
            "--bind-address=127.0.0.1",
            "--secure-port=10259",
        ])
        self._wait(process, lambda: self._http_ok("https://127.0.0.1:10259/healthz", insecure=True),
                   "kube-scheduler")
        self._start_kube_proxy(pki_dir)
        if self.coredns is not None:
            self._start_coredns()
        self._start_kubelet(pki_dir)

    def _start_kube_proxy(self, pki_dir: Path) -> None:
        assert self.pki is not None
        kubeconfig = self._in_cluster_kubeconfig("kube-proxy", issue_client_cert(
            self.pki.ca, pki_dir, "kube-proxy", "system:kube-proxy"))
        config = self.workdir / "kube-proxy.yaml"
        config.write_text(yaml.safe_dump({
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": str(kubeconfig)},
            "mode": "iptables",
            "clusterCIDR": POD_CIDR,
            "hostnameOverride": NODE_NAME,
            "bindAddress": NODE_IP,
            "healthzBindAddress": "127.0.0.1:10256",
            "metricsBindAddress": "127.0.0.1:10249",
            # The namespace may not change the host-wide conntrack table size.
            "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s",
                          "tcpCloseWaitTimeout": "0s"},
        }))
        process = self._spawn("kube-proxy", [str(self.node.kube_proxy), f"--config={config}"])
        self._wait(process, lambda: self._http_ok("http://127.0.0.1:10256/livez")
                   or self._http_ok("http://127.0.0.1:10256/healthz"), "kube-proxy")

    def _start_coredns(self) -> None:
        from tokenwarden.devcluster._dns import corefile

        assert self.pki is not None and self.coredns is not None
        kubeconfig = self._in_cluster_kubeconfig("coredns", self.pki.admin)
        config = self.workdir / "Corefile"
        config.write_text(corefile(kubeconfig, NODE_IP, port=53, health_port=8053, ready_port=8181))
        process = self._spawn("coredns", [str(self.coredns), "-conf", str(config)])
        self._wait(process, lambda: self._http_ok(f"http://{NODE_IP}:8181/ready"), "coredns")

    def _start_kubelet(self, pki_dir: Path) -> None:
        assert self.pki is not None
        user = issue_client_cert(self.pki.ca, pki_dir, "kubelet", f"system:node:{NODE_NAME}", "system:nodes")
        kubeconfig = self._in_cluster_kubeconfig("kubelet", user)
        serving = issue_serving_cert(self.pki.ca, pki_dir, "kubelet-serving", [NODE_NAME, NODE_IP])
        root = self.workdir / "kubelet"
        root.mkdir()
        config = self.workdir / "kubelet.yaml"
        config.write_text(yaml.safe_dump({
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": NODE_IP,
            "port": 10250,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": 10248,
            "tlsCertFile": str(serving.cert),
            "tlsPrivateKeyFile": str(serving.key),
            "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                               "x509": {"clientCAFile": str(self.pki.ca.cert)}},
            "authorization": {"mode": "Webhook"},
            "containerRuntimeEndpoint": f"unix://{self.containerd_socket}",
            # containerd 1.6 cannot tell the kubelet its cgroup driver; this machine has cgroup v1.
            "cgroupDriver": "cgroupfs",
            "failCgroupV1": False,
            "cgroupRoot": self.cgroup_root,
            "podLogsDir": str(self.workdir / "pod-logs"),
            "clusterDomain": "cluster.local",
            "clusterDNS": [NODE_IP] if self.coredns is not None else [],
            "resolvConf": "",
            "failSwapOn": False,
            "protectKernelDefaults": False,
            "makeIPTablesUtilChains": False,
            # Nothing can be pulled here: never collect images, never evict for disk.
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%",
                             "imagefs.available": "1%", "nodefs.inodesFree": "1%"},
            "serializeImagePulls": False,
            "registerNode": True,
        }))
        process = self._spawn("kubelet", [
            str(self.node.kubelet),
            f"--config={config}",
            f"--kubeconfig={kubeconfig}",
            f"--root-dir={root}",
            f"--hostname-override={NODE_NAME}",
            f"--node-ip={NODE_IP}",
        ])
        self._wait(process, lambda: self._http_ok("http://127.0.0.1:10248/healthz"), "kubelet")

    def _wait_node_ready(self) -> None:
        from kubernetes import client

        from tokenwarden import kube

        api = client.CoreV1Api(kube.load_api_client(str(self.kubeconfig)))
        deadline = time.monotonic() + _NODE_READY_TIMEOUT
        last = "not registered"
        kubelet = next(p for p in self._processes if p.name == "kubelet")
        while time.monotonic() < deadline:
            kubelet.check_alive()
            try:
                node = api.read_node(NODE_NAME)
                ready = next((c for c in node.status.conditions or [] if c.type == "Ready"), None)
                if ready is not None and ready.status == "True":
                    api.read_namespaced_service_account("default", "default")
                    return
                last = f"Ready={ready.status}: {ready.message}" if ready else "no Ready condition"
            except client.ApiException as exc:
                last = f"{exc.status} {exc.reason}"
            time.sleep(0.5)
        raise ControlPlaneError(f"node {NODE_NAME} not Ready within {_NODE_READY_TIMEOUT:.0f}s ({last}); "
                                f"see {self.workdir / 'logs' / 'kubelet.log'}")


def node_images(extra: tuple[str, ...] = (), log=print) -> NodeImages:
    """The pause image plus every image archive that ``tokenwarden-dev build-image`` left in the
    cache, and the images named in ``extra`` (exported from buildah's storage)."""
    from tokenwarden.devcluster._build import cache_root
    from tokenwarden.devcluster._images import ensure_pause_image, image_archive

    pause = ensure_pause_image(log)
    archives = [image_archive(pause), *(image_archive(name) for name in extra)]
    archives += sorted(p for p in (cache_root() / "images").glob("*.tar") if p not in archives)
    return NodeImages(pause=pause, archives=tuple(archives))


def start_node_cluster(*, kubeconfig=None, images: tuple[str, ...] = (), extra_apiserver_args=None,
                       log=print) -> NodeCluster:
    """Build (once) and start a cluster with one Ready node; raises ControlPlaneError
    naming the problem when a node cannot run here."""
    from tokenwarden.devcluster._build import ensure_binaries, ensure_node_binaries
    from tokenwarden.devcluster._dns import ensure_coredns

    ensure_node_packages(log)
    problems = node_problems()
    if problems:
        raise ControlPlaneError("a node cannot run here: " + "; ".join(problems))
    cluster = NodeCluster(ensure_binaries(log), ensure_node_binaries(log), node_images(images, log),
                          coredns=ensure_coredns(log), kubeconfig=kubeconfig,
                          extra_apiserver_args=extra_apiserver_args, log=log)
    cluster.start()
    return cluster
