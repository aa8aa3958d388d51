"""The Kubernetes twin's object store: the apiserver's registry semantics over plain dicts.

The contract is STORE_API.md in this folder. Semantics follow
``staging/src/k8s.io/apiserver/pkg/registry/generic/registry/store.go`` and the per-resource
strategies in ``pkg/registry``; the reference is ``shared/reference/kubernetes-api.md``.

Design for scale (1,000 nodes, 30,000 pods):

* stored objects are never mutated in place: every write stores a new dict, so ``copy=False`` readers
  and the watch history can hold references without copying;
* each stored object caches its JSON serialisation (``Entry.raw``), computed once on first use, so a
  list over HTTP is a join of cached bytes;
* indexes by namespace and (pods) by ``spec.nodeName``; the uid index and owner -> dependents index
  make garbage collection cheap.

Thread-safety: every public method holds one re-entrant lock, so a test thread acting as a kubelet can
call ``store.delete`` while the API server's event loop serves requests. Subscribers and watchers are
called synchronously on the writing thread, with the lock held.

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
import itertools
import json
import logging
import random
import re
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from .patch import PatchError, json_merge, json_patch, strategic_merge
from .resources import RESOURCES, Resource, crd_object
from .selectors import SelectorError, label_selector_from_dict, parse_field_selector, parse_label_selector
from .structure import check as _structure_check

log = logging.getLogger(__name__)

__all__ = ["Store", "ApiError", "NotFound", "Conflict", "AlreadyExists", "Invalid", "BadRequest",
           "Forbidden", "Expired", "TooManyRequests", "UnsupportedMediaType", "MethodNotAllowed",
           "Entry", "WatchEvent"]

# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------

HTTP_REASONS = {200: "OK", 201: "Created", 202: "Accepted", 400: "Bad Request", 401: "Unauthorized",
                403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable",
                409: "Conflict", 410: "Gone", 415: "Unsupported Media Type", 422: "Unprocessable Entity",
                429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}


class ApiError(Exception):
    """An apiserver error; ``status()`` renders the ``Status`` object the API returns."""

    code = 500
    reason = "InternalError"

    def __init__(self, *args: Any, **kw: Any):
        """ApiError(code, reason, message, details=None); a subclass: Sub(message, details=None)."""
        if args and isinstance(args[0], int):
            names = ("code", "reason", "message", "details")
        else:
            names = ("message", "details")
        kw.update(zip(names, args))
        if kw.get("code") is not None:
            self.code = int(kw["code"])
        if kw.get("reason") is not None:
            self.reason = kw["reason"]
        self.message = kw.get("message") or ""
        self.details = kw.get("details")
        super().__init__(self.message)

    def status(self) -> dict:
        st: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                              "message": self.message, "reason": self.reason}
        if self.details is not None:
            st["details"] = self.details
        st["code"] = self.code
        return st

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code}, {self.reason!r}, {self.message!r})"


class BadRequest(ApiError):
    code, reason = 400, "BadRequest"


class Forbidden(ApiError):
    code, reason = 403, "Forbidden"


class NotFound(ApiError):
    code, reason = 404, "NotFound"


class MethodNotAllowed(ApiError):
    code, reason = 405, "MethodNotAllowed"


class Conflict(ApiError):
    code, reason = 409, "Conflict"


class AlreadyExists(ApiError):
    code, reason = 409, "AlreadyExists"


class Expired(ApiError):
    code, reason = 410, "Expired"


class UnsupportedMediaType(ApiError):
    code, reason = 415, "UnsupportedMediaType"


class Invalid(ApiError):
    code, reason = 422, "Invalid"


class TooManyRequests(ApiError):
    code, reason = 429, "TooManyRequests"


def _details(r: Resource, name: str, **extra: Any) -> dict:
    d: dict[str, Any] = {"name": name}
    if r.group:
        d["group"] = r.group
    d["kind"] = r.plural
    d.update(extra)
    return d


def not_found(r: Resource, name: str) -> NotFound:
    return NotFound(f"{r.qualified} \"{name}\" not found", _details(r, name))


def conflict(r: Resource, name: str, why: str) -> Conflict:
    return Conflict(f"Operation cannot be fulfilled on {r.qualified} \"{name}\": {why}", _details(r, name))


STALE = "the object has been modified; please apply your changes to the latest version and try again"


def invalid(r: Resource, name: str, causes: list[tuple[str, str, str]]) -> Invalid:
    """causes: (field, type, message) e.g. ("metadata.name", "FieldValueRequired", "Required value: ...")."""
    text = ", ".join(f"{f}: {m}" for f, _, m in causes)
    msg = f"{r.kind} \"{name}\" is invalid: {text}" if len(causes) == 1 else \
        f"{r.kind} \"{name}\" is invalid: [{text}]"
    det: dict[str, Any] = {"name": name}
    if r.group:
        det["group"] = r.group
    det["kind"] = r.kind
    det["causes"] = [{"reason": t, "message": m, "field": f} for f, t, m in causes]
    return Invalid(msg, det)


# ---------------------------------------------------------------------------------------------
# objects
# ---------------------------------------------------------------------------------------------

def _decodable(r: Resource, obj: Any) -> None:
    """400 for what typed JSON decoding rejects (a string where Go has a list, ...), before any write."""
    msg = _structure_check(r.key, r.kind, obj)
    if msg is not None:
        raise BadRequest(f"{r.kind} in version \"{r.version}\" cannot be handled as a {r.kind}: {msg}")


def _jcopy(v: Any) -> Any:
    """Deep copy of JSON-like data (faster than copy.deepcopy)."""
    if isinstance(v, dict):
        return {k: _jcopy(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_jcopy(x) for x in v]
    return v


class Entry:
    """One stored version of an object: the dict (never mutated) and its cached JSON bytes."""

    __slots__ = ("obj", "_raw")

    def __init__(self, obj: dict):
        self.obj = obj
        self._raw: bytes | None = None

    @property
    def raw(self) -> bytes:
        if self._raw is None:
            self._raw = json.dumps(self.obj, separators=(",", ":"), ensure_ascii=False).encode()
        return self._raw


@dataclass(slots=True)
class WatchEvent:
    rv: int
    type: str  # ADDED | MODIFIED | DELETED
    res: str
    entry: Entry
    old: Entry | None
    t: float = 0.0  # when it was written (history_clock, wall time by default)


_DNS1123_SUB = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SUB_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
            "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
            "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
_LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
              "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
              "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
_LABEL_NAMED = {"namespaces", "services"}
_GEN_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_TOP_ORDER = ("apiVersion", "kind", "metadata")

NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
_ZERO_STATUS = {
    "replicasets.apps": ("replicas",),
    "statefulsets.apps": ("replicas", "availableReplicas"),
    "daemonsets.apps": ("currentNumberScheduled", "numberMisscheduled", "desiredNumberScheduled", "numberReady"),
}
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def _ordered(obj: dict) -> dict:
    """apiVersion, kind, metadata, spec, <others>, status: the order the apiserver serialises in."""
    out = {k: obj[k] for k in _TOP_ORDER if k in obj}
    if "spec" in obj:
        out["spec"] = obj["spec"]
    for k, v in obj.items():
        if k not in out and k != "status":
            out[k] = v
    if "status" in obj:
        out["status"] = obj["status"]
    return out


class _Watcher:
    __slots__ = ("fn", "store", "active")

    def __init__(self, store: "Store", fn: Callable[[WatchEvent], None]):
        self.store, self.fn, self.active = store, fn, True

    def cancel(self) -> None:
        if self.active:
            self.active = False
            with self.store._lock:
                try:
                    self.store._watchers.remove(self)
                except ValueError:
                    pass


class Store:
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
        self._history: collections.deque[WatchEvent] = collections.deque()
        self._history_max = history
        self._history_seconds = history_seconds
        self._history_clock = history_clock
        self._compacted_rv = 0  # events with rv <= this are gone from the history
        self._subscribers: list[Callable[[str, str, dict], Any]] = []
        #: fn(res, obj) -> True when the stored bytes of obj were written with a transformer that is not the
        #: current first one (etcd3 store ``stale``): an unchanged update then still writes (k8s/atrest.py).
        self.stale_value: Callable[[str, dict], bool] | None = None
        self._watchers: list[_Watcher] = []
        self._rng = random.Random(seed)
        self.requests: collections.Counter = collections.Counter()
        self.errors: list[BaseException] = []
        if system_namespaces:  # the apiserver's system namespaces controller creates these at start
            for ns in SYSTEM_NAMESPACES:
                self.create("namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        for r in RESOURCES.values():  # Longhorn's CRDs, as its chart installs them
            if r.custom:
                self.create("customresourcedefinitions.apiextensions.k8s.io", crd_object(r))

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

    # -- subscriptions ---------------------------------------------------------------------------
    def subscribe(self, fn: Callable[[str, str, dict], Any]) -> Callable[[], None]:
        """fn(event_type, res, obj) after every write; returns a function that unsubscribes."""
        with self._lock:
            self._subscribers.append(fn)

        def unsubscribe() -> None:
            with self._lock:
                if fn in self._subscribers:
                    self._subscribers.remove(fn)
        return unsubscribe

    def add_watcher(self, fn: Callable[[WatchEvent], None]) -> _Watcher:
        """fn(WatchEvent) after every write (with the old version, for selector transitions)."""
        w = _Watcher(self, fn)
        with self._lock:
            self._watchers.append(w)
        return w

    def events_since(self, rv: int, res: str | None = None) -> list[WatchEvent]:
        """Events with resourceVersion > rv; Expired (410) when the history no longer reaches back."""
        with self._lock:
            if rv < self._compacted_rv:
                raise Expired(f"too old resource version: {rv} ({self._compacted_rv + 1})")
            if rv > self._rv:
                raise TooLargeResourceVersion(rv, self._rv)
            out = []
            for ev in reversed(self._history):
                if ev.rv <= rv:
                    break
                if res is None or ev.res == res:
                    out.append(ev)
            out.reverse()
            return out

    # -- writes: plumbing ------------------------------------------------------------------------
    def _next_rv(self) -> int:
        self._rv += 1
        return self._rv

    def _emit(self, etype: str, res: str, entry: Entry, old: Entry | None) -> None:
        now = self._history_clock()
        ev = WatchEvent(self._rv, etype, res, entry, old, now)
        self._history.append(ev)
        hist, horizon = self._history, now - self._history_seconds
        while len(hist) > self._history_max or (len(hist) > 1 and hist[0].t < horizon):
            dropped = hist.popleft()
            self._compacted_rv = dropped.rv
        for w in list(self._watchers):
            if w.active:
                try:
                    w.fn(ev)
                except Exception as exc:  # a broken watcher must not break the write
                    log.exception("watcher failed")
                    self.errors.append(exc)
        for fn in list(self._subscribers):
            try:
                fn(etype, res, entry.obj)
            except Exception as exc:
                log.exception("store subscriber failed")
                self.errors.append(exc)

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
        _decodable(r, obj)
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
            self._validate_meta(r, obj, name)
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
                self._reset_status_on_create(r, obj)
            self._defaults(r, obj, creating=True)
            if res == "pods":
                self._default_toleration_seconds(obj)
            obj = _ordered(obj)
            if dry_run:
                meta["resourceVersion"] = str(self._rv)
                return _jcopy(obj)
            meta["resourceVersion"] = str(self._next_rv())
            e = Entry(obj)
            self._data[res][key] = e
            self._index_add(res, key, obj, None)
            self._emit("ADDED", res, e, None)
            return _jcopy(obj)

    def _validate_meta(self, r: Resource, obj: dict, name: str) -> None:
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

    def _reset_status_on_create(self, r: Resource, obj: dict) -> None:
        if r.custom:
            obj.pop("status", None)
        elif r.plural == "pods":
            obj["status"] = {"phase": "Pending"}
        elif r.plural in ("nodes", "persistentvolumes", "persistentvolumeclaims", "namespaces",
                          "customresourcedefinitions"):
            pass  # their strategies keep (parts of) status on create
        else:
            obj["status"] = {}

    def _defaults(self, r: Resource, obj: dict, creating: bool) -> None:
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
            _pod_spec_defaults(spec)
            if creating:  # the Priority admission plugin
                spec.setdefault("priority", 0)
                spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
            st = obj.setdefault("status", {})
            st.setdefault("phase", "Pending")
            if creating:
                st.setdefault("qosClass", _qos_class(spec))
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
                _pod_spec_defaults(tmpl.setdefault("spec", {}))
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
                    self._allocate_service(obj)
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

    def _allocate_service(self, svc: dict) -> None:
        """The service IP and node port allocators (service CIDR 10.96.0.0/12, node ports 30000-32767);
        default/kubernetes gets the first address, as the apiserver reserves it."""
        spec = svc["spec"]
        if not spec.get("clusterIP"):
            used = {(e.obj.get("spec") or {}).get("clusterIP") for e in self._data["services"].values()}
            meta = svc["metadata"]
            if meta.get("namespace") == "default" and meta.get("name") == "kubernetes" and "10.96.0.1" not in used:
                ip = "10.96.0.1"
            else:
                while True:
                    n = self._rng.randrange(10, (1 << 20) - 1)  # a /12 has 2^20 addresses
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
            used_ports = {p.get("nodePort") for e in self._data["services"].values()
                          for p in (e.obj.get("spec") or {}).get("ports") or []}
            for p in spec.get("ports") or []:
                if isinstance(p, dict) and not p.get("nodePort"):
                    while True:
                        port = self._rng.randrange(30000, 32768)
                        if port not in used_ports:
                            break
                    p["nodePort"] = port
                    used_ports.add(port)

    @staticmethod
    def _default_toleration_seconds(pod: dict) -> None:
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

    # -- update --------------------------------------------------------------------------------
    def update(self, res: str, obj: dict, *, subresource: str | None = None, api: bool = False,
               dry_run: bool = False) -> dict:
        r = self._res(res)
        _decodable(r, obj)
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
            _decodable(r, new)
        if subresource == "status":
            status = new.get("status")
            if status is not None and not isinstance(status, dict):
                _decodable(r, {"status": status})
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
            self._defaults(r, new, creating=False)
            if api:
                self._validate_update(r, old, new)
            if r.generation and "generation" in om:
                if self._spec_changed(r, old, new):
                    nm["generation"] = om["generation"] + 1
        if subresource == "status":
            _decodable(r, new)
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
        nm["resourceVersion"] = str(self._next_rv())
        e = Entry(new)
        self._data[res][key] = e
        self._index_add(res, key, new, old)
        self._emit("MODIFIED", res, e, cur)
        return _jcopy(new)

    @staticmethod
    def _validate_update(r: Resource, old: dict, new: dict) -> None:
        """The immutability rules of the registry strategies' ValidateUpdate that clients run into."""
        name = old["metadata"]["name"]
        k = r.key
        if k == "pods":
            os_, ns_ = _jcopy(old.get("spec") or {}), _jcopy(new.get("spec") or {})
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

    @staticmethod
    def _spec_changed(r: Resource, old: dict, new: dict) -> bool:
        if r.custom:
            ignore = ("metadata", "status")
            return {k: v for k, v in old.items() if k not in ignore} != \
                {k: v for k, v in new.items() if k not in ignore}
        if old.get("spec") != new.get("spec"):
            return True
        if r.key == "deployments.apps":
            return (old["metadata"].get("annotations") or {}) != (new["metadata"].get("annotations") or {})
        return False

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
            cur = self._data[res].get(key)
            if cur is None:
                raise not_found(r, name)
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
            cur = self._data[res].get(key)
            if cur is None:
                raise not_found(r, name)
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
            finalizers = list(om.get("finalizers") or [])
            if propagation_policy == "Orphan" and "orphan" not in finalizers:
                finalizers.append("orphan")
                finalizers = [f for f in finalizers if f != "foregroundDeletion"]
            elif propagation_policy == "Foreground" and "foregroundDeletion" not in finalizers:
                finalizers.append("foregroundDeletion")
                finalizers = [f for f in finalizers if f != "orphan"]
            elif propagation_policy == "Background":
                finalizers = [f for f in finalizers if f not in ("orphan", "foregroundDeletion")]
            # Orphan and Foreground only mean work when there are dependents
            if "orphan" in finalizers and not self._dependents.get(om["uid"]) and "orphan" not in (om.get("finalizers") or []):
                finalizers.remove("orphan")
            if "foregroundDeletion" in finalizers and not self._dependents.get(om["uid"]) \
                    and "foregroundDeletion" not in (om.get("finalizers") or []):
                finalizers.remove("foregroundDeletion")

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
            nm["resourceVersion"] = str(self._next_rv())
            e = Entry(new)
            self._data[res][key] = e
            self._index_add(res, key, new, old)
            self._emit("MODIFIED", res, e, cur)
            self._run_gc_finalizers(r, key)
            if res == "namespaces":
                self._namespace_cleanup(name)
            e2 = self._data[res].get(key)
            if e2 is None:
                return _jcopy(new), True
            return _jcopy(e2.obj), False

    def _remove(self, r: Resource, key: tuple, final: dict) -> None:
        """Remove an object for good: DELETED event, then garbage collection of its dependents."""
        res = r.key
        cur = self._data[res].pop(key)
        final["metadata"]["resourceVersion"] = str(self._next_rv())
        final = _ordered(final)
        self._index_remove(res, key, cur.obj)
        e = Entry(final)
        self._emit("DELETED", res, e, cur)
        uid = final["metadata"].get("uid")
        # background GC of dependents (the garbage collector, done synchronously here)
        for dres, dns, dname in sorted(self._dependents.pop(uid, set()), key=lambda t: (t[0], t[1] or "", t[2])):
            de = self._data[dres].get((dns, dname))
            if de is None:
                continue
            refs = de.obj["metadata"].get("ownerReferences") or []
            others = [o for o in refs if o.get("uid") != uid and o.get("uid") in self._by_uid]
            if others:
                self._set_owner_refs(dres, (dns, dname), [o for o in refs if o.get("uid") != uid])
            else:
                try:
                    self.delete(dres, dns, dname, propagation_policy="Background")
                except ApiError:
                    pass
        # owners waiting in foreground deletion for this dependent
        for o in final["metadata"].get("ownerReferences") or []:
            loc = self._by_uid.get(o.get("uid"))
            if loc:
                self._run_gc_finalizers(RESOURCES[loc[0]], (loc[1], loc[2]))
        if r.namespaced and key[0] is not None:
            nse = self._data["namespaces"].get((None, key[0]))
            if nse is not None and nse.obj["metadata"].get("deletionTimestamp"):
                self._namespace_cleanup(key[0])

    def _set_owner_refs(self, res: str, key: tuple, refs: list) -> None:
        cur = self._data[res][key]
        new = _jcopy(cur.obj)
        if refs:
            new["metadata"]["ownerReferences"] = refs
        else:
            new["metadata"].pop("ownerReferences", None)
        self._write(RESOURCES[res], key, cur, new, subresource=None, api=False)

    def _run_gc_finalizers(self, r: Resource, key: tuple) -> None:
        """The garbage collector's part for an owner being deleted with Orphan or Foreground."""
        e = self._data[r.key].get(key)
        if e is None or not e.obj["metadata"].get("deletionTimestamp"):
            return
        om = e.obj["metadata"]
        fins = om.get("finalizers") or []
        uid = om["uid"]
        if "orphan" in fins:
            for dres, dns, dname in sorted(self._dependents.get(uid, set()), key=lambda t: (t[0], t[1] or "", t[2])):
                de = self._data[dres].get((dns, dname))
                if de is not None:
                    refs = [o for o in de.obj["metadata"].get("ownerReferences") or [] if o.get("uid") != uid]
                    self._set_owner_refs(dres, (dns, dname), refs)
            self._drop_finalizer(r, key, "orphan")
            return
        if "foregroundDeletion" in fins:
            deps = sorted(self._dependents.get(uid, set()), key=lambda t: (t[0], t[1] or "", t[2]))
            for dres, dns, dname in deps:
                de = self._data[dres].get((dns, dname))
                if de is not None and not de.obj["metadata"].get("deletionTimestamp"):
                    try:
                        self.delete(dres, dns, dname, propagation_policy="Foreground")
                    except ApiError:
                        pass
            e = self._data[r.key].get(key)
            if e is None:
                return
            blocking = False
            for dres, dns, dname in self._dependents.get(uid, set()):
                de = self._data[dres].get((dns, dname))
                if de is None:
                    continue
                for o in de.obj["metadata"].get("ownerReferences") or []:
                    if o.get("uid") == uid and o.get("blockOwnerDeletion"):
                        blocking = True
            if not blocking:
                self._drop_finalizer(r, key, "foregroundDeletion")

    def _drop_finalizer(self, r: Resource, key: tuple, fin: str) -> None:
        cur = self._data[r.key].get(key)
        if cur is None:
            return
        new = _jcopy(cur.obj)
        new["metadata"]["finalizers"] = [f for f in new["metadata"].get("finalizers") or [] if f != fin]
        if not new["metadata"]["finalizers"]:
            del new["metadata"]["finalizers"]
        self._write(r, key, cur, new, subresource=None, api=False)

    def _namespace_cleanup(self, ns: str) -> None:
        """The namespace controller: delete the contents of a terminating namespace, then the namespace."""
        nse = self._data["namespaces"].get((None, ns))
        if nse is None or not nse.obj["metadata"].get("deletionTimestamp"):
            return
        if (nse.obj.get("status") or {}).get("phase") != "Terminating":
            new = _jcopy(nse.obj)
            new.setdefault("status", {})["phase"] = "Terminating"
            self._write(RESOURCES["namespaces"], (None, ns), nse, new, subresource=None, api=False)
        if getattr(self, "_ns_cleaning", None) == ns:
            pass
        else:
            self._ns_cleaning = ns
            try:
                for res, r in RESOURCES.items():
                    if not r.namespaced:
                        continue
                    for key in sorted(self._by_ns[res].get(ns, set()), key=_sort_key):
                        e = self._data[res].get(key)
                        if e is not None and not e.obj["metadata"].get("deletionTimestamp"):
                            try:
                                self.delete(res, ns, key[1])
                            except ApiError:
                                pass
            finally:
                self._ns_cleaning = None
        if any(self._by_ns[res].get(ns) for res, r in RESOURCES.items() if r.namespaced):
            return
        nse = self._data["namespaces"].get((None, ns))
        if nse is None:
            return
        new = _jcopy(nse.obj)
        new.get("spec", {}).pop("finalizers", None)
        if not new["metadata"].get("finalizers"):
            self._remove(RESOURCES["namespaces"], (None, ns), new)

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


