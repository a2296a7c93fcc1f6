"""The cluster's processes: their configuration files and command lines, as plain data.

Nothing here starts anything; `processes.py` does. Keeping the flags apart makes them
easy to read side by side and to check in unit tests.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .layout import Layout

PAUSE_IMAGE = "localhost/kubehatch/pause:3.10"


@dataclass(frozen=True)
class Component:
    """One long-running process of the cluster, started in the node's network namespace."""

    name: str
    argv: list[str]
    files: dict[Path, str] = field(default_factory=dict)


def etcd(layout: Layout) -> Component:
    data = layout.state / "etcd"
    return Component(
        "etcd",
        [
            str(layout.etcd_bin),
            "--name=kubehatch",
            f"--data-dir={data}",
            "--listen-client-urls=http://127.0.0.1:2379",
            "--advertise-client-urls=http://127.0.0.1:2379",
            "--listen-peer-urls=http://127.0.0.1:2380",
            "--initial-advertise-peer-urls=http://127.0.0.1:2380",
            "--initial-cluster=kubehatch=http://127.0.0.1:2380",
            "--listen-metrics-urls=http://127.0.0.1:2381",
            # A single test node: trade durability of the last writes for speed.
            "--unsafe-no-fsync",
            "--quota-backend-bytes=2147483648",
            "--log-level=warn",
        ],
    )


def kube_apiserver(layout: Layout) -> Component:
    pki, net = layout.pki, layout.network
    return Component(
        "kube-apiserver",
        [
            str(layout.kubernetes_bin / "kube-apiserver"),
            "--etcd-servers=http://127.0.0.1:2379",
            f"--advertise-address={net.node_ip}",
            "--bind-address=0.0.0.0",
            f"--secure-port={net.apiserver_port}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={net.service_cidr}",
            "--authorization-mode=Node,RBAC",
            "--allow-privileged=true",
            # Reach the kubelet (logs, exec) by IP: the node name resolves nowhere.
            "--kubelet-preferred-address-types=InternalIP",
            "--enable-admission-plugins=NodeRestriction",
            "--profiling=false",
            "--v=1",
        ],
    )


def kube_controller_manager(layout: Layout) -> Component:
    pki, kubeconfig = layout.pki, layout.config / "kube-controller-manager.kubeconfig"
    return Component(
        "kube-controller-manager",
        [
            str(layout.kubernetes_bin / "kube-controller-manager"),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--leader-elect=false",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            "--use-service-account-credentials=true",
            f"--cluster-signing-cert-file={pki / 'ca.crt'}",
            f"--cluster-signing-key-file={pki / 'ca.key'}",
            f"--service-cluster-ip-range={layout.network.service_cidr}",
            "--bind-address=127.0.0.1",
            "--profiling=false",
            "--v=1",
        ],
    )


def kube_scheduler(layout: Layout) -> Component:
    kubeconfig = layout.config / "kube-scheduler.kubeconfig"
    return Component(
        "kube-scheduler",
        [
            str(layout.kubernetes_bin / "kube-scheduler"),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            "--profiling=false",
            "--v=1",
        ],
    )


def containerd(layout: Layout) -> Component:
    root = layout.state / "containerd"
    run = layout.run_dir / "containerd"
    cni_conf = layout.config / "cni"
    config_path = layout.config / "containerd.toml"
    # Debian's containerd 1.6 speaks config version 2. cgroupfs (SystemdCgroup = false)
    # must match the kubelet's cgroupDriver.
    config = f"""version = 2
root = "{root}"
state = "{run}"
[grpc]
  address = "{layout.containerd_socket}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  # This machine denies lowering oom_score_adj (no CAP_SYS_RESOURCE). The CRI asks for
  # -998 on sandboxes and -997 on Guaranteed pods: clamp those to containerd's own score.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{cni_conf}"
"""
    conflist = {
        "cniVersion": "0.4.0",
        "name": "kubehatch",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "cni0",
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": layout.network.pod_cidr}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    return Component(
        "containerd",
        ["containerd", f"--config={config_path}"],
        files={
            config_path: config,
            cni_conf / "10-kubehatch.conflist": json.dumps(conflist, indent=2),
        },
    )


def kubelet(layout: Layout) -> Component:
    pki, net = layout.pki, layout.network
    config_path = layout.config / "kubelet.yaml"
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "cgroupDriver": "cgroupfs",
        # This machine mounts cgroup v1; allowed explicitly (the default flips in 1.35).
        "failCgroupV1": False,
        "failSwapOn": False,
        "containerRuntimeEndpoint": f"unix://{layout.containerd_socket}",
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(pki / "ca.crt")},
        },
        "authorization": {"mode": "Webhook"},
        "address": net.node_ip,
        "healthzBindAddress": "127.0.0.1",
        "readOnlyPort": 0,
        "clusterDomain": "cluster.local",
        # No image can be pulled again here, so never garbage-collect images.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
        },
        "serializeImagePulls": False,
        "resolvConf": str(layout.config / "resolv.conf"),
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        "staticPodPath": "",
        "maxPods": 250,
    }
    return Component(
        "kubelet",
        [
            str(layout.kubernetes_bin / "kubelet"),
            f"--config={config_path}",
            f"--kubeconfig={layout.config / 'kubelet.kubeconfig'}",
            f"--hostname-override={layout.node_name}",
            f"--node-ip={net.node_ip}",
            f"--root-dir={layout.state / 'kubelet'}",
            f"--cert-dir={layout.state / 'kubelet' / 'pki'}",
            "--v=1",
        ],
        # An empty resolv.conf: pods have no DNS server to reach, and must not try the host's.
        files={config_path: json.dumps(config, indent=2), layout.config / "resolv.conf": ""},
    )


def kube_proxy(layout: Layout) -> Component:
    config_path = layout.config / "kube-proxy.yaml"
    config = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(layout.config / "kube-proxy.kubeconfig")},
        "mode": "iptables",
        "clusterCIDR": layout.network.pod_cidr,
        "hostnameOverride": layout.node_name,
        "bindAddress": layout.network.node_ip,
        "healthzBindAddress": "127.0.0.1:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        # Leave the kernel's conntrack table size alone: it is not ours to change.
        "conntrack": {"maxPerCore": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
    }
    return Component(
        "kube-proxy",
        [str(layout.kubernetes_bin / "kube-proxy"), f"--config={config_path}", "--v=1"],
        files={config_path: json.dumps(config, indent=2)},
    )


CONTROL_PLANE = (etcd, kube_apiserver, kube_controller_manager, kube_scheduler)
NODE = (containerd, kubelet, kube_proxy)
