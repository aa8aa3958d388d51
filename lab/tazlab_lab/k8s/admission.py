"""Admission: what the apiserver does to an object before it is stored.

The typed decoder's 400s (``decodable``), metadata and pod validation (``validate_meta``), the
registry strategies' status reset on create and their update rules (``reset_status_on_create``,
``validate_update``, ``spec_changed`` for ``metadata.generation``), the defaulting of
``pkg/apis/*/v1/defaults.go`` (``defaults``), the service IP / node port allocators
(``allocate_service``) and the DefaultTolerationSeconds and Priority admission plugins.

Plain functions over dicts; the store (``store.py``) calls them inside its transaction. Nothing here
keeps state: the allocators get the stored services and the store's random generator.
"""

from __future__ import annotations

import itertools
import json
import random
import re
from typing import Any, Callable

from .errors import BadRequest, invalid
from .objects import jcopy
from .resources import Resource
from .structure import check as _structure_check

__all__ = ["decodable", "validate_meta", "reset_status_on_create", "defaults", "allocate_service",
           "default_toleration_seconds", "validate_update", "spec_changed", "qos_class", "pod_spec_defaults",
           "NOT_READY_TAINT", "UNREACHABLE_TAINT"]

_DNS1123_SUB = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SUB_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
            "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
            "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
_LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
              "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
              "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
_LABEL_NAMED = {"namespaces", "services"}


NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
_ZERO_STATUS = {
    "replicasets.apps": ("replicas",),
    "statefulsets.apps": ("replicas", "availableReplicas"),
    "daemonsets.apps": ("currentNumberScheduled", "numberMisscheduled", "desiredNumberScheduled", "numberReady"),
}


def decodable(r: Resource, obj: Any) -> None:
    """400 for what typed JSON decoding rejects (a string where Go has a list, ...), before any write."""
    msg = _structure_check(r.key, r.kind, obj)
    if msg is not None:
        raise BadRequest(f"{r.kind} in version \"{r.version}\" cannot be handled as a {r.kind}: {msg}")


def validate_meta(r: Resource, obj: dict, name: str) -> None:
    """Names, namespace, pod containers and label/annotation types (ValidateObjectMeta and friends)."""
    meta = obj["metadata"]
    causes = []
    if not name:
        causes.append(("metadata.name", "FieldValueRequired", "Required value: name or generateName is required"))
    elif r.plural in _LABEL_NAMED and not r.group:
        if len(name) > 63 or not _DNS1123_LABEL.match(name):
            causes.append(("metadata.name", "FieldValueInvalid", f"Invalid value: \"{name}\": {_LABEL_MSG}"))
    elif len(name) > 253 or not _DNS1123_SUB.match(name):
        causes.append(("metadata.name", "FieldValueInvalid", f"Invalid value: \"{name}\": {_SUB_MSG}"))
    if r.namespaced and not meta.get("namespace"):
        causes.append(("metadata.namespace", "FieldValueRequired", "Required value"))
    if r.key == "pods":
        containers = (obj.get("spec") or {}).get("containers")
        if not isinstance(containers, list) or not containers:
            causes.append(("spec.containers", "FieldValueRequired", "Required value"))
        else:
            for i, c in enumerate(containers):
                if not isinstance(c, dict) or not c.get("name"):
                    causes.append((f"spec.containers[{i}].name", "FieldValueRequired", "Required value"))
                elif not c.get("image"):
                    causes.append((f"spec.containers[{i}].image", "FieldValueRequired", "Required value"))
    for fld in ("labels", "annotations"):
        v = meta.get(fld)
        if v is not None and (not isinstance(v, dict) or not all(isinstance(x, str) for x in v.values())):
            raise BadRequest(f"json: cannot unmarshal into Go struct field ObjectMeta.metadata.{fld} of "
                             f"type string")
    if causes:
        raise invalid(r, name, causes)


def reset_status_on_create(r: Resource, obj: dict) -> None:
    """The registry strategies' PrepareForCreate for resources with a status subresource."""
    if r.custom:
        obj.pop("status", None)
    elif r.plural == "pods":
        obj["status"] = {"phase": "Pending"}
    elif r.plural in ("nodes", "persistentvolumes", "persistentvolumeclaims", "namespaces",
                      "customresourcedefinitions"):
        pass  # their strategies keep (parts of) status on create
    else:
        obj["status"] = {}


