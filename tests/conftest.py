def pytest_addoption(parser):
    parser.addoption(
        "--cluster",
        choices=["local", "kind"],
        default="local",
        help="local: etcd + kube-apiserver built from Go modules (default); kind: pytest-kind (needs Docker)",
    )
