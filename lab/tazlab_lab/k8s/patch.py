"""Patches as the apiserver applies them: strategic merge (k8s.io/apimachinery/pkg/util/strategicpatch),
JSON merge patch (RFC 7386) and JSON patch (RFC 6902).

Strategic merge needs each list's patch strategy; upstream reads it from Go struct tags. The table here
holds the tags of the fields this project's resources carry (``patchStrategy:"merge"`` with
``patchMergeKey``); every other list is replaced whole (node ``spec.taints``, Endpoints ``subsets``,
EndpointSlice ``endpoints``, tolerations, containerStatuses, ...).
"""

from __future__ import annotations

import copy
from typing import Any

SET = object()  # a list of primitives merged as a set (metadata.finalizers)


class PatchError(Exception):
    """A patch that cannot be applied; ``code`` is the HTTP status the apiserver answers with."""

    def __init__(self, message: str, code: int = 422):
        super().__init__(message)
        self.code = code


_POD_SPEC_LISTS = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name",
    "volumes": "name", "imagePullSecrets": "name", "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey", "resourceClaims": "name",
}
_CONTAINER_LISTS = {"env": "name", "ports": "containerPort", "volumeMounts": "mountPath",
                    "volumeDevices": "devicePath", "resizePolicy": "resourceName"}


def merge_strategy(kind: str, path: tuple[str, ...]) -> Any:
    """The patch strategy of the list at ``path`` in an object of ``kind``: a merge key, SET, or None."""
    if not path:
        return None
    last = path[-1]
    if path == ("metadata", "ownerReferences"):
        return "uid"
    if path == ("metadata", "finalizers"):
        return SET
    if len(path) >= 2 and path[-2] == "status" and last == "conditions":
        return "type"
    if kind == "Node" and path == ("status", "addresses"):
        return "type"
    if kind == "Pod" and path in (("status", "podIPs"),):
        return "ip"
    if kind == "Service" and path == ("spec", "ports"):
        return "port"
    # pod specs: Pod.spec, and *.spec.template.spec of workloads
    if len(path) >= 2 and path[-2] == "spec" and last in _POD_SPEC_LISTS:
        if kind == "Pod" and len(path) == 2 or path[:-1] in (("spec", "template", "spec"),
                                                             ("spec", "jobTemplate", "spec", "template", "spec")):
            return _POD_SPEC_LISTS[last]
    if len(path) >= 2 and path[-2] in ("containers", "initContainers", "ephemeralContainers") \
            and last in _CONTAINER_LISTS and "spec" in path:
        return _CONTAINER_LISTS[last]
    return None


# ---------------------------------------------------------------------------------------------
# strategic merge patch
# ---------------------------------------------------------------------------------------------

def strategic_merge(original: dict, patch: dict, kind: str) -> dict:
    if not isinstance(patch, dict):
        raise PatchError("unable to find api field in struct %s for the json field" % kind, 400)
    out = _smp_map(copy.deepcopy(original), patch, kind, ())
    if out is None:
        raise PatchError("the patch deletes the whole object", 422)
    return out


def _strip_directives(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _strip_directives(x) for k, x in v.items()
                if not (k.startswith("$setElementOrder/") or k.startswith("$deleteFromPrimitiveList/")
                        or k in ("$patch", "$retainKeys"))}
    if isinstance(v, list):
        return [_strip_directives(x) for x in v if not (isinstance(x, dict) and x.get("$patch") == "delete")]
    return v


