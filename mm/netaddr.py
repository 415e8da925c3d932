"""Network addresses: what counts as this machine only.

Owns: the loopback test shared by the settings (a public bind needs a token) and the gRPC client
(warn before sending a token in clear). Must not: resolve names (no DNS at config time).
"""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and "localhost"; any other name or address is not."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: could be anywhere


def host_port(host: str, port: int) -> str:
    """`host:port` as gRPC expects it (IPv6 literals in brackets)."""
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"