def defaults(r: Resource, obj: dict, creating: bool,
             allocate_service: Callable[[dict], None] | None = None) -> None:
    """The defaulting the apiserver applies (pkg/apis/*/v1/defaults.go), the parts clients look at."""
    k = r.key
    if k == "namespaces":
        # the immutable name label every namespace carries (NamespaceDefaultLabelName, GA in 1.22)
        labels = obj["metadata"].get("labels") or {}
        labels["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
        obj["metadata"]["labels"] = labels
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        st = obj.setdefault("status", {})
        st.setdefault("phase", "Active")
    elif k == "pods":
        spec = obj.setdefault("spec", {})
        pod_spec_defaults(spec)
        if creating:  # the Priority admission plugin
            spec.setdefault("priority", 0)
            spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
        st = obj.setdefault("status", {})
        st.setdefault("phase", "Pending")
        if creating:
            st.setdefault("qosClass", qos_class(spec))
    elif k in ("deployments.apps", "replicasets.apps", "statefulsets.apps", "daemonsets.apps"):
        spec = obj.setdefault("spec", {})
        if k != "daemonsets.apps":
            spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        if k == "deployments.apps":
            spec.setdefault("strategy", {"type": "RollingUpdate",
                                         "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
            spec.setdefault("progressDeadlineSeconds", 600)
        tmpl = spec.get("template")
        if isinstance(tmpl, dict):
            pod_spec_defaults(tmpl.setdefault("spec", {}))
        st = obj.setdefault("status", {})
        # status fields without omitempty: Go always serialises their zero values
        for f in _ZERO_STATUS.get(k, ()):
            st.setdefault(f, 0)
    elif k == "services":
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        for p in spec.get("ports") or []:
            if isinstance(p, dict):
                p.setdefault("protocol", "TCP")
                if "port" in p:
                    p.setdefault("targetPort", p["port"])
        if spec.get("type") != "ExternalName":
            if creating:
                if allocate_service is not None:
                    allocate_service(obj)
            spec.setdefault("internalTrafficPolicy", "Cluster")
        if spec.get("type") in ("NodePort", "LoadBalancer"):
            spec.setdefault("externalTrafficPolicy", "Cluster")
        obj.setdefault("status", {"loadBalancer": {}})
    elif k == "endpoints":
        for s in obj.get("subsets") or []:
            for p in (s or {}).get("ports") or []:
                if isinstance(p, dict):
                    p.setdefault("protocol", "TCP")
    elif k == "volumeattachments.storage.k8s.io":
        obj.setdefault("status", {}).setdefault("attached", False)
    elif k == "poddisruptionbudgets.policy":
        st = obj.setdefault("status", {})
        for f in ("disruptionsAllowed", "currentHealthy", "desiredHealthy", "expectedPods"):
            st.setdefault(f, 0)
    elif k == "persistentvolumes":
        obj.setdefault("status", {}).setdefault("phase", "Pending")
    elif k == "persistentvolumeclaims":
        obj.setdefault("status", {}).setdefault("phase", "Pending")


def allocate_service(svc: dict, services: list[dict], rng: random.Random) -> None:
    """The service IP and node port allocators (service CIDR 10.96.0.0/12, node ports 30000-32767);
    default/kubernetes gets the first address, as the apiserver reserves it."""
    spec = svc["spec"]
    if not spec.get("clusterIP"):
        used = {(o.get("spec") or {}).get("clusterIP") for o in services}
        meta = svc["metadata"]
        if meta.get("namespace") == "default" and meta.get("name") == "kubernetes" and "10.96.0.1" not in used:
            ip = "10.96.0.1"
        else:
            while True:
                n = rng.randrange(10, (1 << 20) - 1)  # a /12 has 2^20 addresses
                ip = f"10.{96 + (n >> 16)}.{(n >> 8) & 255}.{n & 255}"
                if ip not in used:
                    break
        spec["clusterIP"] = ip
    if spec["clusterIP"] != "None":
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
    else:
        spec.setdefault("clusterIPs", ["None"])
    spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack")
    if spec.get("type") in ("NodePort", "LoadBalancer"):
        used_ports = {p.get("nodePort") for o in services
                      for p in (o.get("spec") or {}).get("ports") or []}
        for p in spec.get("ports") or []:
            if isinstance(p, dict) and not p.get("nodePort"):
                while True:
                    port = rng.randrange(30000, 32768)
                    if port not in used_ports:
                        break
                p["nodePort"] = port
                used_ports.add(port)


def default_toleration_seconds(pod: dict) -> None:
    """DefaultTolerationSeconds admission (plugin/pkg/admission/defaulttolerationseconds)."""
    spec = pod.setdefault("spec", {})
    tols = spec.get("tolerations") or []
    not_ready = unreachable = False
    for t in tols:
        key, eff = t.get("key") or "", t.get("effect") or ""
        if key in (NOT_READY_TAINT, "") and eff in ("NoExecute", ""):
            not_ready = True
        if key in (UNREACHABLE_TAINT, "") and eff in ("NoExecute", ""):
            unreachable = True
    if not not_ready:
        tols.append({"key": NOT_READY_TAINT, "operator": "Exists", "effect": "NoExecute",
                     "tolerationSeconds": 300})
    if not unreachable:
        tols.append({"key": UNREACHABLE_TAINT, "operator": "Exists", "effect": "NoExecute",
                     "tolerationSeconds": 300})
    spec["tolerations"] = tols


def validate_update(r: Resource, old: dict, new: dict) -> None:
    """The immutability rules of the registry strategies' ValidateUpdate that clients run into."""
    name = old["metadata"]["name"]
    k = r.key
    if k == "pods":
        os_, ns_ = jcopy(old.get("spec") or {}), jcopy(new.get("spec") or {})
        # what a pod update may change (ValidatePodUpdate)
        for spec_, src in ((ns_, os_),):
            for fld in ("containers", "initContainers"):
                for i, c in enumerate(spec_.get(fld) or []):
                    if i < len(src.get(fld) or []) and isinstance(c, dict):
                        c["image"] = src[fld][i].get("image")
            spec_["activeDeadlineSeconds"] = src.get("activeDeadlineSeconds")
            old_tols = src.get("tolerations") or []
            new_tols = spec_.get("tolerations") or []
            if all(t in new_tols for t in old_tols):
                spec_["tolerations"] = old_tols
            if (src.get("terminationGracePeriodSeconds") or 0) < 0 and spec_.get("terminationGracePeriodSeconds") == 1:
                spec_["terminationGracePeriodSeconds"] = src.get("terminationGracePeriodSeconds")
            spec_["schedulingGates"] = src.get("schedulingGates")
        if {k2: v for k2, v in ns_.items() if v is not None} != {k2: v for k2, v in os_.items() if v is not None}:
            raise invalid(r, name, [("spec", "FieldValueForbidden",
                                     "Forbidden: pod updates may not change fields other than "
                                     "`spec.containers[*].image`,`spec.initContainers[*].image`,"
                                     "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to "
                                     "existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to "
                                     "be set to 1 if it was previously negative)")])
    elif k == "services":
        oip, nip = (old.get("spec") or {}).get("clusterIP"), (new.get("spec") or {}).get("clusterIP")
        if oip and nip != oip and (new.get("spec") or {}).get("type") != "ExternalName":
            raise invalid(r, name, [("spec.clusterIPs[0]", "FieldValueInvalid",
                                     f"Invalid value: []string{{\"{nip}\"}}: may not change once set")])
    elif k == "volumeattachments.storage.k8s.io":
        if old.get("spec") != new.get("spec"):
            raise invalid(r, name, [("spec", "FieldValueInvalid",
                                     f"Invalid value: {json.dumps(new.get('spec'))}: field is immutable")])
    elif k in ("deployments.apps", "replicasets.apps", "statefulsets.apps", "daemonsets.apps"):
        osel, nsel = (old.get("spec") or {}).get("selector"), (new.get("spec") or {}).get("selector")
        if osel != nsel:
            raise invalid(r, name, [("spec.selector", "FieldValueInvalid",
                                     f"Invalid value: {json.dumps(nsel)}: field is immutable")])


def spec_changed(r: Resource, old: dict, new: dict) -> bool:
    """Whether ``metadata.generation`` grows: a spec change (custom resources: anything outside metadata/status)."""
    if r.custom:
        ignore = ("metadata", "status")
        return {k: v for k, v in old.items() if k not in ignore} != \
            {k: v for k, v in new.items() if k not in ignore}
    if old.get("spec") != new.get("spec"):
        return True
    if r.key == "deployments.apps":
        return (old["metadata"].get("annotations") or {}) != (new["metadata"].get("annotations") or {})
    return False


def qos_class(spec: dict) -> str:
    """pkg/apis/core/helper/qos.GetPodQOS, for cpu and memory."""
    reqs, lims, guaranteed = False, False, True
    for c in itertools.chain(spec.get("containers") or [], spec.get("initContainers") or []):
        res = (c or {}).get("resources") or {}
        rq, lm = res.get("requests") or {}, res.get("limits") or {}
        if any(x in rq for x in ("cpu", "memory")):
            reqs = True
        if any(x in lm for x in ("cpu", "memory")):
            lims = True
        for x in ("cpu", "memory"):
            if x not in lm or (x in rq and str(rq[x]) != str(lm[x])):
                guaranteed = False
    if not reqs and not lims:
        return "BestEffort"
    return "Guaranteed" if guaranteed and lims else "Burstable"


def pod_spec_defaults(spec: dict) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    spec.setdefault("enableServiceLinks", True)
    for c in itertools.chain(spec.get("containers") or [], spec.get("initContainers") or []):
        if not isinstance(c, dict):
            continue
        image = c.get("image") or ""
        tag = image.rsplit("/", 1)[-1]
        c.setdefault("imagePullPolicy", "Always" if (":" not in tag or tag.endswith(":latest")) and "@" not in tag
                     else "IfNotPresent")
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("terminationMessagePolicy", "File")
        c.setdefault("resources", {})

