"""The twin's reading of Talos machine configuration (multi-document YAML), as machined reads it.

Written from the upstream behaviour (../shared/reference/talos.md, "Machine config"), on purpose without
anything from the collection: the twin is the judge of what a client sends, so it must not share a
client's reading of Talos.

* YAML is YAML 1.2 to Talos (Go's yaml.v3): a plain ``on``/``yes``/``no`` is a string. PyYAML resolves
  YAML 1.1, so :func:`parse` builds the values itself from the composed node tree.
* The no-reboot judgement is Talos' ``Runtime.CanApplyImmediate`` (v1.9 .. v1.13): the live-applicable
  fields of the running config are copied into the new one, then the two v1alpha1 documents must be
  equal. v1.14 dropped the function; every change applies in place there.
"""

from __future__ import annotations

import copy
import difflib
import ipaddress
import math
import re

import yaml


class ConfigError(ValueError):
    pass


# -- YAML 1.2 core schema --------------------------------------------------------------------------
_CORE_NULL = {"", "~", "null", "Null", "NULL"}
_CORE_TRUE = {"true", "True", "TRUE"}
_CORE_FALSE = {"false", "False", "FALSE"}
_CORE_INT = re.compile(r"[-+]?[0-9]+")
_CORE_OCT = re.compile(r"0o[0-7]+")
_CORE_HEX = re.compile(r"0x[0-9a-fA-F]+")
_CORE_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_PLAIN = "!plain"   # what an untagged plain scalar composes to with the loader below


class _Composer(yaml.SafeLoader):
    """Composes only: no YAML 1.1 implicit typing, untagged plain scalars keep the marker tag."""

    yaml_implicit_resolvers: dict = {}
    DEFAULT_SCALAR_TAG = _PLAIN


_EXPLICIT = {"tag:yaml.org,2002:str": str, "tag:yaml.org,2002:int": int, "tag:yaml.org,2002:float": float}


def _scalar(node: yaml.ScalarNode):
    text = node.value
    if node.tag in _EXPLICIT:
        try:
            return _EXPLICIT[node.tag](text)
        except ValueError as exc:
            raise ConfigError(f"failed to parse config: {exc}") from None
    if node.tag != _PLAIN or node.style:
        return text                    # quoted or block scalars (and unknown tags) are strings
    if text in _CORE_NULL:
        return None
    if text in _CORE_TRUE:
        return True
    if text in _CORE_FALSE:
        return False
    if _CORE_INT.fullmatch(text):
        return int(text, 10)
    if _CORE_OCT.fullmatch(text):
        return int(text[2:], 8)
    if _CORE_HEX.fullmatch(text):
        return int(text[2:], 16)
    if _CORE_FLOAT.fullmatch(text):
        return float(text)
    low = text.lower()
    if low in (".inf", "+.inf"):
        return math.inf
    if low == "-.inf":
        return -math.inf
    if low == ".nan":
        return math.nan
    return text


def _build(node):
    if isinstance(node, yaml.ScalarNode):
        return _scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return [_build(item) for item in node.value]
    if isinstance(node, yaml.MappingNode):
        out = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise ConfigError("failed to parse config: YAML merge keys are not supported")
            key = _build(key_node)
            if isinstance(key, (dict, list)):
                raise ConfigError("failed to parse config: a mapping key must be a scalar")
            out[key] = _build(value_node)
        return out
    raise ConfigError(f"failed to parse config: unexpected YAML node {type(node).__name__}")


def parse(data: bytes | str) -> list[dict]:
    """The documents of a machine config (empty documents dropped), scalars resolved as YAML 1.2."""
    if isinstance(data, bytes):
        data = data.decode("utf-8")
    docs = []
    try:
        for root in yaml.compose_all(data, Loader=_Composer):
            if root is None:
                continue
            value = _build(root)
            if value is None:
                continue
            if not isinstance(value, dict):
                raise ConfigError("failed to parse config: every document must be a mapping")
            docs.append(value)
    except yaml.YAMLError as exc:
        raise ConfigError(f"failed to parse config: {exc}") from exc
    return docs


