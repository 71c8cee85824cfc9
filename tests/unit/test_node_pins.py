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


def test_a_node_that_cannot_run_says_why(monkeypatch):
    from tokenwarden.devcluster import _node

    monkeypatch.setattr(_node.os, "geteuid", lambda: 1000)
    # Every tool but socat is present, whatever this machine has installed.
    monkeypatch.setattr(_node, "_have", lambda tool: tool != "socat")
    problems = _node.node_problems()
    assert any("needs root" in p for p in problems)
    assert any("socat" in p and "apt-get install socat" in p for p in problems)


def test_packages_are_not_installed_without_root(monkeypatch):
    from tokenwarden.devcluster import _node

    monkeypatch.setattr(_node.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(_node.shutil, "which", lambda tool: None)
    monkeypatch.setattr(_node.subprocess, "run", lambda *a, **k: (_ for _ in ()).throw(AssertionError("ran")))
    _node.ensure_node_packages(log=lambda *_: None)


def test_a_cgroup_tree_lists_parents_first_and_a_vanished_one_as_nothing(tmp_path):
    from tokenwarden.devcluster._node import _cgroup_tree

    (tmp_path / "kubepods" / "pod1" / "ctr").mkdir(parents=True)
    (tmp_path / "kubepods" / "pod2").mkdir()
    tree = _cgroup_tree(tmp_path / "kubepods")
    assert tree[0] == tmp_path / "kubepods"
    for directory in tree[1:]:
        assert tree.index(directory.parent) < tree.index(directory)
    assert len(tree) == 4
    assert _cgroup_tree(tmp_path / "gone") == []
