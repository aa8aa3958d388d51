# -*- coding: utf-8 -*-
# Copyright: contributors to tazlab.resilience
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Client-side Talos machine-config patching and the reboot rule (talos.md, "Machine config").

Patching is client-side: read the current config, patch it here, apply the whole config. The result is
what ``talosctl patch`` gives for the same patch (``pkg/machinery/config/merge``, ``configpatcher``,
``configloader/internal/decoder/delete.go``):

* Strategic merge: a zero value in the patch (null, ``""``, ``0``) leaves the config alone, ``false`` is
  merged; maps merge key by key; lists append, except ``interfaces`` (merged on ``interface``, else
  ``deviceSelector``), ``vlans`` (``vlanId``) and ``admissionControl`` (``name``); ``podSubnets`` /
  ``serviceSubnets`` and ``auditPolicy`` are replaced whole; ``extraArgs`` maps take each key's value from
  the patch. Typed documents match on apiVersion+kind+name (unmatched ones are appended).
  One deliberate difference: an item that is already in a plain list is not appended again, so
  re-applying a patch to the patched config is a no-op (Talos would append a duplicate).
* ``$patch: delete`` is applied before the merge: on a map key it removes the key (an error when a
  parent is missing), on a list item it removes the first item whose *first* key (a string) has that
  value, on a typed document it removes the document. On an inner key of a list item it is rejected
  ("cannot delete an inner key"), as Talos rejects it.
* JSON6902 (a list of ``op`` dicts, applied with the ``jsonpatch`` library) works only on a
  single-document v1alpha1 config.
* YAML is read as YAML 1.2 (only true/false are booleans: ``on``, ``yes``, ``no`` stay strings).
* :func:`needs_reboot`: ``Runtime.CanApplyImmediate`` (Talos 1.9-1.13); from 1.14 every change applies
  without a reboot. The node's own dry-run answer, where available, wins (talos/node.py).
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import re

from ansible_collections.tazlab.resilience.plugins.module_utils.talos.errors import TalosPatchError

try:
    import yaml
except ImportError:  # pragma: no cover - PyYAML ships with ansible-core
    HAS_YAML = False
else:
    HAS_YAML = True

try:
    import jsonpatch
    import jsonpointer
except ImportError:
    HAS_JSONPATCH = False
    JSONPATCH_IMPORT_ERROR = 'jsonpatch'
else:
    HAS_JSONPATCH = True
    JSONPATCH_IMPORT_ERROR = None

DELETE = "$patch"
# List fields Talos merges item by item on a key (NetworkDeviceList, VlanList, AdmissionPluginConfigList).
KEYED_LISTS = {"interfaces": ("interface", "deviceSelector"), "vlans": ("vlanId",), "admissionControl": ("name",)}
# Fields tagged merge:"replace" (v1alpha1_types.go): the patch's value replaces the config's.
REPLACED = {"podSubnets", "serviceSubnets", "auditPolicy"}
# meta.Args: maps.Copy of the patch's keys (a list value replaces, it is not appended).
ARGS_MAPS = {"extraArgs"}
# Runtime.CanApplyImmediate (v1.9.6 .. v1.13.9): fields copied from the running config before the compare.
IMMEDIATE_TOP = ("debug", "cluster")
IMMEDIATE_MACHINE = ("ca", "acceptedCAs", "time", "certSANs", "install", "network", "sysfs", "sysctls", "logging",
                     "controlPlane", "kubelet", "kernel", "registries", "pods", "seccompProfiles",
                     "nodeAnnotations", "nodeLabels", "nodeTaints")
IMMEDIATE_FEATURES = ("kubernetesTalosAPIAccess", "kubePrism", "hostDNS", "imageCache", "nodeAddressSortAlgorithm")
NO_REBOOT_RULE_FROM = (1, 14)   # 1.14 removed CanApplyImmediate: every change applies without a reboot


