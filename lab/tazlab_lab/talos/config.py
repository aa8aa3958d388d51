"""The twin's reading of Talos machine configuration (multi-document YAML).

Independent of the collection's patch code on purpose: the twin judges what the client sends.
"""

from __future__ import annotations

import copy
import difflib
import ipaddress

import yaml

# v1alpha1 paths that apply without a reboot (talos.md, "Applies without reboot").
NO_REBOOT_TOP = {"debug", "cluster"}
NO_REBOOT_MACHINE = {"network", "certSANs", "kubelet", "time", "install", "sysctls", "sysfs", "logging",
                     "registries", "nodeLabels", "nodeAnnotations", "nodeTaints"}
NO_REBOOT_MACHINE_FEATURES = {"kubePrism"}


class ConfigError(ValueError):
    pass


def parse(data: bytes | str) -> list[dict]:
    if isinstance(data, bytes):
        data = data.decode("utf-8")
    try:
        docs = [d for d in yaml.safe_load_all(data) if d is not None]
    except yaml.YAMLError as exc:
        raise ConfigError(f"failed to parse config: {exc}") from exc
    for d in docs:
        if not isinstance(d, dict):
            raise ConfigError("failed to parse config: every document must be a mapping")
    return docs


def is_v1alpha1(doc: dict) -> bool:
    return doc.get("version") == "v1alpha1" and "kind" not in doc


def v1alpha1(docs: list[dict]) -> dict | None:
    for d in docs:
        if is_v1alpha1(d):
            return d
    return None


def machine_type(docs: list[dict]) -> str:
    v1 = v1alpha1(docs) or {}
    return (v1.get("machine") or {}).get("type", "worker")


def hostname(docs: list[dict]) -> str | None:
    for d in docs:
        if d.get("kind") == "HostnameConfig" and d.get("hostname"):
            return d["hostname"]
    v1 = v1alpha1(docs) or {}
    return ((v1.get("machine") or {}).get("network") or {}).get("hostname")


def _ip(cidr: str) -> str | None:
    try:
        return str(ipaddress.ip_interface(str(cidr)).ip)
    except ValueError:
        return None


def addresses(docs: list[dict]) -> list[str]:
    """Static addresses of the node, v1alpha1 interfaces first, then LinkConfig documents."""
    out: list[str] = []
    v1 = v1alpha1(docs) or {}
    for iface in ((v1.get("machine") or {}).get("network") or {}).get("interfaces") or []:
        for a in iface.get("addresses") or []:
            ip = _ip(a)
            if ip and ip not in out:
                out.append(ip)
    for d in docs:
        if d.get("kind") == "LinkConfig":
            for a in d.get("addresses") or []:
                ip = _ip(a.get("address") if isinstance(a, dict) else a)
                if ip and ip not in out:
                    out.append(ip)
    return out


def cert_sans(docs: list[dict]) -> list[str]:
    v1 = v1alpha1(docs) or {}
    return [str(s) for s in (v1.get("machine") or {}).get("certSANs") or []]


def needs_reboot(old: list[dict], new: list[dict]) -> bool:
    """A v1alpha1 change outside the immediately applicable paths needs a reboot; typed docs never do."""
    def strip(doc: dict | None) -> dict:
        doc = copy.deepcopy(doc or {})
        for k in NO_REBOOT_TOP:
            doc.pop(k, None)
        machine = doc.get("machine")
        if isinstance(machine, dict):
            for k in NO_REBOOT_MACHINE:
                machine.pop(k, None)
            features = machine.get("features")
            if isinstance(features, dict):
                for k in NO_REBOOT_MACHINE_FEATURES:
                    features.pop(k, None)
                if not features:
                    machine.pop("features")
        return doc
    return strip(v1alpha1(old)) != strip(v1alpha1(new))


def dump(docs: list[dict]) -> str:
    return "---\n".join(yaml.safe_dump(d, sort_keys=False) for d in docs)


def diff(old: bytes, new: bytes) -> str:
    """Unified diff of the normalised documents ('' when equal)."""
    a = dump(parse(old)).splitlines(keepends=True) if old else []
    b = dump(parse(new)).splitlines(keepends=True)
    return "".join(difflib.unified_diff(a, b, fromfile="a/config", tofile="b/config"))


def make_config(name: str, address: str, role: str, cluster_endpoint: str, prefix: int = 8,
                cluster_name: str = "tazlab") -> str:
    """A plausible `talosctl gen config` output for one node (v1alpha1 + a typed document)."""
    v1 = {
        "version": "v1alpha1",
        "debug": False,
        "persist": True,
        "machine": {
            "type": role,
            "token": "twin00.0123456789abcdef",
            "certSANs": [],
            "kubelet": {"image": "ghcr.io/siderolabs/kubelet:v1.34.1", "defaultRuntimeSeccompProfileEnabled": True},
            "network": {
                "hostname": name,
                "interfaces": [{"interface": "eth0", "addresses": [f"{address}/{prefix}"], "dhcp": False}],
            },
            "install": {"disk": "/dev/sda", "image": "ghcr.io/siderolabs/installer:v1.13.9", "wipe": False},
            "features": {"rbac": True, "kubePrism": {"enabled": True, "port": 7445}},
        },
        "cluster": {
            "clusterName": cluster_name,
            "controlPlane": {"endpoint": cluster_endpoint},
            "network": {"dnsDomain": "cluster.local", "podSubnets": ["10.244.0.0/16"],
                        "serviceSubnets": ["10.96.0.0/12"]},
        },
    }
    resolver = {"apiVersion": "v1alpha1", "kind": "ResolverConfig", "nameservers": [{"address": "1.1.1.1"}]}
    return dump([v1, resolver])
