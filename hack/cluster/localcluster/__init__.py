"""A real single-node Kubernetes cluster on this machine, from components built from source.

kind needs a Docker engine; this harness needs none. It runs etcd, the control plane,
containerd, the kubelet and kube-proxy as ordinary processes inside a network namespace
of its own ("the node"), reachable from the host over a veth pair. All cluster traffic
stays on the machine: loopback, the veth pair, and the pod namespaces that CNI creates.
"""
