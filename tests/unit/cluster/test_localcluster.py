"""The local cluster's pure parts: component configuration, versions, pid files."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "hack" / "cluster"))

from localcluster import components, network, processes
from localcluster.layout import Layout, Network, read_versions


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    versions = {"KUBERNETES_VERSION": "v1.34.4", "ETCD_VERSION": "v3.5.35"}
    return Layout(
        versions=versions, cache=tmp_path / "cache", state=tmp_path / "state", network=Network()
    )


def test_versions_are_read_from_the_one_pin_file(tmp_path: Path) -> None:
    pins = tmp_path / "versions.env"
    pins.write_text("# comment\nKUBERNETES_VERSION=v1.34.4\n\nETCD_VERSION = v3.5.35\n")
    assert read_versions(pins) == {"KUBERNETES_VERSION": "v1.34.4", "ETCD_VERSION": "v3.5.35"}
    real = read_versions()
    assert real["KUBERNETES_VERSION"].startswith("v1.3")


def test_containerd_matches_the_kubelet_and_this_machine(layout: Layout) -> None:
    containerd = components.containerd(layout)
    config = containerd.files[layout.config / "containerd.toml"]
    assert "SystemdCgroup = false" in config
    assert "restrict_oom_score_adj = true" in config  # no CAP_SYS_RESOURCE here
    assert f'sandbox_image = "{components.PAUSE_IMAGE}"' in config
    conflist = json.loads(containerd.files[layout.config / "cni" / "10-kubehatch.conflist"])
    assert conflist["plugins"][0]["ipam"]["ranges"] == [[{"subnet": layout.network.pod_cidr}]]
    kubelet = json.loads(components.kubelet(layout).files[layout.config / "kubelet.yaml"])
    assert kubelet["cgroupDriver"] == "cgroupfs" and kubelet["failCgroupV1"] is False
    assert kubelet["imageGCHighThresholdPercent"] == 100  # images here cannot be pulled again


def test_apiserver_advertises_the_node_ip_and_reaches_kubelets_by_ip(layout: Layout) -> None:
    argv = components.kube_apiserver(layout).argv
    assert f"--advertise-address={layout.network.node_ip}" in argv
    assert "--kubelet-preferred-address-types=InternalIP" in argv
    assert f"--service-cluster-ip-range={layout.network.service_cidr}" in argv
    assert "--authorization-mode=Node,RBAC" in argv


def test_kube_proxy_leaves_host_conntrack_settings_alone(layout: Layout) -> None:
    config = json.loads(components.kube_proxy(layout).files[layout.config / "kube-proxy.yaml"])
    assert config["conntrack"]["maxPerCore"] == 0
    assert config["mode"] == "iptables"


def test_every_process_runs_in_the_node_namespace_without_remounting_sys() -> None:
    wrapped = network.in_node(Network(), ["kubelet", "--v=1"])
    assert wrapped[:2] == ["nsenter", "--net=/run/netns/kubehatch-node"]
    assert wrapped[-2:] == ["kubelet", "--v=1"]


def test_addresses_stay_inside_the_ranges_the_harness_owns() -> None:
    net = Network()
    for address in (net.host_ip, net.node_ip, net.kubernetes_service_ip):
        assert address.startswith(("10.201.", "10.202.", "10.203."))


def test_the_blackhole_routes_cover_every_address_of_the_cluster() -> None:
    """Whatever a client addresses while the cluster is down never takes the default route."""
    import ipaddress

    net = Network()
    guarded = [ipaddress.ip_network(cidr) for cidr in network.GUARDED]
    ranges = [
        ipaddress.ip_network(f"{net.host_ip}/{net.prefix}", strict=False),
        ipaddress.ip_network(net.pod_cidr),
        ipaddress.ip_network(net.service_cidr),
    ]
    for inner in ranges:
        assert any(inner.subnet_of(outer) for outer in guarded), inner  # type: ignore[arg-type]


def test_pid_files_recognise_only_the_process_that_wrote_them(layout: Layout) -> None:
    layout.pids.mkdir(parents=True)
    pid = os.getpid()
    started = processes._start_time(pid)
    (layout.pids / "me.pid").write_text(f"{pid} {started}")
    assert processes.pid_of(layout, "me") == pid
    (layout.pids / "recycled.pid").write_text(f"{pid} 1")  # same pid, another start time
    assert processes.pid_of(layout, "recycled") is None
    (layout.pids / "garbage.pid").write_text("not a pid")
    assert processes.pid_of(layout, "garbage") is None
    assert processes.pid_of(layout, "missing") is None
