"""The resource table of the Kubernetes twin: what the store holds and what discovery advertises.

One :class:`Resource` per served resource, keyed by the store name (``pods``, ``deployments.apps``,
``volumes.longhorn.io``). Upstream sources of the facts encoded here:

* verbs and short names: the real apiserver's discovery documents (``kubectl api-resources -o wide``);
* field selectors: ``pkg/apis/*/v1/conversion.go`` (``AddFieldLabelConversionFunc``) and
  ``runtime.DefaultMetaV1FieldSelectorConversion``;
* ``return_deleted``: ``ReturnDeletedObject`` in ``pkg/registry/*/storage/storage.go``;
* ``create_on_update``: ``AllowCreateOnUpdate`` of each registry strategy;
* ``generation``: strategies that bump ``metadata.generation`` on spec changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import ApiError

READ_VERBS = ["get", "list", "watch"]
ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
NO_COLLECTION_DELETE = ["create", "delete", "get", "list", "patch", "update", "watch"]

#: field selector error styles (the message text differs by upstream conversion function)
DEFAULT_STYLE = "default"  # "%q is not a known field selector: only %q, %q"
CUSTOM_STYLE = "custom"  # "field label not supported: %s"


@dataclass
class Resource:
    plural: str
    group: str
    version: str
    kind: str
    namespaced: bool
    short_names: list[str] = field(default_factory=list)
    verbs: list[str] = field(default_factory=lambda: list(ALL_VERBS))
    subresources: dict[str, dict] = field(default_factory=dict)  # name -> {kind, verbs, group?, version?}
    fields: tuple[str, ...] = ("metadata.name", "metadata.namespace")
    field_style: str = DEFAULT_STYLE
    return_deleted: bool = False
    create_on_update: bool = False
    generation: bool = False
    custom: bool = False  # a CustomResourceDefinition-backed resource (no strategic merge patch)
    virtual: bool = False  # a create-only review that is answered, never stored (SelfSubjectAccessReview)
    categories: list[str] = field(default_factory=list)
    list_kind: str = ""
    printer_columns: list[dict] = field(default_factory=list)  # CRD additionalPrinterColumns (custom resources)

    @property
    def key(self) -> str:
        return self.plural if not self.group else f"{self.plural}.{self.group}"

    @property
    def api_version(self) -> str:
        return self.version if not self.group else f"{self.group}/{self.version}"

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources

    @property
    def qualified(self) -> str:
        """The resource as error messages name it: ``pods``, ``deployments.apps``."""
        return self.key

    def __post_init__(self) -> None:
        if not self.list_kind:
            self.list_kind = self.kind + "List"


def _status(kind: str) -> dict:
    return {"kind": kind, "verbs": ["get", "patch", "update"]}


def _build() -> list[Resource]:
    r: list[Resource] = []
    add = r.append
    # ---- core/v1 ---------------------------------------------------------------------------
    add(Resource("pods", "", "v1", "Pod", True, ["po"], categories=["all"],
                 subresources={"status": _status("Pod"),
                               "eviction": {"kind": "Eviction", "verbs": ["create"],
                                            "group": "policy", "version": "v1"},
                               "log": {"kind": "Pod", "verbs": ["get"]},
                               "binding": {"kind": "Binding", "verbs": ["create"]}},
                 fields=("metadata.name", "metadata.namespace", "spec.nodeName", "spec.restartPolicy",
                         "spec.schedulerName", "spec.serviceAccountName", "spec.hostNetwork",
                         "status.phase", "status.podIP", "status.podIPs", "status.nominatedNodeName"),
                 field_style=CUSTOM_STYLE, return_deleted=True))
    add(Resource("nodes", "", "v1", "Node", False, ["no"], verbs=list(ALL_VERBS),
                 subresources={"status": _status("Node")},
                 fields=("metadata.name", "metadata.namespace", "spec.unschedulable"),
                 field_style=CUSTOM_STYLE))
    add(Resource("namespaces", "", "v1", "Namespace", False, ["ns"],
                 verbs=["create", "delete", "get", "list", "patch", "update", "watch"],
                 subresources={"status": _status("Namespace"),
                               "finalize": {"kind": "Namespace", "verbs": ["update"]}},
                 fields=("metadata.name", "metadata.namespace", "status.phase"), field_style=CUSTOM_STYLE))
    add(Resource("services", "", "v1", "Service", True, ["svc"], categories=["all"],
                 verbs=["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
                 subresources={"status": _status("Service")}, return_deleted=True, create_on_update=True))
    add(Resource("endpoints", "", "v1", "Endpoints", True, ["ep"], create_on_update=True, list_kind="EndpointsList"))
    add(Resource("persistentvolumes", "", "v1", "PersistentVolume", False, ["pv"],
                 subresources={"status": _status("PersistentVolume")}, return_deleted=True))
    add(Resource("persistentvolumeclaims", "", "v1", "PersistentVolumeClaim", True, ["pvc"],
                 subresources={"status": _status("PersistentVolumeClaim")}, return_deleted=True))
    add(Resource("configmaps", "", "v1", "ConfigMap", True, ["cm"]))
    add(Resource("secrets", "", "v1", "Secret", True, [],
                 fields=("metadata.name", "metadata.namespace", "type"), field_style=CUSTOM_STYLE))
    add(Resource("serviceaccounts", "", "v1", "ServiceAccount", True, ["sa"], return_deleted=True))
    add(Resource("events", "", "v1", "Event", True, ["ev"], create_on_update=True,
                 fields=("metadata.name", "metadata.namespace", "involvedObject.kind",
                         "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
                         "involvedObject.apiVersion", "involvedObject.resourceVersion",
                         "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type"),
                 field_style=CUSTOM_STYLE))
    # ---- apps/v1 ---------------------------------------------------------------------------
    scale = {"kind": "Scale", "verbs": ["get", "patch", "update"], "group": "autoscaling", "version": "v1"}
    add(Resource("deployments", "apps", "v1", "Deployment", True, ["deploy"], categories=["all"],
                 subresources={"status": _status("Deployment"), "scale": dict(scale)}, generation=True))
    add(Resource("replicasets", "apps", "v1", "ReplicaSet", True, ["rs"], categories=["all"],
                 subresources={"status": _status("ReplicaSet"), "scale": dict(scale)}, generation=True,
                 fields=("metadata.name", "metadata.namespace", "status.replicas"), field_style=CUSTOM_STYLE))
    add(Resource("statefulsets", "apps", "v1", "StatefulSet", True, ["sts"], categories=["all"],
                 subresources={"status": _status("StatefulSet"), "scale": dict(scale)}, generation=True,
                 fields=("metadata.name", "metadata.namespace", "status.successful"), field_style=CUSTOM_STYLE))
    add(Resource("daemonsets", "apps", "v1", "DaemonSet", True, ["ds"], categories=["all"],
                 subresources={"status": _status("DaemonSet")}, generation=True))
    add(Resource("controllerrevisions", "apps", "v1", "ControllerRevision", True, []))
    # ---- storage.k8s.io/v1 -----------------------------------------------------------------
    add(Resource("volumeattachments", "storage.k8s.io", "v1", "VolumeAttachment", False, [],
                 subresources={"status": _status("VolumeAttachment")}, return_deleted=True))
    add(Resource("storageclasses", "storage.k8s.io", "v1", "StorageClass", False, ["sc"], return_deleted=True))
    add(Resource("csidrivers", "storage.k8s.io", "v1", "CSIDriver", False, [], return_deleted=True))
    add(Resource("csinodes", "storage.k8s.io", "v1", "CSINode", False, [], return_deleted=True))
    # ---- others ----------------------------------------------------------------------------
    add(Resource("endpointslices", "discovery.k8s.io", "v1", "EndpointSlice", True, []))
    add(Resource("leases", "coordination.k8s.io", "v1", "Lease", True, [], create_on_update=True))
    add(Resource("poddisruptionbudgets", "policy", "v1", "PodDisruptionBudget", True, ["pdb"],
                 subresources={"status": _status("PodDisruptionBudget")}, generation=True))
    add(Resource("selfsubjectaccessreviews", "authorization.k8s.io", "v1", "SelfSubjectAccessReview", False, [],
                 verbs=["create"], virtual=True))
    add(Resource("selfsubjectreviews", "authentication.k8s.io", "v1", "SelfSubjectReview", False, [],
                 verbs=["create"], virtual=True))
    add(Resource("customresourcedefinitions", "apiextensions.k8s.io", "v1", "CustomResourceDefinition", False,
                 ["crd", "crds"], subresources={"status": _status("CustomResourceDefinition")},
                 generation=True, categories=["api-extensions"]))
    # ---- Longhorn (longhorn.io/v1beta2, custom resources; columns from longhorn chart/templates/crds.yaml) ----
    def col(name: str, path: str, typ: str = "string", priority: int = 0) -> dict:
        c = {"name": name, "type": typ, "jsonPath": path}
        if priority:
            c["priority"] = priority
        return c

    age = col("Age", ".metadata.creationTimestamp", "date")
    engine = col("Data Engine", ".spec.dataEngine")
    columns = {
        "volumes": [engine, col("State", ".status.state"), col("Robustness", ".status.robustness"),
                    col("Scheduled", ".status.conditions[?(@.type=='Schedulable')].status"),
                    col("Size", ".spec.size"), col("Node", ".status.currentNodeID"),
                    col("Switchover", ".status.switchoverState", priority=1), age],
        "volumeattachments": [age],
        "engines": [engine, col("State", ".status.currentState"), col("Node", ".spec.nodeID"),
                    col("InstanceManager", ".status.instanceManagerName"), col("Image", ".status.currentImage"), age],
        "replicas": [engine, col("State", ".status.currentState"), col("Node", ".spec.nodeID"),
                     col("Disk", ".spec.diskID"), col("InstanceManager", ".status.instanceManagerName"),
                     col("Image", ".status.currentImage"), age],
        "nodes": [col("Ready", ".status.conditions[?(@.type=='Ready')].status"),
                  col("AllowScheduling", ".spec.allowScheduling", "boolean"),
                  col("Schedulable", ".status.conditions[?(@.type=='Schedulable')].status"), age],
        "settings": [col("Value", ".value"), col("Applied", ".status.applied", "boolean"), age],
    }
    for plural, kind, short in (("volumes", "Volume", ["lhv"]),
                                ("volumeattachments", "VolumeAttachment", ["lhva"]),
                                ("engines", "Engine", ["lhe"]),
                                ("replicas", "Replica", ["lhr"]),
                                ("nodes", "Node", ["lhn"]),
                                ("settings", "Setting", ["lhs"])):
        add(Resource(plural, "longhorn.io", "v1beta2", kind, True, short, subresources={"status": _status(kind)},
                     custom=True, generation=True, field_style=CUSTOM_STYLE,
                     fields=("metadata.name", "metadata.namespace"), categories=["longhorn"],
                     printer_columns=columns[plural]))
    return r


RESOURCES: dict[str, Resource] = {res.key: res for res in _build()}

#: group -> version -> [Resource]
GROUPS: dict[str, dict[str, list[Resource]]] = {}
for _res in RESOURCES.values():
    GROUPS.setdefault(_res.group, {}).setdefault(_res.version, []).append(_res)

#: (group, version, plural) -> Resource, as URLs name them
BY_PATH: dict[tuple[str, str, str], Resource] = {(r.group, r.version, r.plural): r for r in RESOURCES.values()}

#: extra versions served for a group (policy/v1beta1 for kubectl 1.20's Eviction, no resources moved)
GROUP_ORDER = ["", "apiregistration.k8s.io", "apps", "events.k8s.io", "authentication.k8s.io",
               "authorization.k8s.io", "autoscaling", "batch", "certificates.k8s.io", "networking.k8s.io",
               "policy", "rbac.authorization.k8s.io", "storage.k8s.io", "admissionregistration.k8s.io",
               "apiextensions.k8s.io", "scheduling.k8s.io", "coordination.k8s.io", "node.k8s.io",
               "discovery.k8s.io", "flowcontrol.apiserver.k8s.io", "longhorn.io"]


def resource(key: str) -> Resource:
    try:
        return RESOURCES[key]
    except KeyError:
        raise ApiError(404, "NotFound", "the server could not find the requested resource", {}) from None


def crd_object(res: Resource) -> dict:
    """The CustomResourceDefinition a real cluster would hold for a custom resource."""
    spec = {
        "group": res.group,
        "names": {"kind": res.kind, "listKind": res.list_kind, "plural": res.plural,
                  "singular": res.singular, "shortNames": list(res.short_names),
                  "categories": list(res.categories)},
        "scope": "Namespaced" if res.namespaced else "Cluster",
        "versions": [{
            "name": res.version, "served": True, "storage": True,
            "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
            "subresources": {"status": {}} if res.has_status else {},
            "additionalPrinterColumns": [dict(c) for c in res.printer_columns],
        }],
        "conversion": {"strategy": "None"},
    }
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": res.key, "labels": {"app.kubernetes.io/name": "longhorn"}},
            "spec": spec}
