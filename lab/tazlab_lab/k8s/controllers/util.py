"""Helpers shared by the twin's controllers: time, selectors, taints and tolerations, names, events.

Everything here mirrors a piece of upstream Kubernetes (named in each docstring) so the controllers
built on it read like their upstream counterparts.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import random
from typing import Any, Iterable

# -- well-known keys ---------------------------------------------------------------------------
TAINT_UNREACHABLE = "node.kubernetes.io/unreachable"
TAINT_NOT_READY = "node.kubernetes.io/not-ready"
TAINT_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
TAINT_OUT_OF_SERVICE = "node.kubernetes.io/out-of-service"
TAINT_DISK_PRESSURE = "node.kubernetes.io/disk-pressure"
TAINT_MEMORY_PRESSURE = "node.kubernetes.io/memory-pressure"
TAINT_PID_PRESSURE = "node.kubernetes.io/pid-pressure"
TAINT_NETWORK_UNAVAILABLE = "node.kubernetes.io/network-unavailable"

LONGHORN_DRIVER = "driver.longhorn.io"
LONGHORN_NS = "longhorn-system"

HOSTNAME_LABEL = "kubernetes.io/hostname"


# -- time --------------------------------------------------------------------------------------
def iso(ts: float) -> str:
    return _dt.datetime.fromtimestamp(ts, tz=_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_iso(ts: float) -> str:
    return _dt.datetime.fromtimestamp(ts, tz=_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_ts(value: str | None) -> float | None:
    """RFC 3339 (seconds or microseconds, Z or offset) -> epoch seconds."""
    if not value:
        return None
    v = value.replace("Z", "+00:00")
    return _dt.datetime.fromisoformat(v).timestamp()


# -- metadata ----------------------------------------------------------------------------------
def key_of(obj: dict) -> tuple[str | None, str]:
    md = obj.get("metadata") or {}
    return md.get("namespace"), md["name"]


def controller_ref(obj: dict) -> dict | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def owner_ref(owner: dict, kind: str, api_version: str) -> dict:
    return {"apiVersion": api_version, "kind": kind, "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


class NameGen:
    """Deterministic random suffixes (the apiserver's generateName uses 5 of these characters)."""

    ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

    def __init__(self, seed: int = 1):
        self._rng = random.Random(seed)

    def suffix(self, n: int = 5) -> str:
        return "".join(self._rng.choice(self.ALPHABET) for _ in range(n))

    def hex(self, n: int = 16) -> str:
        return "".join(self._rng.choice("0123456789abcdef") for _ in range(n))

    def uid(self) -> str:
        h = self.hex(32)
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def safe_encode(s: str) -> str:
    """k8s.io/apimachinery/pkg/util/rand.SafeEncodeString: no vowels, no confusable digits."""
    alphanums = "bcdfghjklmnpqrstvwxz2456789"
    return "".join(alphanums[ord(c) % len(alphanums)] for c in s)


def template_hash(template: dict, collision_count: int = 0) -> str:
    """pkg/controller.ComputeHash: fnv32a over the template (+ collisionCount), SafeEncodeString."""
    data = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    if collision_count:
        data += str(collision_count).encode()
    return safe_encode(str(fnv32a(data)))


def va_name(volume_handle: str, driver: str, node: str) -> str:
    """The CSI VolumeAttachment name: csi-<hex sha256(volumeHandle + driver + node)>."""
    return "csi-" + hashlib.sha256((volume_handle + driver + node).encode()).hexdigest()


def finalizer_for_driver(driver: str) -> str:
    """external-attacher's finalizer: external-attacher/<driver with non-alphanumerics as '-'>."""
    return "external-attacher/" + "".join(c if c.isalnum() else "-" for c in driver)


# -- label selectors (metav1.LabelSelector) ----------------------------------------------------
def selector_matches(selector: dict | None, labels: dict | None) -> bool:
    if selector is None:
        return False
    labels = labels or {}
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        if not _expr_matches(expr, labels):
            return False
    return True


def _expr_matches(expr: dict, labels: dict) -> bool:
    op, key, values = expr.get("operator"), expr.get("key"), expr.get("values") or []
    if op == "In":
        return key in labels and labels[key] in values
    if op == "NotIn":
        return key not in labels or labels[key] not in values
    if op == "Exists":
        return key in labels
    if op == "DoesNotExist":
        return key not in labels
    if op in ("Gt", "Lt"):
        if key not in labels:
            return False
        try:
            a, b = int(labels[key]), int(values[0])
        except (ValueError, IndexError):
            return False
        return a > b if op == "Gt" else a < b
    return False


def selector_string(selector: dict) -> str:
    """metav1.LabelSelector -> the API's label selector string (for store.list)."""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for e in selector.get("matchExpressions") or []:
        op = e["operator"]
        if op == "In":
            parts.append(f"{e['key']} in ({','.join(e['values'])})")
        elif op == "NotIn":
            parts.append(f"{e['key']} notin ({','.join(e['values'])})")
        elif op == "Exists":
            parts.append(e["key"])
        elif op == "DoesNotExist":
            parts.append("!" + e["key"])
    return ",".join(parts)


# -- taints and tolerations (k8s.io/api/core/v1 toleration.go) --------------------------------
def toleration_tolerates(tol: dict, taint: dict) -> bool:
    if tol.get("effect") and tol.get("effect") != taint.get("effect"):
        return False
    key = tol.get("key") or ""
    if key and key != taint.get("key"):
        return False
    op = tol.get("operator") or "Equal"
    if op == "Exists":
        return True
    if op == "Equal":
        if not key:  # empty key with Equal matches nothing (validation forbids it)
            return False
        return (tol.get("value") or "") == (taint.get("value") or "")
    return False


def tolerates(tolerations: Iterable[dict] | None, taint: dict) -> bool:
    return any(toleration_tolerates(t, taint) for t in tolerations or [])


def untolerated(tolerations: Iterable[dict] | None, taints: Iterable[dict] | None,
                effects: tuple[str, ...]) -> list[dict]:
    tolerations = list(tolerations or [])
    return [t for t in taints or [] if t.get("effect") in effects and not tolerates(tolerations, t)]


def has_taint(node: dict, key: str, effect: str | None = None) -> bool:
    for t in (node.get("spec") or {}).get("taints") or []:
        if t.get("key") == key and (effect is None or t.get("effect") == effect):
            return True
    return False


# -- node and pod helpers ----------------------------------------------------------------------
def node_condition(node: dict, ctype: str = "Ready") -> dict | None:
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return c
    return None


def node_ready(node: dict | None) -> bool:
    if not node:
        return False
    c = node_condition(node, "Ready")
    return bool(c and c.get("status") == "True")


def pod_condition(pod: dict, ctype: str) -> dict | None:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return c
    return None


def pod_ready(pod: dict) -> bool:
    c = pod_condition(pod, "Ready")
    return bool(c and c.get("status") == "True")


def pod_terminating(pod: dict) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def pod_phase(pod: dict) -> str:
    return (pod.get("status") or {}).get("phase") or "Pending"


def pod_active(pod: dict) -> bool:
    """controller.IsPodActive: not terminal and not being deleted."""
    return pod_phase(pod) not in ("Succeeded", "Failed") and not pod_terminating(pod)


def pod_terminated_for_volumes(pod: dict) -> bool:
    """volumeutil.IsPodTerminated: terminal phase, or deleting with no container running."""
    if pod_phase(pod) in ("Succeeded", "Failed"):
        return True
    if not pod_terminating(pod):
        return False
    st = pod.get("status") or {}
    for cs in (st.get("initContainerStatuses") or []) + (st.get("containerStatuses") or []):
        state = cs.get("state") or {}
        if "running" in state:
            return False
    return True


def pod_pvc_names(pod: dict) -> list[str]:
    out = []
    for v in (pod.get("spec") or {}).get("volumes") or []:
        pvc = v.get("persistentVolumeClaim")
        if pvc and pvc.get("claimName"):
            out.append(pvc["claimName"])
    return out


def deep_merge_missing(dst: dict, src: dict) -> dict:
    for k, v in src.items():
        if k not in dst:
            dst[k] = v
        elif isinstance(dst[k], dict) and isinstance(v, dict):
            deep_merge_missing(dst[k], v)
    return dst