class TooLargeResourceVersion(ApiError):
    """The apiserver's "Too large resource version" (a watch or list from the future)."""

    code, reason = 504, "Timeout"

    def __init__(self, rv: int, current: int):
        super().__init__(f"Too large resource version: {rv}, current: {current}",
                         {"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
                          "retryAfterSeconds": 1})


def _pending(r: Resource, obj: dict) -> bool:
    """Whether an object with a deletionTimestamp must stay: finalizers or a graceful pod deletion."""
    meta = obj["metadata"]
    if meta.get("finalizers"):
        return True
    if (meta.get("deletionGracePeriodSeconds") or 0) > 0:
        return True
    if r.key == "namespaces" and (obj.get("spec") or {}).get("finalizers"):
        return True
    return False


def _qos_class(spec: dict) -> str:
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


def _pod_spec_defaults(spec: dict) -> None:
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


def _sort_key(k: tuple[str | None, str]) -> tuple[str, str]:
    return (k[0] or "", k[1])


def _iso(ts: float) -> str:
    import datetime as _dt

    return _dt.datetime.fromtimestamp(ts, tz=_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _jtype(v: Any) -> str:
    return {list: "array", str: "string", int: "number", float: "number", bool: "bool"}.get(type(v), "value")


def iter_chunks(entries: Iterable[Entry]) -> Iterable[bytes]:
    for e in entries:
        yield e.raw
