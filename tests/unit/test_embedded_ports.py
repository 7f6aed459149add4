"""Ports for the embedded platform's processes: never one an outgoing connection could take."""

from __future__ import annotations

import socket

from c360.embedded import _ephemeral_range, free_port


def test_free_ports_lie_outside_the_ephemeral_range_and_are_never_handed_out_twice() -> None:
    low, high = _ephemeral_range()
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == len(ports)
    assert all(not low <= port <= high for port in ports)


def test_a_free_port_can_be_bound_by_a_server() -> None:
    port = free_port()
    with socket.socket() as server:
        server.bind(("127.0.0.1", port))
        server.listen()
        assert server.getsockname()[1] == port
