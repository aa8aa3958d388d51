"""Structural type checks: what the apiserver's typed JSON decoding rejects with 400 BadRequest.

The store keeps plain dicts, so a string where Go has a list (``"ownerReferences": "x"``) would
otherwise get stored and break every later read. Each rule is a path (``[]`` = every list item,
``{}`` = every map value) and the Go type there.
"""

from __future__ import annotations

from typing import Any

STR, INT, BOOL, OBJ, LIST, NUM = "string", "int64", "bool", "object", "array", "number"

_META = {
    ("metadata",): OBJ,
    ("metadata", "name"): STR, ("metadata", "generateName"): STR, ("metadata", "namespace"): STR,
    ("metadata", "uid"): STR, ("metadata", "resourceVersion"): STR, ("metadata", "creationTimestamp"): STR,
    ("metadata", "deletionTimestamp"): STR, ("metadata", "generation"): INT,
    ("metadata", "deletionGracePeriodSeconds"): INT,
    ("metadata", "labels"): OBJ, ("metadata", "labels", "{}"): STR,
    ("metadata", "annotations"): OBJ, ("metadata", "annotations", "{}"): STR,
    ("metadata", "finalizers"): LIST, ("metadata", "finalizers", "[]"): STR,
    ("metadata", "ownerReferences"): LIST, ("metadata", "ownerReferences", "[]"): OBJ,
    ("metadata", "ownerReferences", "[]", "apiVersion"): STR, ("metadata", "ownerReferences", "[]", "kind"): STR,
    ("metadata", "ownerReferences", "[]", "name"): STR, ("metadata", "ownerReferences", "[]", "uid"): STR,
    ("metadata", "ownerReferences", "[]", "controller"): BOOL,
    ("metadata", "ownerReferences", "[]", "blockOwnerDeletion"): BOOL,
    ("apiVersion",): STR, ("kind",): STR,
}


def _pod_spec(prefix: tuple) -> dict:
    c = prefix + ("containers", "[]")
    rules = {
        prefix: OBJ, prefix + ("nodeName",): STR, prefix + ("containers",): LIST, c: OBJ,
        c + ("name",): STR, c + ("image",): STR, c + ("env",): LIST, c + ("env", "[]"): OBJ,
        c + ("env", "[]", "name"): STR, c + ("ports",): LIST, c + ("ports", "[]"): OBJ,
        c + ("ports", "[]", "containerPort"): INT, c + ("resources",): OBJ, c + ("volumeMounts",): LIST,
        c + ("volumeMounts", "[]"): OBJ, prefix + ("initContainers",): LIST, prefix + ("initContainers", "[]"): OBJ,
        prefix + ("volumes",): LIST, prefix + ("volumes", "[]"): OBJ, prefix + ("volumes", "[]", "name"): STR,
        prefix + ("tolerations",): LIST, prefix + ("tolerations", "[]"): OBJ,
        prefix + ("tolerations", "[]", "key"): STR, prefix + ("tolerations", "[]", "effect"): STR,
        prefix + ("tolerations", "[]", "tolerationSeconds"): INT,
        prefix + ("terminationGracePeriodSeconds",): INT, prefix + ("nodeSelector",): OBJ,
        prefix + ("nodeSelector", "{}"): STR, prefix + ("restartPolicy",): STR,
        prefix + ("readinessGates",): LIST, prefix + ("readinessGates", "[]"): OBJ,
        prefix + ("imagePullSecrets",): LIST, prefix + ("imagePullSecrets", "[]"): OBJ,
    }
    return rules


_CONDITIONS = {("status", "conditions"): LIST, ("status", "conditions", "[]"): OBJ,
               ("status", "conditions", "[]", "type"): STR, ("status", "conditions", "[]", "status"): STR}
_WORKLOAD = {("spec", "replicas"): INT, ("spec", "selector"): OBJ, ("spec", "selector", "matchLabels"): OBJ,
             ("spec", "selector", "matchLabels", "{}"): STR, ("spec", "template"): OBJ,
             ("spec", "template", "metadata"): OBJ, **_pod_spec(("spec", "template", "spec")),
             **{("status", f): INT for f in ("replicas", "readyReplicas", "availableReplicas", "updatedReplicas",
                                             "observedGeneration")}}