def dump(docs: list[dict]) -> str:
    # safe_dump quotes the strings a YAML 1.1 reader would take for booleans, so 'on' stays a string.
    return "---\n".join(yaml.safe_dump(d, sort_keys=False) for d in docs)


# -- documents -------------------------------------------------------------------------------------
def is_v1alpha1(doc: dict) -> bool:
    return doc.get("version") == "v1alpha1" and "kind" not in doc


def v1alpha1(docs: list[dict]) -> dict | None:
    return next((d for d in docs if is_v1alpha1(d)), None)


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


# -- CanApplyImmediate -----------------------------------------------------------------------------
# Dotted paths machined copies from the running config before it compares (talos.md lists them).
LIVE_PATHS = [
    "debug", "cluster",
    *("machine." + f for f in (
        "ca", "acceptedCAs", "time", "certSANs", "install", "network", "sysfs", "sysctls", "logging",
        "controlPlane", "kubelet", "kernel", "registries", "pods", "seccompProfiles", "nodeAnnotations",
        "nodeLabels", "nodeTaints")),
]
# Copied only when both configs carry a machine.features block.
LIVE_FEATURE_PATHS = ["machine.features." + f for f in (
    "kubernetesTalosAPIAccess", "kubePrism", "hostDNS", "imageCache", "nodeAddressSortAlgorithm")]
_NOT_FOUND = object()


def _get(tree, dotted: str):
    for part in dotted.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return _NOT_FOUND
        tree = tree[part]
    return tree


def _put(tree: dict, dotted: str, value) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        nxt = tree.get(part)
        if not isinstance(nxt, dict):
            return          # the parent struct is absent on the new side: nothing to copy into (a nil pointer)
        tree = nxt
    if value is _NOT_FOUND:
        tree.pop(leaf, None)
    else:
        tree[leaf] = copy.deepcopy(value)


def _go_equal_form(value):
    """Absent, null and empty compare equal in Go structs: drop them before comparing."""
    if isinstance(value, dict):
        kept = {k: _go_equal_form(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v is not None and v != {} and v != []}
    if isinstance(value, list):
        return [_go_equal_form(v) for v in value]
    return value


def version_tuple(tag: str) -> tuple[int, int, int]:
    nums = re.findall(r"\d+", str(tag or ""))[:3]
    while len(nums) < 3:
        nums.append("0")
    return tuple(int(n) for n in nums)  # type: ignore[return-value]


def has_immediate_check(version: str) -> bool:
    """Talos up to 1.13 judges changes with CanApplyImmediate; 1.14 removed it."""
    return version_tuple(version)[:2] < (1, 14)


def needs_reboot(old: list[dict], new: list[dict], version: str = "v1.13.9") -> bool:
    """Would machined refuse this change in immediate mode? Typed documents never count."""
    if not has_immediate_check(version):
        return False
    running, wanted = v1alpha1(old) or {}, copy.deepcopy(v1alpha1(new) or {})
    for path in LIVE_PATHS:
        _put(wanted, path, _get(running, path))
    if isinstance(_get(running, "machine.features"), dict) and isinstance(_get(wanted, "machine.features"), dict):
        for path in LIVE_FEATURE_PATHS:
            _put(wanted, path, _get(running, path))
    return _go_equal_form(wanted) != _go_equal_form(running)


def diff(old: bytes, new: bytes) -> str:
    """Unified diff of the normalised documents ('' when equal)."""
    before = dump(parse(old)).splitlines(keepends=True) if old else []
    after = dump(parse(new)).splitlines(keepends=True)
    return "".join(difflib.unified_diff(before, after, fromfile="a/config", tofile="b/config"))


def make_config(name: str, address: str, role: str, cluster_endpoint: str, prefix: int = 8,
                cluster_name: str = "tazlab", version: str = "v1.13.9") -> str:
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
            "install": {"disk": "/dev/sda", "image": f"ghcr.io/siderolabs/installer:{version}", "wipe": False},
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
