"""The Kubernetes twin's object store: the apiserver's registry semantics over plain dicts.

The contract is STORE_API.md in this folder. Semantics follow
``staging/src/k8s.io/apiserver/pkg/registry/generic/registry/store.go`` and the per-resource
strategies in ``pkg/registry``; the reference is ``shared/reference/kubernetes-api.md``.

The store is split by concern; this module is the registry itself (reads, indexes, the verbs,
the transaction) and re-exports the names of the others:

* ``errors.py``: ``ApiError`` and its subclasses (a leaf module);
* ``objects.py``: ``Entry`` (a stored object and its cached JSON) and the shared helpers;
* ``admission.py``: validation, defaults, allocators, admission plugins (what happens before a write);
* ``gc.py``: garbage collection, the GC finalizers, namespace cleanup (what happens after a delete);
* ``watch.py``: subscribers, watchers, the watch history (what happens after every write).

Design for scale (1,000 nodes, 30,000 pods):

* stored objects are never mutated in place: every write stores a new dict, so ``copy=False`` readers
  and the watch history can hold references without copying;
* each stored object caches its JSON serialisation (``Entry.raw``), computed once on first use, so a
  list over HTTP is a join of cached bytes;
* indexes by namespace and (pods) by ``spec.nodeName``; the uid index and owner -> dependents index
  make garbage collection cheap.

Thread-safety: every public method runs in one re-entrant transaction (``store.transaction()``), so a
test thread acting as a kubelet can call ``store.delete`` while the API server's event loop serves
requests; a caller that reads and then writes (the eviction subresource) holds ``transaction()``
around both. Subscribers and watchers are called synchronously on the writing thread, inside it.

Extensions beyond STORE_API.md (compatible; the server uses them):

* keyword-only ``api=True`` on create/update/patch/delete applies what the HTTP registry does on top of
  the store (create resets ``status`` of resources with a status subresource, a main-resource write
  keeps the old status, ``subresource="status"`` writes only status; custom resources need a
  resourceVersion on update);
* ``get_entry``, ``list_entries`` (pagination), ``add_watcher``, ``events_since`` for the server;
* ``ApiError`` subclasses for every reason the server answers with.
"""

from __future__ import annotations

import collections
import contextlib
import json
import random
import threading
import time
import uuid
from typing import Any, Callable, Iterator

from . import admission
from .errors import (HTTP_REASONS, STALE, AlreadyExists, ApiError, BadRequest, Conflict, Expired, Forbidden,
                     Invalid, MethodNotAllowed, NotFound, TooLargeResourceVersion, TooManyRequests,
                     UnsupportedMediaType, conflict, invalid, not_found)
from .errors import _details
from .gc import GarbageCollection, pending as _pending
from .objects import Entry, iso as _iso, jcopy as _jcopy, ordered as _ordered, sort_key as _sort_key
from .patch import PatchError, json_merge, json_patch, strategic_merge
from .resources import RESOURCES, Resource, crd_object
from .selectors import SelectorError, label_selector_from_dict, parse_field_selector, parse_label_selector
from .watch import WatchEvent, WatchHistory, Watcher

__all__ = ["Store", "ApiError", "NotFound", "Conflict", "AlreadyExists", "Invalid", "BadRequest",
           "Forbidden", "Expired", "TooManyRequests", "UnsupportedMediaType", "MethodNotAllowed",
           "TooLargeResourceVersion", "Entry", "WatchEvent", "Watcher", "HTTP_REASONS", "STALE", "conflict",
           "invalid", "not_found", "delete_kwargs"]

_GEN_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
NOT_READY_TAINT, UNREACHABLE_TAINT = admission.NOT_READY_TAINT, admission.UNREACHABLE_TAINT


