"""Loopback ports for the lab's servers: is one free, and one free on every address of a list."""

from __future__ import annotations

import random
import socket

__all__ = ["port_free", "free_port_on"]


def port_free(host: str, port: int) -> bool:
    """Whether a TCP server could bind ``host:port`` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port_on(addresses: list[str], low: int = 20000, high: int = 60000) -> int:
    """A TCP port free on every one of these loopback addresses (for parallel test worlds)."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(low, high)
        if all(port_free(host, port) for host in addresses):
            return port
    raise OSError("no port free on all of {0}".format(addresses))
