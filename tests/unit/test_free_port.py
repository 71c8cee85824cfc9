"""Ports for the servers tests and dev-cluster start: never one the kernel may give a client
connection meanwhile, never the same twice in a process, never one something holds."""
from __future__ import annotations

import socket

from tokenwarden.devcluster import _cluster, free_port


def test_ports_are_outside_the_range_of_outgoing_connections_and_never_repeat():
    low, high = _cluster._outgoing_range()
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
    assert not [p for p in ports if low <= p <= high]
    assert all(_cluster.LISTENING_PORTS[0] <= p <= _cluster.LISTENING_PORTS[1] for p in ports)


def test_a_port_held_is_not_handed_out(monkeypatch):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        monkeypatch.setattr(_cluster, "LISTENING_PORTS", (port, port))
        monkeypatch.setattr(_cluster, "_outgoing_range", lambda: (1, 2))
        handed = free_port()
    assert handed != port  # the kernel's choice, as nothing else in the range is free