class Store(WatchHistory, GarbageCollection):
    """Every object of the twin, with the apiserver's registry semantics."""

    def __init__(self, clock: Any, *, history: int = 50_000, history_seconds: float = 300.0,
                 history_clock: Callable[[], float] = time.monotonic,
                 system_namespaces: bool = True, seed: int = 20260125):
        """``history``/``history_seconds``: how many events, and how many seconds of them, a watch can resume
        from; older resourceVersions get 410 Expired (etcd compacts every 5 minutes). The window is wall
        time (``history_clock``), as clients wait in wall time whatever the simulated clock's speed."""
        self.clock = clock
        self._lock = threading.RLock()
        self._rv = 0
        self._data: dict[str, dict[tuple[str | None, str], Entry]] = {k: {} for k in RESOURCES}
        self._by_ns: dict[str, dict[str | None, set[tuple[str | None, str]]]] = {k: {} for k in RESOURCES}
        self._pods_by_node: dict[str, set[tuple[str | None, str]]] = {}
        self._sorted: dict[str, list[tuple[str | None, str]] | None] = {k: None for k in RESOURCES}
        self._by_uid: dict[str, tuple[str, str | None, str]] = {}
        self._dependents: dict[str, set[tuple[str, str | None, str]]] = {}
        self._init_watch(history, history_seconds, history_clock)
        #: fn(res, obj) -> True when the stored bytes of obj were written with a transformer that is not the
        #: current first one (etcd3 store ``stale``): an unchanged update then still writes (k8s/atrest.py).
        self.stale_value: Callable[[str, dict], bool] | None = None
        self._rng = random.Random(seed)
        self.requests: collections.Counter = collections.Counter()
        self.errors: list[BaseException] = []
        if system_namespaces:  # the apiserver's system namespaces controller creates these at start
            for ns in SYSTEM_NAMESPACES:
                self.create("namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        for r in RESOURCES.values():  # Longhorn's CRDs, as its chart installs them
            if r.custom:
                self.create("customresourcedefinitions.apiextensions.k8s.io", crd_object(r))


    # -- the transaction -----------------------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self) -> Iterator["Store"]:
        """``with store.transaction():`` -- no other thread reads or writes the store until the block ends.

        For a caller that reads and then writes on what it read (the eviction subresource: pod, PDB
        status, delete). Re-entrant: the store's own methods run inside it, and so do the subscribers
        and watchers a write inside the block calls."""
        with self._lock:
            yield self

    # -- reading -------------------------------------------------------------------------------
    @property
    def resource_version(self) -> int:
        return self._rv

    def _res(self, res: str) -> Resource:
        try:
            return RESOURCES[res]
        except KeyError:
            raise NotFound("the server could not find the requested resource", {}) from None

    @staticmethod
    def _key(r: Resource, namespace: str | None, name: str) -> tuple[str | None, str]:
        return (namespace if r.namespaced else None, name)

    def get_entry(self, res: str, namespace: str | None, name: str) -> Entry:
        r = self._res(res)
        with self._lock:
            e = self._data[res].get(self._key(r, namespace, name))
            if e is None:
                raise not_found(r, name)
            return e

    def get(self, res: str, namespace: str | None, name: str, copy: bool = True) -> dict:
        obj = self.get_entry(res, namespace, name).obj
        return _jcopy(obj) if copy else obj

    def _candidates(self, res: str, r: Resource, namespace: str | None,
                    reqs: list[tuple[str, str, str]]) -> list[tuple[str | None, str]]:
        data = self._data[res]
        for fld, op, value in reqs:
            if op != "=":
                continue
            if fld == "metadata.name":
                key = self._key(r, namespace, value)
                if namespace is None and r.namespaced:
                    return sorted(k for k in data if k[1] == value)
                return [key] if key in data else []
            if fld == "spec.nodeName" and res == "pods" and value:
                keys = self._pods_by_node.get(value, set())
                if namespace is not None:
                    keys = {k for k in keys if k[0] == namespace}
                return sorted(keys, key=_sort_key)
            if fld == "metadata.namespace" and r.namespaced and namespace is None:
                namespace = value
        if namespace is not None and r.namespaced:
            return sorted(self._by_ns[res].get(namespace, ()), key=_sort_key)
        keys = self._sorted[res]
        if keys is None:
            keys = self._sorted[res] = sorted(data, key=_sort_key)
        return keys

    def list_entries(self, res: str, namespace: str | None = None, label_selector: str | None = None,
                     field_selector: str | None = None, limit: int | None = None,
                     start_after: tuple[str, str] | None = None) -> tuple[list[Entry], int, tuple | None, int]:
        """-> (entries, remaining, last_key, resourceVersion); remaining/last_key for paging with limit."""
        r = self._res(res)
        try:
            lmatch = parse_label_selector(label_selector)
        except SelectorError as exc:
            raise BadRequest(str(exc)) from None
        fmatch, reqs = parse_field_selector(field_selector, r)
        with self._lock:
            data = self._data[res]
            keys = self._candidates(res, r, namespace if r.namespaced else None, reqs)
            if start_after is not None:
                import bisect

                start = (start_after[0] or "", start_after[1])
                idx = bisect.bisect_right(keys, start, key=_sort_key)
                keys = keys[idx:]
            if fmatch is None and lmatch is None and limit and len(keys) > limit:
                # an unfiltered page: no need to walk the rest to count it (every key is stored)
                page = keys[:limit]
                return [data[k] for k in page], len(keys) - limit, page[-1], self._rv
            out: list[Entry] = []
            remaining = 0
            last = None
            for k in keys:
                e = data.get(k)
                if e is None:
                    continue
                o = e.obj
                if fmatch is not None and not fmatch(o):
                    continue
                if lmatch is not None and not lmatch(o):
                    continue
                if limit and len(out) >= limit:
                    remaining += 1
                    continue
                out.append(e)
                last = k
            return out, remaining, (last if remaining else None), self._rv

    def warm(self) -> int:
        """Serialise every stored object now (the API server calls this at start), so the first big list
        is a join of cached bytes; returns the number of objects."""
        n = 0
        with self._lock:
            for entries in self._data.values():
                for e in entries.values():
                    e.raw  # noqa: B018 - computes and caches
                    n += 1
        return n

    def list(self, res: str, namespace: str | None = None, label_selector: str | None = None,
             field_selector: str | None = None, copy: bool = True) -> list[dict]:
        entries = self.list_entries(res, namespace, label_selector, field_selector)[0]
        return [_jcopy(e.obj) for e in entries] if copy else [e.obj for e in entries]


    # -- writes: plumbing ------------------------------------------------------------------------
    def _next_rv(self) -> int:
        self._rv += 1
        return self._rv

    def _commit(self, etype: str, res: str, key: tuple[str | None, str], obj: dict, old: dict | None,
                cur: Entry | None) -> None:
        """`obj` stored at a new resourceVersion, indexed and sent to the watches as `etype` (ADDED, MODIFIED)."""
        obj["metadata"]["resourceVersion"] = str(self._next_rv())
        e = Entry(obj)
        self._data[res][key] = e
        self._index_add(res, key, obj, old)
        self._emit(etype, res, e, cur)

    def _index_add(self, res: str, key: tuple[str | None, str], obj: dict, old: dict | None) -> None:
        meta = obj["metadata"]
        if old is None:
            self._by_ns[res].setdefault(key[0], set()).add(key)
            self._sorted[res] = None
            self._by_uid[meta["uid"]] = (res, key[0], key[1])
        if res == "pods":
            old_node = ((old or {}).get("spec") or {}).get("nodeName")
            new_node = (obj.get("spec") or {}).get("nodeName")
            if old_node != new_node or old is None:
                if old_node:
                    self._pods_by_node.get(old_node, set()).discard(key)
                if new_node:
                    self._pods_by_node.setdefault(new_node, set()).add(key)
        old_owners = {o.get("uid") for o in ((old or {}).get("metadata") or {}).get("ownerReferences") or []}
        new_owners = {o.get("uid") for o in meta.get("ownerReferences") or []}
        ref = (res, key[0], key[1])
        for u in old_owners - new_owners:
            s = self._dependents.get(u)
            if s:
                s.discard(ref)
                if not s:
                    del self._dependents[u]
        for u in new_owners - old_owners:
            if u:
                self._dependents.setdefault(u, set()).add(ref)

    def _index_remove(self, res: str, key: tuple[str | None, str], obj: dict) -> None:
        s = self._by_ns[res].get(key[0])
        if s is not None:
            s.discard(key)
            if not s:
                del self._by_ns[res][key[0]]
        self._sorted[res] = None
        self._by_uid.pop(obj["metadata"].get("uid"), None)
        if res == "pods":
            node = (obj.get("spec") or {}).get("nodeName")
            if node:
                self._pods_by_node.get(node, set()).discard(key)
        ref = (res, key[0], key[1])
        for o in obj["metadata"].get("ownerReferences") or []:
            s2 = self._dependents.get(o.get("uid"))
            if s2:
                s2.discard(ref)
                if not s2:
                    del self._dependents[o.get("uid")]

    def _uid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    # -- create --------------------------------------------------------------------------------
    def create(self, res: str, obj: dict, *, api: bool = False, dry_run: bool = False) -> dict:
        r = self._res(res)
        if not isinstance(obj, dict):
            raise BadRequest("the body of the request was not a JSON object")
        admission.decodable(r, obj)
        with self._lock:
            obj = _jcopy(obj)
            meta = obj.get("metadata")
            if not isinstance(meta, dict):
                meta = obj["metadata"] = {}
            name = meta.get("name") or ""
            if not name and meta.get("generateName"):
                for _ in range(10):
                    name = meta["generateName"] + "".join(self._rng.choice(_GEN_ALPHABET) for _ in range(5))
                    if self._key(r, meta.get("namespace"), name) not in self._data[res]:
                        break
                meta["name"] = name
            admission.validate_meta(r, obj, name)
            if r.namespaced:
                ns = meta["namespace"]
                nse = self._data["namespaces"].get((None, ns))
                if nse is None:
                    raise NotFound(f"namespaces \"{ns}\" not found", {"name": ns, "kind": "namespaces"})
                if nse.obj["metadata"].get("deletionTimestamp"):
                    raise Forbidden(f"{r.qualified} \"{name}\" is forbidden: unable to create new content in "
                                    f"namespace {ns} because it is being terminated",
                                    {"name": name, **({"group": r.group} if r.group else {}), "kind": r.plural,
                                     "causes": [{"reason": "NamespaceTerminating",
                                                 "message": f"namespace {ns} is being terminated",
                                                 "field": "metadata.namespace"}]})
            else:
                meta.pop("namespace", None)
            key = self._key(r, meta.get("namespace"), name)
            if key in self._data[res]:
                raise AlreadyExists(f"{r.qualified} \"{name}\" already exists", _details(r, name))
            obj["apiVersion"] = r.api_version
            obj["kind"] = r.kind
            for f in ("deletionTimestamp", "deletionGracePeriodSeconds", "selfLink", "managedFields"):
                meta.pop(f, None)
            meta["uid"] = self._uid()
            meta["creationTimestamp"] = self.clock.now_iso()
            if r.generation:
                meta["generation"] = 1
            else:
                meta.pop("generation", None)
            if api and r.has_status:
                admission.reset_status_on_create(r, obj)
            admission.defaults(r, obj, creating=True, allocate_service=self._allocate_service)
            if res == "pods":
                admission.default_toleration_seconds(obj)
            obj = _ordered(obj)
            if dry_run:
                meta["resourceVersion"] = str(self._rv)
                return _jcopy(obj)
            self._commit("ADDED", res, key, obj, None, None)
            return _jcopy(obj)

    def _allocate_service(self, svc: dict) -> None:
        admission.allocate_service(svc, [e.obj for e in self._data["services"].values()], self._rng)

    # -- update --------------------------------------------------------------------------------
    def update(self, res: str, obj: dict, *, subresource: str | None = None, api: bool = False,
               dry_run: bool = False) -> dict:
        r = self._res(res)
        admission.decodable(r, obj)
        with self._lock:
            meta = obj.get("metadata") or {}
            name = meta.get("name") or ""
            ns = meta.get("namespace") if r.namespaced else None
            key = self._key(r, ns, name)
            cur = self._data[res].get(key)
            if cur is None:
                if r.create_on_update and subresource in (None, ""):
                    if api and meta.get("resourceVersion"):
                        raise not_found(r, name)
                    return self.create(res, obj, api=api, dry_run=dry_run)
                if not name:
                    raise invalid(r, name, [("metadata.name", "FieldValueRequired",
                                             "Required value: name or generateName is required")])
                raise not_found(r, name)
            rv = meta.get("resourceVersion")
            if rv:
                if str(rv) != cur.obj["metadata"]["resourceVersion"]:
                    raise conflict(r, name, STALE)
            elif api and r.custom:
                raise invalid(r, name, [("metadata.resourceVersion", "FieldValueInvalid",
                                         "Invalid value: 0x0: must be specified for an update")])
            uid = meta.get("uid")
            if uid and uid != cur.obj["metadata"]["uid"]:
                raise conflict(r, name, f"Precondition failed: UID in precondition: {uid}, UID in object meta: "
                                        f"{cur.obj['metadata']['uid']}")
            return self._write(r, key, cur, _jcopy(obj), subresource=subresource, api=api, dry_run=dry_run)

    def _write(self, r: Resource, key: tuple, cur: Entry, new: dict, *, subresource: str | None,
               api: bool, dry_run: bool = False) -> dict:
        """Store ``new`` (a private dict) over ``cur``: metadata rules, generation, finalizer removal."""
        res = r.key
        old = cur.obj
        if subresource != "status" or not isinstance(new, dict):
            admission.decodable(r, new)
        if subresource == "status":
            status = new.get("status")
            if status is not None and not isinstance(status, dict):
                admission.decodable(r, {"status": status})
            new = _jcopy(old)
            if status is None:
                new.pop("status", None)
            else:
                new["status"] = status
        else:
            if not isinstance(new.get("metadata"), dict):
                new["metadata"] = {}
            if api and subresource == "" and r.has_status:
                if "status" in old:
                    new["status"] = _jcopy(old["status"])
                else:
                    new.pop("status", None)
            nm, om = new["metadata"], old["metadata"]
            for f in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"):
                if f in om:
                    nm[f] = om[f]
                else:
                    nm.pop(f, None)
            nm["name"] = om["name"]
            if r.namespaced:
                nm["namespace"] = om["namespace"]
            else:
                nm.pop("namespace", None)
            nm.pop("selfLink", None)
            nm.pop("managedFields", None)
            new["apiVersion"], new["kind"] = r.api_version, r.kind
            if om.get("deletionTimestamp"):
                added = [f for f in nm.get("finalizers") or [] if f not in (om.get("finalizers") or [])]
                if added:
                    raise invalid(r, om["name"], [("metadata.finalizers", "FieldValueForbidden",
                                                   "Forbidden: no new finalizers can be added if the object is "
                                                   f"being deleted, found new finalizers {json.dumps(added)}")])
            if res == "services":
                ospec, nspec = old.get("spec") or {}, new.setdefault("spec", {})
                for f in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
                    if f in ospec and not nspec.get(f):
                        nspec[f] = _jcopy(ospec[f])
                oports = {p.get("port"): p.get("nodePort") for p in ospec.get("ports") or [] if isinstance(p, dict)}
                for p in nspec.get("ports") or []:
                    if isinstance(p, dict) and not p.get("nodePort") and oports.get(p.get("port")) and \
                            nspec.get("type") in ("NodePort", "LoadBalancer"):
                        p["nodePort"] = oports[p["port"]]
            admission.defaults(r, new, creating=False)
            if api:
                admission.validate_update(r, old, new)
            if r.generation and "generation" in om:
                if admission.spec_changed(r, old, new):
                    nm["generation"] = om["generation"] + 1
        if subresource == "status":
            admission.decodable(r, new)
        new = _ordered(new)
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        if new == old and not (self.stale_value is not None and self.stale_value(res, old)):
            # a no-op write: no new resourceVersion, no event (as etcd3 GuaranteedUpdate, unless stale)
            return _jcopy(old)
        if dry_run:
            return _jcopy(new)
        nm = new["metadata"]
        if nm.get("deletionTimestamp") and not _pending(r, new):
            self._remove(r, key, new)
            return _jcopy(new)
        self._commit("MODIFIED", res, key, new, old, cur)
        return _jcopy(new)


    # -- patch ---------------------------------------------------------------------------------
    def patch(self, res: str, namespace: str | None, name: str, patch: Any, patch_type: str = "strategic", *,
              subresource: str | None = None, api: bool = False, dry_run: bool = False) -> dict:
        r = self._res(res)
        if isinstance(patch, (bytes, str)):
            try:
                patch = json.loads(patch)
            except ValueError as exc:
                raise BadRequest(f"error decoding patch: {exc}") from None
        if patch_type == "strategic" and r.custom:  # the handler rejects the media type before any lookup
            raise UnsupportedMediaType(
                "the body of the request was in an unknown format - accepted media types include: "
                "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml")
        with self._lock:
            key = self._key(r, namespace, name)
            cur = self.get_entry(res, namespace, name)
            old = cur.obj
            try:
                if patch_type == "strategic":
                    if not isinstance(patch, dict):
                        raise BadRequest(f"json: cannot unmarshal {_jtype(patch)} into Go value of type "
                                         f"map[string]interface {{}}")
                    new = strategic_merge(old, patch, r.kind)
                elif patch_type == "merge":
                    if not isinstance(patch, dict):
                        raise BadRequest(f"json: cannot unmarshal {_jtype(patch)} into Go value of type "
                                         f"map[string]interface {{}}")
                    new = json_merge(old, patch)
                elif patch_type == "json":
                    new = json_patch(old, patch)
                else:
                    raise UnsupportedMediaType(
                        "the body of the request was in an unknown format - accepted media types include: "
                        "application/json-patch+json, application/merge-patch+json"
                        + ("" if r.custom else ", application/strategic-merge-patch+json"))
            except PatchError as exc:
                if exc.code == 400:
                    raise BadRequest(str(exc)) from None
                raise ApiError(422, "Invalid", str(exc)) from None
            if not isinstance(new, dict):
                raise BadRequest("the patch result is not a JSON object")
            nmeta = new.get("metadata")
            if not isinstance(nmeta, dict):
                nmeta = new["metadata"] = {}
            if nmeta.get("name") != name:
                raise BadRequest(f"the name of the object ({nmeta.get('name')}) does not match the name on the URL "
                                 f"({name})")
            if r.namespaced and nmeta.get("namespace") != namespace:
                raise BadRequest("the namespace of the provided object does not match the namespace sent on the "
                                 "request")
            if nmeta.get("uid") != old["metadata"].get("uid"):
                raise conflict(r, name, f"Precondition failed: UID in precondition: {nmeta.get('uid')}, UID in "
                                        f"object meta: {old['metadata']['uid']}")
            prv = nmeta.get("resourceVersion")
            if prv and str(prv) != old["metadata"]["resourceVersion"]:
                raise conflict(r, name, STALE)
            if subresource == "status" and api:
                pass  # _write keeps everything but status
            return self._write(r, key, cur, new, subresource=subresource, api=api, dry_run=dry_run)

    # -- delete --------------------------------------------------------------------------------
    def delete(self, res: str, namespace: str | None, name: str, grace_period_seconds: int | None = None,
               propagation_policy: str | None = None, preconditions: dict | None = None, *,
               orphan_dependents: bool | None = None, dry_run: bool = False, api: bool = False
               ) -> tuple[dict, bool]:
        r = self._res(res)
        with self._lock:
            key = self._key(r, namespace, name)
            cur = self.get_entry(res, namespace, name)
            old = cur.obj
            om = old["metadata"]
            if preconditions is not None and not isinstance(preconditions, dict):
                raise BadRequest("json: cannot unmarshal into Go struct field DeleteOptions.preconditions of type "
                                 "v1.Preconditions")
            if grace_period_seconds is not None and (isinstance(grace_period_seconds, bool) or
                                                     not isinstance(grace_period_seconds, int)):
                raise BadRequest(f"json: cannot unmarshal {type(grace_period_seconds).__name__} into Go struct field "
                                 f"DeleteOptions.gracePeriodSeconds of type int64")
            if propagation_policy is not None and not isinstance(propagation_policy, str):
                raise BadRequest("json: cannot unmarshal into Go struct field DeleteOptions.propagationPolicy of "
                                 "type v1.DeletionPropagation")
            if preconditions:
                puid = preconditions.get("uid")
                if puid and puid != om.get("uid"):
                    raise conflict(r, name, f"Precondition failed: UID in precondition: {puid}, UID in object meta: "
                                            f"{om.get('uid')}")
                prv = preconditions.get("resourceVersion")
                if prv and str(prv) != om.get("resourceVersion"):
                    raise conflict(r, name, f"Precondition failed: ResourceVersion in precondition: {prv}, "
                                            f"ResourceVersion in object meta: {om.get('resourceVersion')}")
            if propagation_policy is None and orphan_dependents is not None:
                propagation_policy = "Orphan" if orphan_dependents else "Foreground"
            if propagation_policy not in (None, "Background", "Foreground", "Orphan"):
                raise Invalid(f"DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: "
                              f"\"{propagation_policy}\": supported values: \"Foreground\", \"Background\", "
                              f"\"Orphan\", \"nil\"",
                              {"kind": "DeleteOptions", "group": "meta.k8s.io",
                               "causes": [{"reason": "FieldValueNotSupported", "field": "propagationPolicy",
                                           "message": f"Unsupported value: \"{propagation_policy}\""}]})
            if grace_period_seconds is not None:
                grace_period_seconds = int(grace_period_seconds)
            # graceful deletion (only pods implement it; every other resource deletes with grace 0)
            grace = 0
            if res == "pods":
                spec, status = old.get("spec") or {}, old.get("status") or {}
                grace = grace_period_seconds if grace_period_seconds is not None else \
                    spec.get("terminationGracePeriodSeconds", 30)
                if grace is None:
                    grace = 30
                if not spec.get("nodeName"):
                    grace = 0
                if status.get("phase") in ("Succeeded", "Failed"):
                    grace = 0
                if grace < 0:
                    grace = 1
            finalizers = self._deletion_finalizers(om, propagation_policy)

            already = om.get("deletionTimestamp")
            fins_changed = finalizers != list(om.get("finalizers") or [])
            new = _jcopy(old)
            nm = new["metadata"]
            if already:
                cur_grace = om.get("deletionGracePeriodSeconds") or 0
                if res == "pods" and grace < cur_grace:  # a shorter grace period shortens the deletion
                    nm["deletionTimestamp"] = _iso(self.clock.now() + grace)
                    nm["deletionGracePeriodSeconds"] = grace
                elif not fins_changed:
                    return _jcopy(old), False
            else:
                nm["deletionTimestamp"] = _iso(self.clock.now() + grace)
                nm["deletionGracePeriodSeconds"] = grace
                if res == "namespaces":
                    new.setdefault("status", {})["phase"] = "Terminating"
            if finalizers:
                nm["finalizers"] = finalizers
            else:
                nm.pop("finalizers", None)
            if dry_run:
                return _jcopy(new if _pending(r, new) else old), False
            if not _pending(r, new):
                self._remove(r, key, new)
                return _jcopy(new), True
            new = _ordered(new)
            self._commit("MODIFIED", res, key, new, old, cur)
            self._run_gc_finalizers(r, key)
            if res == "namespaces":
                self._namespace_cleanup(name)
            e2 = self._data[res].get(key)
            if e2 is None:
                return _jcopy(new), True
            return _jcopy(e2.obj), False

    # -- helpers for the API server ------------------------------------------------------------
    def pdbs_for_pod(self, pod: dict) -> list[dict]:
        ns = pod["metadata"].get("namespace")
        out = []
        for e in self.list_entries("poddisruptionbudgets.policy", ns)[0]:
            # policy/v1: a null selector matches no pods, an empty one every pod of the namespace
            m = label_selector_from_dict((e.obj.get("spec") or {}).get("selector"))
            if m is not None and m(pod):
                out.append(e.obj)
        return out


def delete_kwargs(options: dict) -> dict:
    """The keyword arguments of ``Store.delete`` for the API's DeleteOptions (``gracePeriodSeconds``,
    ``propagationPolicy``, ``preconditions``, ``orphanDependents``, ``dryRun``), with the HTTP registry's
    strategy (``api=True``); the server has checked their types."""
    return {"grace_period_seconds": options.get("gracePeriodSeconds"),
            "propagation_policy": options.get("propagationPolicy"),
            "preconditions": options.get("preconditions"),
            "orphan_dependents": options.get("orphanDependents"),
            "dry_run": bool(options.get("dryRun")), "api": True}


def _jtype(v: Any) -> str:
    return {list: "array", str: "string", int: "number", float: "number", bool: "bool"}.get(type(v), "value")