RULES: dict[str, dict] = {
    "pods": {**_pod_spec(("spec",)), ("status", "phase"): STR, ("status", "podIP"): STR,
             ("status", "containerStatuses"): LIST, ("status", "containerStatuses", "[]"): OBJ, **_CONDITIONS},
    "nodes": {("spec", "taints"): LIST, ("spec", "taints", "[]"): OBJ, ("spec", "taints", "[]", "key"): STR,
              ("spec", "taints", "[]", "value"): STR, ("spec", "taints", "[]", "effect"): STR,
              ("spec", "unschedulable"): BOOL, ("status", "addresses"): LIST, ("status", "addresses", "[]"): OBJ,
              ("status", "addresses", "[]", "address"): STR, **_CONDITIONS},
    "services": {("spec", "ports"): LIST, ("spec", "ports", "[]"): OBJ, ("spec", "ports", "[]", "port"): INT,
                 ("spec", "ports", "[]", "nodePort"): INT, ("spec", "clusterIP"): STR, ("spec", "type"): STR,
                 ("spec", "selector"): OBJ, ("spec", "selector", "{}"): STR},
    "endpoints": {("subsets",): LIST, ("subsets", "[]"): OBJ, ("subsets", "[]", "addresses"): LIST,
                  ("subsets", "[]", "addresses", "[]"): OBJ, ("subsets", "[]", "addresses", "[]", "ip"): STR,
                  ("subsets", "[]", "ports"): LIST, ("subsets", "[]", "ports", "[]"): OBJ,
                  ("subsets", "[]", "ports", "[]", "port"): INT},
    "endpointslices.discovery.k8s.io": {("endpoints",): LIST, ("endpoints", "[]"): OBJ,
                                        ("endpoints", "[]", "addresses"): LIST,
                                        ("endpoints", "[]", "addresses", "[]"): STR, ("ports",): LIST,
                                        ("ports", "[]"): OBJ, ("addressType",): STR},
    "configmaps": {("data",): OBJ, ("data", "{}"): STR, ("binaryData",): OBJ},
    "deployments.apps": _WORKLOAD, "replicasets.apps": _WORKLOAD, "statefulsets.apps": _WORKLOAD,
    "daemonsets.apps": _WORKLOAD,
    "volumeattachments.storage.k8s.io": {("spec", "attacher"): STR, ("spec", "nodeName"): STR,
                                         ("spec", "source"): OBJ, ("status", "attached"): BOOL},
    "poddisruptionbudgets.policy": {("spec", "selector"): OBJ, **{("status", f): INT for f in (
        "disruptionsAllowed", "currentHealthy", "desiredHealthy", "expectedPods", "observedGeneration")}},
    "leases.coordination.k8s.io": {("spec", "holderIdentity"): STR, ("spec", "leaseDurationSeconds"): INT},
}


def _jtype(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return "null"


def _ok(v: Any, t: str) -> bool:
    if v is None:
        return True  # null decodes to the zero value
    if t == STR:
        return isinstance(v, str)
    if t == INT:
        return isinstance(v, int) and not isinstance(v, bool)
    if t == BOOL:
        return isinstance(v, bool)
    if t == OBJ:
        return isinstance(v, dict)
    if t == LIST:
        return isinstance(v, list)
    return True


_GO = {STR: "string", INT: "int64", BOOL: "bool", OBJ: "struct", LIST: "slice"}


_TREES: dict[str, dict] = {}


def _tree(res_key: str) -> dict:
    t = _TREES.get(res_key)
    if t is None:
        rules = dict(_META)
        rules.update(RULES.get(res_key, {}))
        rules.setdefault(("spec",), OBJ)
        rules.setdefault(("status",), OBJ)
        t = {}
        for path, typ in rules.items():
            node = t
            for part in path:
                node = node.setdefault(part, {})
            node["__type__"] = typ
        _TREES[res_key] = t
    return t


class _Bad(Exception):
    pass


def check(res_key: str, kind: str, obj: Any) -> str | None:
    """None when ``obj`` decodes, else the decoder's error message."""
    if not isinstance(obj, dict):
        return f"json: cannot unmarshal {_jtype(obj)} into Go value of type {kind}"
    try:
        _visit(obj, _tree(res_key), "")
    except _Bad as exc:
        value, typ, where = exc.args
        return f"json: cannot unmarshal {_jtype(value)} into Go struct field {kind}.{where} of type {_GO.get(typ, typ)}"
    return None


def _visit(cur: Any, node: dict, where: str) -> None:
    for key, child in node.items():
        if key == "__type__":
            continue
        if key == "[]":
            if isinstance(cur, list):
                for i, item in enumerate(cur):
                    _check_one(item, child, f"{where}[{i}]")
        elif key == "{}":
            if isinstance(cur, dict):
                for k, item in cur.items():
                    _check_one(item, child, f"{where}.{k}" if where else k)
        elif isinstance(cur, dict) and key in cur:
            _check_one(cur[key], child, f"{where}.{key}" if where else key)


def _check_one(value: Any, node: dict, where: str) -> None:
    typ = node.get("__type__")
    if typ is not None and not _ok(value, typ):
        raise _Bad(value, typ, where)
    if len(node) > (1 if typ is not None else 0):
        _visit(value, node, where)
