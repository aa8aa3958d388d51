"""Garbage collection and finalizers: what happens to an object after a delete.

The garbage collector and the namespace controller run upstream as controllers acting within
seconds; the twin runs them synchronously inside the delete (or the write that removes the last
finalizer), in the store's transaction:

* ``_deletion_finalizers``: the finalizers a delete with a propagation policy leaves
  (``orphan`` / ``foregroundDeletion`` only when the object has dependents);
* ``_remove``: an object goes for good (DELETED event); Background GC of its dependents, owners
  waiting in foreground deletion re-checked, a terminating namespace re-checked;
* ``_run_gc_finalizers``: Orphan (strip the ownerReferences, drop ``orphan``) and Foreground
  (delete the dependents, drop ``foregroundDeletion`` once none blocks);
* ``_namespace_cleanup``: delete a terminating namespace's contents, then the namespace.

``GarbageCollection`` is a mixin of ``Store`` (``store.py``): it works on the store's data and
indexes (``_data``, ``_by_ns``, ``_by_uid``, ``_dependents``) and writes through the store's own
``_write``, ``delete``, ``_next_rv``, ``_index_remove`` and ``_emit``.
"""

from __future__ import annotations

from .errors import ApiError
from .objects import Entry, jcopy as _jcopy, ordered as _ordered, sort_key as _sort_key
from .resources import RESOURCES, Resource

__all__ = ["GarbageCollection", "pending"]


def pending(r: Resource, obj: dict) -> bool:
    """Whether an object with a deletionTimestamp must stay: finalizers or a graceful pod deletion."""
    meta = obj["metadata"]
    if meta.get("finalizers"):
        return True
    if (meta.get("deletionGracePeriodSeconds") or 0) > 0:
        return True
    if r.key == "namespaces" and (obj.get("spec") or {}).get("finalizers"):
        return True
    return False


class GarbageCollection:
    """Owner references, the GC finalizers and namespace cleanup (a mixin of ``Store``)."""

    _data: dict[str, dict[tuple[str | None, str], Entry]]
    _by_ns: dict[str, dict[str | None, set[tuple[str | None, str]]]]
    _by_uid: dict[str, tuple[str, str | None, str]]
    _dependents: dict[str, set[tuple[str, str | None, str]]]

    def _deletion_finalizers(self, om: dict, propagation_policy: str | None) -> list[str]:
        """The finalizers of an object deleted now with this propagation policy (om: its metadata)."""
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
        return finalizers

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