# -- YAML 1.2 -------------------------------------------------------------------------------------
if HAS_YAML:
    class Yaml12Loader(yaml.SafeLoader):
        """SafeLoader with the YAML 1.2 core schema booleans (PyYAML resolves YAML 1.1 yes/no/on/off)."""

    Yaml12Loader.yaml_implicit_resolvers = dict(
        (ch, [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"])
        for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items())
    Yaml12Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                       list("tTfF"))


def _load_all(text):
    return [d for d in yaml.load_all(text, Loader=Yaml12Loader) if d is not None]


# -- documents ------------------------------------------------------------------------------------
def load_documents(text):
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    try:
        docs = _load_all(text)
    except yaml.YAMLError as exc:
        raise TalosPatchError("invalid machine config YAML: %s" % exc)
    for d in docs:
        if not isinstance(d, dict):
            raise TalosPatchError("every machine config document must be a mapping")
    return docs


def dump_documents(docs):
    # SafeDumper quotes every string a YAML 1.1 reader would take for a bool ('on', 'yes'), so both read it back.
    return "---\n".join(yaml.safe_dump(d, sort_keys=False, default_flow_style=False) for d in docs)


def is_v1alpha1(doc):
    """The v1alpha1 document (or a patch of it): no kind/apiVersion (typed documents have both)."""
    return "kind" not in doc and "apiVersion" not in doc


def doc_key(doc):
    """Identity of a typed document: (apiVersion, kind, name)."""
    return doc.get("apiVersion"), doc.get("kind"), doc.get("name")


def _is_delete(value):
    return isinstance(value, dict) and value.get(DELETE) == "delete"


# -- $patch: delete (taken out of the patch and applied first) -------------------------------------
def _path_text(path):
    return ".".join(path)


def _extract(value, path, in_list, found):
    """Collect the delete selectors in ``value`` into ``found``.

    Returns (what is left of ``value``, drop): a delete marker, and a mapping or list that only held
    delete markers, are dropped from the patch (Talos removes those nodes before it merges)."""
    if isinstance(value, dict):
        if _is_delete(value):
            if in_list:
                first = next(((k, v) for k, v in value.items() if k != DELETE), None)
                if first is None:
                    raise TalosPatchError("no key:val found in sequence node for path %s" % _path_text(path))
                found.append(("item", path[:-1], first[0], first[1]))
            else:
                if any(p.startswith("[") for p in path):
                    raise TalosPatchError("cannot delete an inner key in '%s'" % _path_text(path))
                found.append(("key", path, None, None))
            return None, True
        out, dropped = {}, False
        for k, v in value.items():
            kept, drop = _extract(v, path + [str(k)], False, found)
            if drop:
                dropped = True
            else:
                out[k] = kept
        return out, bool(dropped and not out)
    if isinstance(value, list):
        out, dropped = [], False
        for i, item in enumerate(value):
            kept, drop = _extract(item, path + ["[%d]" % i], True, found)
            if drop:
                dropped = True
            else:
                out.append(kept)
        return out, bool(dropped and not out)
    return value, False


def _lookup_failed(path):
    return TalosPatchError("patch delete: path '%s': lookup failed" % _path_text(path))


def _apply_selector(doc, selector):
    kind, path, key, value = selector
    parent_path = path[:-1] if kind == "key" else path
    cur = doc
    for p in parent_path:
        if not isinstance(cur, dict) or not isinstance(cur.get(p), (dict, list)):
            raise _lookup_failed(path)
        cur = cur[p]
    if kind == "key":
        if not isinstance(cur, dict):
            raise _lookup_failed(path)
        cur.pop(path[-1], None)
        return
    if not isinstance(cur, list):
        raise _lookup_failed(path)
    for i, item in enumerate(cur):
        # Talos compares the item's field as a string: only string fields can select an item.
        if isinstance(item, dict) and isinstance(item.get(key), str) and item[key] == value:
            del cur[i]
            return
    raise TalosPatchError("patch delete: path '%s' (%s: %s): lookup failed" % (_path_text(path), key, value))


# -- strategic merge ------------------------------------------------------------------------------
def _zero(value):
    """Talos skips zero values of the patch (null, empty string, 0); false is merged."""
    if value is None:
        return True
    if isinstance(value, bool):
        return False
    return isinstance(value, (str, int, float)) and not value


def _same_item(key_names, a, b):
    for k in key_names:
        if isinstance(b, dict) and b.get(k) not in (None, ""):
            return isinstance(a, dict) and a.get(k) == b.get(k)
    return False


def _merge_list(name, left, right):
    if name in REPLACED:
        return copy.deepcopy(right)
    out = list(left or [])
    keys = KEYED_LISTS.get(name)
    for item in right:
        if keys:
            idx = next((i for i, cur in enumerate(out) if _same_item(keys, cur, item)), None)
            if idx is not None:
                out[idx] = _merge_value(None, out[idx], item)
                continue
        elif item in out:
            continue   # see the module docstring: no duplicate of an item already there
        out.append(copy.deepcopy(item))
    return out


def _merge_value(name, left, right):
    if _zero(right):
        return copy.deepcopy(left)
    if left is None:
        return copy.deepcopy(right)
    if isinstance(right, dict):
        if not isinstance(left, dict):
            raise TalosPatchError("merge type mismatch at %s: %s in the config, a mapping in the patch"
                                  % (name, type(left).__name__))
        if name in REPLACED:
            return copy.deepcopy(right)
        out = copy.deepcopy(left)
        for k, v in right.items():
            if name in ARGS_MAPS:
                out[k] = copy.deepcopy(v)
            else:
                out[k] = _merge_value(k, out.get(k), v)
                if out[k] is None:
                    out.pop(k)
        return out
    if isinstance(right, list):
        if not isinstance(left, list):
            raise TalosPatchError("merge type mismatch at %s: %s in the config, a list in the patch"
                                  % (name, type(left).__name__))
        return _merge_list(name, left, right)
    if isinstance(left, (dict, list)):
        raise TalosPatchError("merge type mismatch at %s: %s in the config, a scalar in the patch"
                              % (name, type(left).__name__))
    return copy.deepcopy(right)


def merge(dst, src, name=None):
    """Talos strategic merge of ``src`` (without delete markers) into a copy of ``dst``."""
    out = _merge_value(name, dst, src)
    return {} if out is None and isinstance(src, dict) else out


def strategic_merge(docs, patch_docs):
    docs = copy.deepcopy(docs)
    for patch in patch_docs:
        if not isinstance(patch, dict):
            raise TalosPatchError("a strategic merge patch document must be a mapping")
        v1 = is_v1alpha1(patch)
        if not v1 and not (patch.get("kind") and patch.get("apiVersion")):
            raise TalosPatchError("kind and apiVersion must be both set in a typed patch document: %r" % (patch,))
        if v1:
            idx = next((i for i, d in enumerate(docs) if is_v1alpha1(d)), None)
        else:
            idx = next((i for i, d in enumerate(docs) if not is_v1alpha1(d) and doc_key(d) == doc_key(patch)), None)
        if _is_delete(patch):
            if v1:
                raise TalosPatchError("can't delete the root of the legacy document")
            if idx is not None:   # a delete of a missing document is skipped, as Talos does
                docs.pop(idx)
            continue
        selectors = []
        ident = dict((k, patch[k]) for k in ("apiVersion", "kind", "name") if k in patch)
        body = dict((k, v) for k, v in patch.items() if k not in ident)
        rest, dummy = _extract(body, [], False, selectors)
        rest = rest or {}
        if idx is None:
            if selectors and not rest:
                continue
            target = dict(ident)
            docs.append(target)
            idx = len(docs) - 1
        for sel in selectors:
            _apply_selector(docs[idx], sel)
        if rest:
            docs[idx] = merge(docs[idx], rest)
    return docs


# -- JSON6902 -------------------------------------------------------------------------------------
def json6902(docs, ops):
    if not HAS_JSONPATCH:
        raise TalosPatchError("JSON6902 patches need the Python library jsonpatch (pip install jsonpatch)")
    if len(docs) != 1 or not is_v1alpha1(docs[0]):
        raise TalosPatchError("JSON6902 patches work only on a single-document v1alpha1 config "
                              "(this config has %d documents); use a strategic merge patch" % len(docs))
    try:
        result = jsonpatch.JsonPatch(list(ops)).apply(copy.deepcopy(docs[0]), in_place=False)
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
        raise TalosPatchError("JSON6902 patch failed: %s" % exc)
    except (TypeError, KeyError, AttributeError) as exc:
        raise TalosPatchError("invalid JSON6902 operation: %s" % exc)
    if not isinstance(result, dict):
        raise TalosPatchError("the JSON6902 patch did not leave a mapping")
    return [result]


# -- entry points ---------------------------------------------------------------------------------
def parse_patch(patch):
    """A patch given as YAML text, a dict, a list of ops or a list of documents -> ('json6902'|'strategic', value)."""
    if isinstance(patch, (str, bytes)):
        text = patch.decode("utf-8") if isinstance(patch, bytes) else patch
        try:
            loaded = _load_all(text)
        except yaml.YAMLError as exc:
            raise TalosPatchError("invalid patch YAML: %s" % exc)
        if len(loaded) == 1 and isinstance(loaded[0], list):
            patch = loaded[0]
        else:
            patch = loaded
    if isinstance(patch, dict):
        return "strategic", [patch]
    if isinstance(patch, list) and patch and all(isinstance(p, dict) and "op" in p and "path" in p for p in patch):
        return "json6902", patch
    if isinstance(patch, list) and all(isinstance(p, dict) for p in patch):
        return "strategic", patch
    raise TalosPatchError("a patch is a mapping, a list of documents or a list of JSON6902 operations")


def apply_patches(config, patches):
    """Patch the config (YAML text or documents); returns the list of documents."""
    docs = load_documents(config) if isinstance(config, (str, bytes)) else copy.deepcopy(config)
    for patch in patches or []:
        kind, value = parse_patch(patch)
        docs = json6902(docs, value) if kind == "json6902" else strategic_merge(docs, value)
    if not any(is_v1alpha1(d) for d in docs):
        raise TalosPatchError("the patched config has no v1alpha1 document")
    return docs


# -- the reboot rule ------------------------------------------------------------------------------
def parse_version(tag):
    """'v1.13.9' -> (1, 13, 9); None when it is not a Talos version tag."""
    m = re.match(r"^v?(\d+)\.(\d+)(?:\.(\d+))?", str(tag or "").strip())
    if not m:
        return None
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def _take_running(keys, running, out):
    """``out``'s ``keys`` set as they are in ``running`` (absent there, absent in ``out``)."""
    for key in keys:
        if key in running:
            out[key] = copy.deepcopy(running[key])
        else:
            out.pop(key, None)


def _immediate_view(running, new):
    """``new`` with the immediately applicable fields taken from ``running`` (CanApplyImmediate)."""
    out = copy.deepcopy(new or {})
    running = running or {}
    _take_running(IMMEDIATE_TOP, running, out)
    old_m, new_m = running.get("machine"), out.get("machine")
    if isinstance(old_m, dict) and isinstance(new_m, dict):
        _take_running(IMMEDIATE_MACHINE, old_m, new_m)
        old_f, new_f = old_m.get("features"), new_m.get("features")
        if isinstance(old_f, dict) and isinstance(new_f, dict):   # only when both have a features block
            _take_running(IMMEDIATE_FEATURES, old_f, new_f)
    return out


def _pruned(value):
    """Go compares structs: an absent field equals its zero value (null, empty map/list)."""
    if isinstance(value, dict):
        out = dict((k, _pruned(v)) for k, v in value.items())
        return dict((k, v) for k, v in out.items() if v not in (None, {}, []))
    if isinstance(value, list):
        return [_pruned(v) for v in value]
    return value


def needs_reboot(old_docs, new_docs, version=None):
    """True when Talos would need a reboot for this v1alpha1 change (typed documents never need one).

    ``version``: the node's Talos version tag; from v1.14 nothing needs a reboot."""
    parsed = parse_version(version) if version else None
    if parsed is not None and parsed[:2] >= NO_REBOOT_RULE_FROM:
        return False
    old = next((d for d in old_docs if is_v1alpha1(d)), None)
    new = next((d for d in new_docs if is_v1alpha1(d)), None)
    return _pruned(_immediate_view(old, new)) != _pruned(old or {})


# Keys whose values are secrets in Talos configs (PKI keys, tokens, encryption secrets, LUKS passphrases).
SECRET_KEYS = ("key", "token", "secret", "bootstrapToken", "secretboxEncryptionSecret", "aescbcEncryptionSecret",
               "passphrase", "password", "auth")
MASK = "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"


def masked(value):
    """A copy with secret values replaced (a change of a secret still shows as a changed line)."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k in SECRET_KEYS and isinstance(v, (str, bytes)) and v:
                out[k] = "%s (sha256:%s)" % (MASK, hashlib.sha256(v if isinstance(v, bytes) else v.encode()).hexdigest()[:12])
            else:
                out[k] = masked(v)
        return out
    if isinstance(value, list):
        return [masked(v) for v in value]
    return value


def diff_documents(old_docs, new_docs, mask=True):
    if mask:
        old_docs, new_docs = masked(old_docs), masked(new_docs)
    a = dump_documents(old_docs).splitlines(True)
    b = dump_documents(new_docs).splitlines(True)
    return "".join(difflib.unified_diff(a, b, fromfile="before", tofile="after"))


def same_config(old_docs, new_docs):
    return old_docs == new_docs