def _smp_map(orig: Any, patch: dict, kind: str, path: tuple[str, ...]) -> Any:
    directive = patch.get("$patch")
    if directive == "delete":
        return None
    if directive == "replace":
        return _strip_directives({k: v for k, v in patch.items() if k != "$patch"})
    if directive is not None and directive != "merge":
        raise PatchError(f"Unknown patch type: {directive} in map: {patch}", 422)
    if not isinstance(orig, dict):
        orig = {}
    retain = patch.get("$retainKeys")
    for key, pv in patch.items():
        if key in ("$patch", "$retainKeys") or key.startswith("$setElementOrder/"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            fld = key.split("/", 1)[1]
            if isinstance(orig.get(fld), list) and isinstance(pv, list):
                orig[fld] = [x for x in orig[fld] if x not in pv]
            continue
        sub = path + (key,)
        if pv is None:
            orig.pop(key, None)
        elif isinstance(pv, dict):
            merged = _smp_map(orig.get(key), pv, kind, sub)
            if merged is None:
                orig.pop(key, None)
            else:
                orig[key] = merged
        elif isinstance(pv, list):
            orig[key] = _smp_list(orig.get(key), pv, kind, sub)
        else:
            orig[key] = pv
    if isinstance(retain, list):
        for key in list(orig):
            if key not in retain:
                del orig[key]
    return orig


def _smp_list(orig: Any, patch: list, kind: str, path: tuple[str, ...]) -> list:
    strategy = merge_strategy(kind, path)
    if not isinstance(orig, list):
        orig = []
    # a list-level {"$patch": "replace"} replaces the list with the other items
    if any(isinstance(x, dict) and x.get("$patch") == "replace" for x in patch):
        return _strip_directives([x for x in patch if not (isinstance(x, dict) and x.get("$patch") == "replace")])
    if strategy is None:
        return _strip_directives(patch)
    if strategy is SET:
        out = list(orig)
        for x in patch:
            if x not in out:
                out.append(x)
        return out
    key = strategy
    out = list(orig)
    for item in patch:
        if not isinstance(item, dict):
            raise PatchError(f"unable to find api field in struct for the json field; list item {item!r} "
                             f"of {'.'.join(path)} is not an object", 422)
        if key not in item:
            if item.get("$patch") == "delete":
                continue
            raise PatchError(f"map: {item} does not contain declared merge key: {key}", 422)
        idx = next((i for i, o in enumerate(out) if isinstance(o, dict) and o.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if idx is not None:
                del out[idx]
            continue
        if idx is None:
            out.append(_strip_directives(item))
        else:
            merged = _smp_map(out[idx], item, kind, path)
            if merged is None:
                del out[idx]
            else:
                out[idx] = merged
    return out


# ---------------------------------------------------------------------------------------------
# JSON merge patch, RFC 7386
# ---------------------------------------------------------------------------------------------

def json_merge(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        elif isinstance(v, dict):
            result[k] = json_merge(result.get(k), v)
        else:
            result[k] = copy.deepcopy(v)
    return result


# ---------------------------------------------------------------------------------------------
# JSON patch, RFC 6902 (with RFC 6901 pointers)
# ---------------------------------------------------------------------------------------------

def _pointer(ptr: str) -> list[str]:
    if ptr == "":
        return []
    if not ptr.startswith("/"):
        raise PatchError(f"JSON pointer must be empty or start with a \"/\": {ptr!r}", 422)
    return [p.replace("~1", "/").replace("~0", "~") for p in ptr[1:].split("/")]


def _walk(doc: Any, parts: list[str], op: str, ptr: str) -> Any:
    cur = doc
    for p in parts:
        if isinstance(cur, dict):
            if p not in cur:
                raise PatchError(f"{op} operation does not apply: doc is missing path: \"{ptr}\"")
            cur = cur[p]
        elif isinstance(cur, list):
            try:
                i = int(p)
            except ValueError:
                raise PatchError(f"{op} operation does not apply: doc is missing path: \"{ptr}\"") from None
            if not 0 <= i < len(cur):
                raise PatchError(f"{op} operation does not apply: doc is missing path: \"{ptr}\"")
            cur = cur[i]
        else:
            raise PatchError(f"{op} operation does not apply: doc is missing path: \"{ptr}\"")
    return cur


def _get(doc: Any, ptr: str, op: str) -> Any:
    return _walk(doc, _pointer(ptr), op, ptr)


def _remove(doc: Any, ptr: str, op: str) -> Any:
    parts = _pointer(ptr)
    if not parts:
        raise PatchError(f"{op} operation does not apply: cannot remove the document root")
    parent = _walk(doc, parts[:-1], op, ptr)
    last = parts[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"Unable to remove nonexistent key: {last}: missing value")
        return parent.pop(last)
    if isinstance(parent, list):
        try:
            i = int(last)
        except ValueError:
            raise PatchError(f"{op} operation does not apply: doc is missing path: \"{ptr}\"") from None
        if not 0 <= i < len(parent):
            raise PatchError(f"Unable to access invalid index: {i}: invalid index referenced")
        return parent.pop(i)
    raise PatchError(f"{op} operation does not apply: doc is missing path: \"{ptr}\"")


def _add(doc: Any, ptr: str, value: Any, op: str, replace: bool = False) -> Any:
    parts = _pointer(ptr)
    if not parts:
        return value
    parent = _walk(doc, parts[:-1], op, ptr)
    last = parts[-1]
    if isinstance(parent, dict):
        if replace and last not in parent:
            raise PatchError(f"replace operation does not apply: doc is missing key: {ptr}: missing value")
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-" and not replace:
            parent.append(value)
        else:
            try:
                i = int(last)
            except ValueError:
                raise PatchError(f"{op} operation does not apply: doc is missing path: \"{ptr}\"") from None
            if replace:
                if not 0 <= i < len(parent):
                    raise PatchError(f"replace operation does not apply: doc is missing key: {ptr}: missing value")
                parent[i] = value
            else:
                if not 0 <= i <= len(parent):
                    raise PatchError(f"Unable to access invalid index: {i}: invalid index referenced")
                parent.insert(i, value)
    else:
        raise PatchError(f"{op} operation does not apply: doc is missing path: \"{ptr}\"")
    return doc


def json_patch(doc: Any, ops: Any) -> Any:
    if not isinstance(ops, list):
        raise PatchError("json: cannot unmarshal object into Go value of type jsonpatch.Patch", 400)
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op:
            raise PatchError("Unexpected kind: ", 422)
        kind = op["op"]
        path = op.get("path")
        if not isinstance(path, str):
            raise PatchError(f"{kind} operation does not apply: doc is missing path: \"\"")
        if kind == "add":
            if "value" not in op:
                raise PatchError("add operation does not apply: missing value")
            doc = _add(doc, path, copy.deepcopy(op["value"]), "add")
        elif kind == "remove":
            _remove(doc, path, "remove")
        elif kind == "replace":
            if "value" not in op:
                raise PatchError("replace operation does not apply: missing value")
            doc = _add(doc, path, copy.deepcopy(op["value"]), "replace", replace=True)
        elif kind == "move":
            frm = op.get("from", "")
            val = _remove(doc, frm, "move")
            doc = _add(doc, path, val, "move")
        elif kind == "copy":
            frm = op.get("from", "")
            val = copy.deepcopy(_get(doc, frm, "copy"))
            doc = _add(doc, path, val, "copy")
        elif kind == "test":
            try:
                have = _get(doc, path, "test")
            except PatchError:
                have = None
            if have != op.get("value"):
                raise PatchError(f"testing value {path} failed: test failed")
        else:
            raise PatchError(f"Unexpected kind: {kind}", 422)
    return doc
