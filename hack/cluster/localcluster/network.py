"""The node's network namespace and the veth pair that joins it to the host.

The host side gets 10.201.0.1, the node side 10.201.0.2 (the node IP and the API server's
advertise address). The node namespace has no default route, so nothing started inside
it can reach an address off this machine; pods live in namespaces CNI creates behind
the node's bridge. The host never forwards (its ip_forward is left untouched).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from .layout import Network


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


def netns_path(net: Network) -> Path:
    return Path("/run/netns") / net.netns


def exists(net: Network) -> bool:
    return netns_path(net).exists()


def in_node(net: Network, argv: list[str]) -> list[str]:
    """Wrap a command so it runs in the node's network namespace.

    nsenter --net switches only the network namespace. `ip netns exec` would also
    remount /sys in a new mount namespace, hiding the cgroup mounts the kubelet needs.
    """
    return ["nsenter", f"--net={netns_path(net)}", "--", *argv]


GUARDED = ("10.201.0.0/16", "10.202.0.0/16", "10.203.0.0/16")
"""The cluster's ranges (see layout.Network), kept off the host's default route."""


def guard() -> None:
    """Blackhole routes on the host for the cluster's ranges, left in place when it is down.

    While the cluster runs, the veth's own /30 route is more specific and wins; when it is
    down, a client still pointed at 10.201.0.2 gets "no route to host" at once instead of
    its packets following the default route off this machine.
    """
    for cidr in GUARDED:
        _ip("route", "replace", "blackhole", cidr, check=False)


def create(net: Network) -> None:
    """Create the namespace and veth pair; a no-op when they already exist."""
    guard()
    if exists(net):
        return
    _ip("netns", "add", net.netns)
    _ip("link", "add", net.host_veth, "type", "veth", "peer", "name", net.node_veth)
    _ip("link", "set", net.node_veth, "netns", net.netns)
    _ip("addr", "add", f"{net.host_ip}/{net.prefix}", "dev", net.host_veth)
    _ip("link", "set", net.host_veth, "up")
    for args in (
        ["link", "set", "lo", "up"],
        ["addr", "add", f"{net.node_ip}/{net.prefix}", "dev", net.node_veth],
        ["link", "set", net.node_veth, "up"],
    ):
        subprocess.run(in_node(net, ["ip", *args]), check=True, capture_output=True)
    # Pods route through the node: forwarding inside the node namespace only.
    subprocess.run(
        in_node(net, ["sysctl", "-qw", "net.ipv4.ip_forward=1"]), check=True, capture_output=True
    )
    for knob in ("net.bridge.bridge-nf-call-iptables=1", "net.ipv4.conf.all.route_localnet=1"):
        subprocess.run(in_node(net, ["sysctl", "-qw", knob]), check=False, capture_output=True)


def delete(net: Network) -> None:
    """Remove the namespace (its interfaces, bridge and iptables rules go with it); the
    blackhole routes stay (see `guard`)."""
    guard()
    _ip("link", "del", net.host_veth, check=False)
    if exists(net):
        _ip("netns", "del", net.netns, check=False)
