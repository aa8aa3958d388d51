"""Controllers of the Kubernetes twin, on the simulated clock, over the store (STORE_API.md).

world.KubeWorld         machines outside Kubernetes: powered, reachable, booting (hooks for Proxmox/Talos)
kubelet.Kubelets        node leases, node status, pod lifecycle, volumes in use, crash loops
nodelifecycle           node health -> Unknown + taints; taint-based eviction
scheduler.Scheduler     binds pending pods
workloads               ReplicaSet, Deployment, StatefulSet, DaemonSet
volumes                 PV provisioning/binding, attach/detach controller, CSI external-attacher
longhorn.Longhorn       Longhorn volumes, tickets, engines, replicas, nodes, settings
podgc.PodGC             pod garbage collection (incl. out-of-service)
controlplane            apiserver master leases -> default/kubernetes Endpoints + EndpointSlice
"""
