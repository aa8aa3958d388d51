"""Server-side printing: the ``meta.k8s.io/v1`` Table that ``kubectl get`` asks for (``Accept: ...;as=Table``).

Columns and cell rules follow ``pkg/printers/internalversion/printers.go`` (built-in types) and the
CustomResourceDefinition ``additionalPrinterColumns`` (custom resources); types without a printer get
the default convertor's ``Name``/``Created At``. Ages are measured on the simulated clock, so
``kubectl get pods`` reads like the incident's timeline.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, Callable

from .resources import Resource

NAME_DESC = ("Name must be unique within a namespace. Is required when creating resources, although some resources "
             "may allow a client to request the generation of an appropriate name automatically. Name is primarily "
             "intended for creation idempotence and configuration definition. Cannot be updated. More info: "
             "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names")
AGE_DESC = ("CreationTimestamp is a timestamp representing the server time when this object was created. It is not "
            "guaranteed to be set in happens-before order across separate operations. Clients may not set this "
            "value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for "
            "lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md"
            "#metadata")


def _parse_ts(ts: str | None) -> float | None:
    if not ts:
        return None
    try:
        return _dt.datetime.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=_dt.timezone.utc).timestamp()
    except ValueError:
        return None


def human_duration(seconds: float) -> str:
    """k8s.io/apimachinery/pkg/util/duration.HumanDuration."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        sec = s % 60
        return f"{minutes}m" if sec == 0 else f"{minutes}m{sec}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if dy == 0 else f"{hours // 24 // 365}y{dy}d"
    return f"{hours // 24 // 365}y"


def _col(name: str, typ: str = "string", priority: int = 0, fmt: str = "", desc: str = "") -> dict:
    return {"name": name, "type": typ, "format": fmt, "description": desc or name, "priority": priority}


NAME = _col("Name", fmt="name", desc=NAME_DESC)
AGE = _col("Age", desc=AGE_DESC)


def _g(obj: Any, *path: Any, default: Any = None) -> Any:
    cur = obj
    for p in path:
        if isinstance(cur, dict):
            cur = cur.get(p)
        elif isinstance(cur, list) and isinstance(p, int) and -len(cur) <= p < len(cur):
            cur = cur[p]
        else:
            return default
        if cur is None:
            return default
    return cur


class Printer:
    def __init__(self, now: float):
        self.now = now

    def age(self, obj: dict) -> str:
        ts = _parse_ts(_g(obj, "metadata", "creationTimestamp"))
        return "<unknown>" if ts is None else human_duration(self.now - ts)

    def since(self, ts: str | None) -> str:
        t = _parse_ts(ts)
        return "<unknown>" if t is None else human_duration(self.now - t)


def _containers(spec: dict) -> tuple[str, str]:
    cs = spec.get("containers") or []
    return ",".join(c.get("name", "") for c in cs), ",".join(c.get("image", "") for c in cs)


def _selector(sel: dict | None) -> str:
    if not sel:
        return "<none>"
    parts = [f"{k}={v}" for k, v in sorted((sel.get("matchLabels") or {}).items())]
    for e in sel.get("matchExpressions") or []:
        op = e.get("operator")
        vals = ",".join(e.get("values") or [])
        if op == "In":
            parts.append(f"{e.get('key')} in ({vals})")
        elif op == "NotIn":
            parts.append(f"{e.get('key')} notin ({vals})")
        elif op == "Exists":
            parts.append(e.get("key"))
        elif op == "DoesNotExist":
            parts.append("!" + e.get("key"))
    return ",".join(parts) or "<none>"


# -- built-in printers: (columns, row function) --------------------------------------------------

def _pod_row(p: Printer, o: dict) -> list:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    total = len(spec.get("containers") or [])
    statuses = st.get("containerStatuses") or []
    ready = sum(1 for c in statuses if c.get("ready"))
    restarts = sum(int(c.get("restartCount") or 0) for c in statuses)
    reason = st.get("reason") or st.get("phase") or ""
    initializing = False
    for i, c in enumerate(st.get("initContainerStatuses") or []):
        term = _g(c, "state", "terminated")
        if term and term.get("exitCode") == 0:
            continue
        initializing = True
        if term:
            reason = "Init:" + (term.get("reason") or f"ExitCode:{term.get('exitCode')}")
        elif _g(c, "state", "waiting", "reason") and _g(c, "state", "waiting", "reason") != "PodInitializing":
            reason = "Init:" + _g(c, "state", "waiting", "reason")
        else:
            reason = f"Init:{i}/{len(spec.get('initContainers') or [])}"
        break
    if not initializing:
        has_running = False
        for c in reversed(statuses):
            waiting, term = _g(c, "state", "waiting"), _g(c, "state", "terminated")
            if waiting and waiting.get("reason"):
                reason = waiting["reason"]
            elif term and term.get("reason"):
                reason = term["reason"]
            elif term:
                reason = f"Signal:{term['signal']}" if term.get("signal") else f"ExitCode:{term.get('exitCode')}"
            elif _g(c, "state", "running") and c.get("ready"):
                has_running = True
        if reason == "Completed" and has_running:
            reason = "Running"
    if _g(o, "metadata", "deletionTimestamp"):
        reason = "Unknown" if st.get("reason") == "NodeLost" else "Terminating"
    gates = spec.get("readinessGates") or []
    gates_cell = "<none>"
    if gates:
        conds = {c.get("type"): c.get("status") for c in st.get("conditions") or []}
        gates_cell = f"{sum(1 for g in gates if conds.get(g.get('conditionType')) == 'True')}/{len(gates)}"
    return [o["metadata"]["name"], f"{ready}/{total}", reason, restarts, p.age(o),
            st.get("podIP") or "<none>", spec.get("nodeName") or "<none>", st.get("nominatedNodeName") or "<none>",
            gates_cell]


def _node_row(p: Printer, o: dict) -> list:
    st, spec, meta = o.get("status") or {}, o.get("spec") or {}, o["metadata"]
    ready = next((c.get("status") for c in st.get("conditions") or [] if c.get("type") == "Ready"), None)
    status = {"True": "Ready", "False": "NotReady"}.get(ready, "Unknown")
    if spec.get("unschedulable"):
        status += ",SchedulingDisabled"
    roles = sorted(k.split("/", 1)[1] for k in (meta.get("labels") or {})
                   if k.startswith("node-role.kubernetes.io/") and k.split("/", 1)[1])
    if (meta.get("labels") or {}).get("kubernetes.io/role"):
        roles.append(meta["labels"]["kubernetes.io/role"])
    addrs = {a.get("type"): a.get("address") for a in st.get("addresses") or []}
    info = st.get("nodeInfo") or {}
    return [meta["name"], status, ",".join(roles) or "<none>", p.age(o), info.get("kubeletVersion", ""),
            addrs.get("InternalIP", "<none>"), addrs.get("ExternalIP", "<none>"), info.get("osImage", "<unknown>"),
            info.get("kernelVersion", "<unknown>"), info.get("containerRuntimeVersion", "<unknown>")]


def _ports(ports: list) -> str:
    out = []
    for x in ports or []:
        s = str(x.get("port"))
        if x.get("nodePort"):
            s += f":{x['nodePort']}"
        out.append(f"{s}/{x.get('protocol', 'TCP')}")
    return ",".join(out) or "<none>"


def _svc_row(p: Printer, o: dict) -> list:
    spec = o.get("spec") or {}
    ext = ",".join(i.get("ip") or i.get("hostname") or "" for i in _g(o, "status", "loadBalancer", "ingress",
                                                                           default=[]))
    if spec.get("type") == "LoadBalancer" and not ext:
        ext = "<pending>"
    return [o["metadata"]["name"], spec.get("type", "ClusterIP"), spec.get("clusterIP") or "<none>",
            ext or ",".join(spec.get("externalIPs") or []) or "<none>", _ports(spec.get("ports")), p.age(o),
            ",".join(f"{k}={v}" for k, v in sorted((spec.get("selector") or {}).items())) or "<none>"]


def _ep_row(p: Printer, o: dict) -> list:
    eps = []
    for s in o.get("subsets") or []:
        ports = [x.get("port") for x in s.get("ports") or []] or [None]
        for a in s.get("addresses") or []:
            for port in ports:
                eps.append(f"{a.get('ip')}:{port}" if port else a.get("ip"))
    cell = ",".join(eps[:3]) + (f" + {len(eps) - 3} more..." if len(eps) > 3 else "")
    return [o["metadata"]["name"], cell or "<none>", p.age(o)]


def _eps_row(p: Printer, o: dict) -> list:
    addrs = [a for e in o.get("endpoints") or [] for a in e.get("addresses") or []]
    ports = ",".join(str(x.get("port")) for x in o.get("ports") or []) or "<unset>"
    cell = ",".join(addrs[:3]) + (f" + {len(addrs) - 3} more..." if len(addrs) > 3 else "")
    return [o["metadata"]["name"], o.get("addressType", ""), ports, cell or "<unset>", p.age(o)]


def _deploy_row(p: Printer, o: dict) -> list:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    names, images = _containers(_g(spec, "template", "spec", default={}))
    return [o["metadata"]["name"], f"{st.get('readyReplicas', 0)}/{spec.get('replicas', 0)}",
            st.get("updatedReplicas", 0), st.get("availableReplicas", 0), p.age(o), names, images,
            _selector(spec.get("selector"))]


def _rs_row(p: Printer, o: dict) -> list:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    names, images = _containers(_g(spec, "template", "spec", default={}))
    return [o["metadata"]["name"], spec.get("replicas", 0), st.get("replicas", 0), st.get("readyReplicas", 0),
            p.age(o), names, images, _selector(spec.get("selector"))]


def _sts_row(p: Printer, o: dict) -> list:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    names, images = _containers(_g(spec, "template", "spec", default={}))
    return [o["metadata"]["name"], f"{st.get('readyReplicas', 0)}/{spec.get('replicas', 0)}", p.age(o), names,
            images]


def _ds_row(p: Printer, o: dict) -> list:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    names, images = _containers(_g(spec, "template", "spec", default={}))
    ns = _g(spec, "template", "spec", "nodeSelector", default={})
    return [o["metadata"]["name"], st.get("desiredNumberScheduled", 0), st.get("currentNumberScheduled", 0),
            st.get("numberReady", 0), st.get("updatedNumberScheduled", 0), st.get("numberAvailable", 0),
            ",".join(f"{k}={v}" for k, v in sorted(ns.items())) or "<none>", p.age(o), names, images,
            _selector(spec.get("selector"))]


def _ns_row(p: Printer, o: dict) -> list:
    return [o["metadata"]["name"], _g(o, "status", "phase", default=""), p.age(o)]


def _va_row(p: Printer, o: dict) -> list:
    spec = o.get("spec") or {}
    return [o["metadata"]["name"], spec.get("attacher", ""), _g(spec, "source", "persistentVolumeName", default=""),
            spec.get("nodeName", ""), bool(_g(o, "status", "attached", default=False)), p.age(o)]


def _sc_row(p: Printer, o: dict) -> list:
    name = o["metadata"]["name"]
    if (o["metadata"].get("annotations") or {}).get("storageclass.kubernetes.io/is-default-class") == "true":
        name += " (default)"
    return [name, o.get("provisioner", ""), o.get("reclaimPolicy", "Delete"),
            o.get("volumeBindingMode", "Immediate"), bool(o.get("allowVolumeExpansion", False)), p.age(o)]


def _csid_row(p: Printer, o: dict) -> list:
    spec = o.get("spec") or {}
    return [o["metadata"]["name"], bool(spec.get("attachRequired", True)), bool(spec.get("podInfoOnMount", False)),
            bool(spec.get("storageCapacity", False)), "<unset>" if not spec.get("tokenRequests") else
            ",".join(t.get("audience", "") for t in spec["tokenRequests"]), bool(spec.get("requiresRepublish", False)),
            ",".join(spec.get("volumeLifecycleModes") or []) or "<none>", p.age(o)]


def _lease_row(p: Printer, o: dict) -> list:
    return [o["metadata"]["name"], _g(o, "spec", "holderIdentity", default="<unknown>"), p.age(o)]


def _pdb_row(p: Printer, o: dict) -> list:
    spec = o.get("spec") or {}
    return [o["metadata"]["name"], str(spec["minAvailable"]) if "minAvailable" in spec else "N/A",
            str(spec["maxUnavailable"]) if "maxUnavailable" in spec else "N/A",
            _g(o, "status", "disruptionsAllowed", default=0), p.age(o)]


def _cm_row(p: Printer, o: dict) -> list:
    return [o["metadata"]["name"], len(o.get("data") or {}) + len(o.get("binaryData") or {}), p.age(o)]


def _pv_row(p: Printer, o: dict) -> list:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    claim = spec.get("claimRef") or {}
    modes = _access_modes(spec.get("accessModes"))
    return [o["metadata"]["name"], _g(spec, "capacity", "storage", default=""), modes,
            spec.get("persistentVolumeReclaimPolicy", "Retain"), st.get("phase", ""),
            f"{claim.get('namespace')}/{claim.get('name')}" if claim else "", spec.get("storageClassName", ""),
            spec.get("volumeAttributesClassName") or "<unset>", st.get("reason", ""), p.age(o)]


def _access_modes(modes: list | None) -> str:
    short = {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX", "ReadWriteOncePod": "RWOP"}
    return ",".join(short.get(m, m) for m in modes or [])


def _pvc_row(p: Printer, o: dict) -> list:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    phase = st.get("phase", "")
    if _g(o, "metadata", "deletionTimestamp"):
        phase = "Terminating"
    return [o["metadata"]["name"], phase, spec.get("volumeName", ""), _g(st, "capacity", "storage", default=""),
            _access_modes(st.get("accessModes")), spec.get("storageClassName", ""),
            spec.get("volumeAttributesClassName") or "<unset>", p.age(o), "Filesystem" if spec.get("volumeMode")
            in (None, "Filesystem") else spec["volumeMode"]]


def _event_row(p: Printer, o: dict) -> list:
    inv = o.get("involvedObject") or {}
    last = o.get("lastTimestamp") or o.get("eventTime") or _g(o, "metadata", "creationTimestamp")
    return [p.since(last), o.get("type", ""), o.get("reason", ""),
            f"{(inv.get('kind') or '').lower()}/{inv.get('name', '')}", o.get("message", "").strip()]


def _sa_row(p: Printer, o: dict) -> list:
    return [o["metadata"]["name"], len(o.get("secrets") or []), p.age(o)]


def _secret_row(p: Printer, o: dict) -> list:
    return [o["metadata"]["name"], o.get("type", "Opaque"), len(o.get("data") or {}), p.age(o)]


def _crd_row(p: Printer, o: dict) -> list:
    return [o["metadata"]["name"], _g(o, "metadata", "creationTimestamp", default="")]


C = _col
PRINTERS: dict[str, tuple[list[dict], Callable[[Printer, dict], list]]] = {
    "pods": ([NAME, C("Ready"), C("Status"), C("Restarts", "string"), AGE, C("IP", priority=1),
              C("Node", priority=1), C("Nominated Node", priority=1), C("Readiness Gates", priority=1)], _pod_row),
    "nodes": ([NAME, C("Status"), C("Roles"), AGE, C("Version"), C("Internal-IP", priority=1),
               C("External-IP", priority=1), C("OS-Image", priority=1), C("Kernel-Version", priority=1),
               C("Container-Runtime", priority=1)], _node_row),
    "namespaces": ([NAME, C("Status"), AGE], _ns_row),
    "services": ([NAME, C("Type"), C("Cluster-IP"), C("External-IP"), C("Port(s)"), AGE,
                  C("Selector", priority=1)], _svc_row),
    "endpoints": ([NAME, C("Endpoints"), AGE], _ep_row),
    "endpointslices.discovery.k8s.io": ([NAME, C("AddressType"), C("Ports"), C("Endpoints"), AGE], _eps_row),
    "deployments.apps": ([NAME, C("Ready"), C("Up-to-date", "integer"), C("Available", "integer"), AGE,
                          C("Containers", priority=1), C("Images", priority=1), C("Selector", priority=1)],
                         _deploy_row),
    "replicasets.apps": ([NAME, C("Desired", "integer"), C("Current", "integer"), C("Ready", "integer"), AGE,
                          C("Containers", priority=1), C("Images", priority=1), C("Selector", priority=1)], _rs_row),
    "statefulsets.apps": ([NAME, C("Ready"), AGE, C("Containers", priority=1), C("Images", priority=1)], _sts_row),
    "daemonsets.apps": ([NAME, C("Desired", "integer"), C("Current", "integer"), C("Ready", "integer"),
                         C("Up-to-date", "integer"), C("Available", "integer"), C("Node Selector"), AGE,
                         C("Containers", priority=1), C("Images", priority=1), C("Selector", priority=1)], _ds_row),
    "volumeattachments.storage.k8s.io": ([NAME, C("Attacher"), C("PV"), C("Node"), C("Attached", "boolean"), AGE],
                                         _va_row),
    "storageclasses.storage.k8s.io": ([NAME, C("Provisioner"), C("ReclaimPolicy"), C("VolumeBindingMode"),
                                       C("AllowVolumeExpansion", "boolean"), AGE], _sc_row),
    "csidrivers.storage.k8s.io": ([NAME, C("AttachRequired", "boolean"), C("PodInfoOnMount", "boolean"),
                                   C("StorageCapacity", "boolean"), C("TokenRequests"),
                                   C("RequiresRepublish", "boolean"), C("Modes"), AGE], _csid_row),
    "leases.coordination.k8s.io": ([NAME, C("Holder"), AGE], _lease_row),
    "poddisruptionbudgets.policy": ([NAME, C("Min Available"), C("Max Unavailable"),
                                     C("Allowed Disruptions", "integer"), AGE], _pdb_row),
    "configmaps": ([NAME, C("Data", "integer"), AGE], _cm_row),
    "secrets": ([NAME, C("Type"), C("Data", "integer"), AGE], _secret_row),
    "serviceaccounts": ([NAME, C("Secrets", "integer"), AGE], _sa_row),
    "persistentvolumes": ([NAME, C("Capacity"), C("Access Modes"), C("Reclaim Policy"), C("Status"), C("Claim"),
                           C("StorageClass"), C("VolumeAttributesClass"), C("Reason"), AGE], _pv_row),
    "persistentvolumeclaims": ([NAME, C("Status"), C("Volume"), C("Capacity"), C("Access Modes"),
                                C("StorageClass"), C("VolumeAttributesClass"), AGE, C("VolumeMode", priority=1)],
                               _pvc_row),
    "events": ([C("Last Seen"), C("Type"), C("Reason"), C("Object"), C("Message")], _event_row),
    "customresourcedefinitions.apiextensions.k8s.io": ([NAME, C("Created At", "date")], _crd_row),
}


def _jsonpath(obj: dict, path: str) -> Any:
    """The simple JSONPath subset CRD printer columns use: .a.b, .a[0].b, .a[?(@.k=='v')].b."""
    import re

    cur: Any = obj
    for part in re.findall(r"\.([A-Za-z0-9_\-]+)|\[(\d+)\]|\[\?\(@\.([A-Za-z0-9_]+)==['\"]([^'\"]*)['\"]\)\]", path):
        key, idx, fk, fv = part
        if key:
            cur = cur.get(key) if isinstance(cur, dict) else None
        elif idx:
            cur = cur[int(idx)] if isinstance(cur, list) and int(idx) < len(cur) else None
        else:
            cur = next((x for x in cur if isinstance(x, dict) and str(x.get(fk)) == fv), None) \
                if isinstance(cur, list) else None
        if cur is None:
            return None
    return cur


def custom_columns(res: Resource) -> list[dict]:
    return res.printer_columns or [{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]


def _custom(res: Resource, p: Printer, o: dict) -> list:
    cells = [o["metadata"]["name"]]
    for c in custom_columns(res):
        v = _jsonpath(o, c["jsonPath"])
        if c.get("type") == "date":
            cells.append(p.since(v) if v else "<unknown>")
        elif v is None:
            cells.append(None)
        else:
            cells.append(v)
    return cells


def columns(res: Resource) -> list[dict]:
    if res.key in PRINTERS:
        return PRINTERS[res.key][0]
    if res.custom:
        out = [NAME]
        for c in custom_columns(res):
            out.append(_col(c["name"], "string" if c.get("type") == "date" else c.get("type", "string"),
                            c.get("priority", 0), c.get("format", ""), c.get("description", c["name"])))
        return out
    return [NAME, _col("Created At", "date", desc=AGE_DESC)]


def row(res: Resource, obj: dict, now: float, include: str = "Metadata") -> dict:
    p = Printer(now)
    if res.key in PRINTERS:
        cells = PRINTERS[res.key][1](p, obj)
    elif res.custom:
        cells = _custom(res, p, obj)
    else:
        cells = [obj["metadata"]["name"], _g(obj, "metadata", "creationTimestamp", default="")]
    out: dict[str, Any] = {"cells": cells}
    if include == "Object":  # ?includeObject=Object (kubectl get --sort-by)
        out["object"] = obj
    elif include != "None":
        out["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}
    return out


def table(res: Resource, objs: list[dict], now: float, list_meta: dict, version: str = "v1",
          with_columns: bool = True, include: str = "Metadata") -> dict:
    return {"kind": "Table", "apiVersion": f"meta.k8s.io/{version}", "metadata": list_meta,
            "columnDefinitions": columns(res) if with_columns else None,
            "rows": [row(res, o, now, include) for o in objs]}


def wants_table(accept: str) -> str | None:
    """The Table version an Accept header asks for first (v1 or v1beta1), or None."""
    for part in accept.split(","):
        params = [x.strip() for x in part.split(";")]
        if params[0] not in ("application/json", "*/*"):
            continue
        kv = dict(x.split("=", 1) for x in params[1:] if "=" in x)
        if kv.get("as") == "Table" and kv.get("g") == "meta.k8s.io" and kv.get("v") in ("v1", "v1beta1"):
            return kv["v"]
        if "as" not in kv:
            return None
    return None
