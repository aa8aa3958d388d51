"""Legacy discovery documents (/api, /apis, /api/v1, /apis/<group>[/<version>]) from the resource table.

Shapes as a real apiserver serves them with ``Accept: application/json`` (kubectl 1.32 asks for the
aggregated ``apidiscovery.k8s.io`` documents first and falls back to these).
"""

from __future__ import annotations

import hashlib
from typing import Any

from .resources import GROUP_ORDER, GROUPS, Resource


def _hash(r: Resource) -> str:
    import base64

    return base64.b64encode(hashlib.sha256(f"{r.group}/{r.version}/{r.kind}".encode()).digest()[:8]).decode()


def api_resource(r: Resource) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    main: dict[str, Any] = {"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
                            "kind": r.kind, "verbs": list(r.verbs)}
    if r.short_names:
        main["shortNames"] = list(r.short_names)
    if r.categories:
        main["categories"] = list(r.categories)
    main["storageVersionHash"] = _hash(r)
    out.append(main)
    for sub, info in sorted(r.subresources.items()):
        entry: dict[str, Any] = {"name": f"{r.plural}/{sub}", "singularName": "", "namespaced": r.namespaced}
        if "group" in info:
            entry["group"] = info["group"]
            entry["version"] = info["version"]
        entry["kind"] = info["kind"]
        entry["verbs"] = list(info["verbs"])
        out.append(entry)
    return out


def resource_list(group: str, version: str) -> dict | None:
    resources = GROUPS.get(group, {}).get(version)
    if resources is None:
        return None
    items: list[dict] = []
    for r in sorted(resources, key=lambda x: x.plural):
        items.extend(api_resource(r))
    gv = version if not group else f"{group}/{version}"
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": items}


def api_versions(server_address: str) -> dict:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]}


def _group_doc(group: str) -> dict:
    versions = sorted(GROUPS[group])  # v1 sorts before v1beta2
    vs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": vs, "preferredVersion": vs[0]}


def group_list() -> dict:
    names = [g for g in GROUP_ORDER if g and g in GROUPS] + sorted(g for g in GROUPS if g and g not in GROUP_ORDER)
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [_group_doc(g) for g in names]}


def api_group(group: str) -> dict | None:
    if not group or group not in GROUPS:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_doc(group)}


# -- aggregated discovery (apidiscovery.k8s.io/v2, served since 1.30; kubectl 1.32 asks for it first) ------

AGGREGATED_CT = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


def wants_aggregated(accept: str) -> str | None:
    """The apidiscovery version the Accept header asks for first (v2 or v2beta1), or None."""
    for part in accept.split(","):
        params = [x.strip() for x in part.split(";")]
        kv = dict(x.split("=", 1) for x in params[1:] if "=" in x)
        if params[0] == "application/json" and kv.get("g") == "apidiscovery.k8s.io" and \
                kv.get("as") == "APIGroupDiscoveryList" and kv.get("v") in ("v2", "v2beta1"):
            return kv["v"]
        if params[0] in ("application/json", "*/*") and "as" not in kv:
            return None
    return None


def _resource_discovery(r: Resource) -> dict:
    d: dict[str, Any] = {"resource": r.plural,
                         "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
                         "scope": "Namespaced" if r.namespaced else "Cluster",
                         "singularResource": r.singular, "verbs": list(r.verbs)}
    if r.short_names:
        d["shortNames"] = list(r.short_names)
    if r.categories:
        d["categories"] = list(r.categories)
    subs = []
    for sub, info in sorted(r.subresources.items()):
        subs.append({"subresource": sub,
                     "responseKind": {"group": info.get("group", r.group), "version": info.get("version", r.version),
                                      "kind": info["kind"]},
                     "verbs": list(info["verbs"])})
    if subs:
        d["subresources"] = subs
    return d


def aggregated(core: bool, version: str = "v2") -> dict:
    """/api (core=True) or /apis as an APIGroupDiscoveryList."""
    if core:
        names = [""]
    else:
        names = [g for g in GROUP_ORDER if g and g in GROUPS] + sorted(g for g in GROUPS if g and g not in GROUP_ORDER)
    items = []
    for g in names:
        versions = []
        for v in sorted(GROUPS[g]):
            versions.append({"version": v, "freshness": "Current",
                             "resources": [_resource_discovery(r) for r in sorted(GROUPS[g][v], key=lambda x: x.plural)]})
        item: dict[str, Any] = {"metadata": {"name": g} if g else {}, "versions": versions}
        items.append(item)
    return {"kind": "APIGroupDiscoveryList", "apiVersion": f"apidiscovery.k8s.io/{version}", "metadata": {},
            "items": items}
