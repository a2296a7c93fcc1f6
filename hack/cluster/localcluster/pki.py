"""Certificates, keys and kubeconfigs for the cluster, made with the openssl CLI.

One CA signs every serving and client certificate; one RSA key signs and verifies
ServiceAccount tokens. Each component gets its own identity, so the Node and RBAC
authorizers see the same users they see on a kubeadm-built cluster.
"""

from __future__ import annotations

import base64
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .layout import Layout

VALID_DAYS = 3650


@dataclass(frozen=True)
class ClientIdentity:
    """A client certificate: file stem, common name (the user) and organisation (a group)."""

    name: str
    common_name: str
    organisation: str | None = None


def client_identities(node_name: str) -> list[ClientIdentity]:
    return [
        ClientIdentity("admin", "kubehatch-admin", "system:masters"),
        ClientIdentity("kube-controller-manager", "system:kube-controller-manager"),
        ClientIdentity("kube-scheduler", "system:kube-scheduler"),
        ClientIdentity("kube-proxy", "system:kube-proxy"),
        ClientIdentity("kubelet", f"system:node:{node_name}", "system:nodes"),
        # The apiserver's identity towards kubelets (logs, exec, port-forward).
        ClientIdentity(
            "apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters"
        ),
    ]


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _sign(pki: Path, name: str, subject: str, extensions: str) -> None:
    key, csr, crt = pki / f"{name}.key", pki / f"{name}.csr", pki / f"{name}.crt"
    _openssl("genrsa", "-out", str(key), "2048")
    _openssl("req", "-new", "-key", str(key), "-subj", subject, "-out", str(csr))
    with tempfile.NamedTemporaryFile("w", suffix=".ext") as ext:
        ext.write(extensions)
        ext.flush()
        _openssl(
            "x509",
            "-req",
            "-in",
            str(csr),
            "-CA",
            str(pki / "ca.crt"),
            "-CAkey",
            str(pki / "ca.key"),
            "-CAcreateserial",
            "-days",
            str(VALID_DAYS),
            "-out",
            str(crt),
            "-extfile",
            ext.name,
        )
    csr.unlink()
    key.chmod(0o600)


def ensure_pki(layout: Layout) -> None:
    """Create whatever certificate or key is missing; keep what exists (idempotent)."""
    pki = layout.pki
    pki.mkdir(parents=True, exist_ok=True)
    net = layout.network
    if not (pki / "ca.crt").exists():
        _openssl(
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(pki / "ca.key"),
            "-out",
            str(pki / "ca.crt"),
            "-days",
            str(VALID_DAYS),
            "-subj",
            "/CN=kubehatch-ca",
        )
    if not (pki / "sa.key").exists():
        _openssl("genrsa", "-out", str(pki / "sa.key"), "2048")
        _openssl("rsa", "-in", str(pki / "sa.key"), "-pubout", "-out", str(pki / "sa.pub"))
    if not (pki / "apiserver.crt").exists():
        names = [
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
            "localhost",
        ]
        ips = ["127.0.0.1", net.node_ip, net.kubernetes_service_ip]
        san = ",".join([f"DNS:{n}" for n in names] + [f"IP:{ip}" for ip in ips])
        _sign(
            pki,
            "apiserver",
            "/CN=kube-apiserver",
            f"basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
            f"extendedKeyUsage=serverAuth\nsubjectAltName={san}\n",
        )
    for ident in client_identities(layout.node_name):
        if (pki / f"{ident.name}.crt").exists():
            continue
        subject = f"/CN={ident.common_name}"
        if ident.organisation:
            subject = f"/O={ident.organisation}{subject}"
        _sign(
            pki,
            ident.name,
            subject,
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=clientAuth\n",
        )


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def kubeconfig_text(layout: Layout, identity: str, server: str | None = None) -> str:
    """A kubeconfig for one client identity, with its certificates inlined."""
    pki = layout.pki
    server = server or layout.apiserver_url
    return (
        "apiVersion: v1\nkind: Config\n"
        "clusters:\n- name: kubehatch\n  cluster:\n"
        f"    server: {server}\n    certificate-authority-data: {_b64(pki / 'ca.crt')}\n"
        f"users:\n- name: {identity}\n  user:\n"
        f"    client-certificate-data: {_b64(pki / f'{identity}.crt')}\n"
        f"    client-key-data: {_b64(pki / f'{identity}.key')}\n"
        f"contexts:\n- name: kubehatch\n  context:\n    cluster: kubehatch\n    user: {identity}\n"
        "current-context: kubehatch\n"
    )


def write_kubeconfigs(layout: Layout) -> None:
    layout.config.mkdir(parents=True, exist_ok=True)
    for ident in client_identities(layout.node_name):
        if ident.name == "apiserver-kubelet-client":
            continue
        path = layout.config / f"{ident.name}.kubeconfig"
        path.write_text(kubeconfig_text(layout, ident.name))
        path.chmod(0o600)
    layout.kubeconfig.write_text(kubeconfig_text(layout, "admin"))
    layout.kubeconfig.chmod(0o600)
