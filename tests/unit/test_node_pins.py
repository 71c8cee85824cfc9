"""The node's binaries come from the same Kubernetes release as the control plane."""
from tokenwarden.devcluster import hack_dir
from tokenwarden.devcluster._build import pinned_version


def test_node_and_control_plane_pin_the_same_kubernetes():
    hack = hack_dir()
    node = pinned_version(hack / "node" / "go.mod", "k8s.io/kubernetes")
    control_plane = pinned_version(hack / "controlplane" / "go.mod", "k8s.io/kubernetes")
    assert node == control_plane


def test_node_module_pins_the_node_binaries():
    tools = (hack_dir() / "node" / "tools.go").read_text()
    for command in ("kubelet", "kube-scheduler", "kube-proxy", "kubectl"):
        assert f'"k8s.io/kubernetes/cmd/{command}"' in tools
