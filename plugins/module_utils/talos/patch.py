# -*- coding: utf-8 -*-
# Copyright: contributors to tazlab.resilience
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Client-side Talos machine-config patching and the reboot rule (talos.md, "Machine config").

Patching is client-side: read the current config, patch it here, apply the whole config.

* Strategic merge: maps merge recursively; lists append, except ``interfaces`` (merged on ``interface``
  or ``deviceSelector``), ``vlans`` (on ``vlanId``) and pod/service subnets (replaced). An item already in
  the list is not appended again: the module patches the *current* config, so re-applying the same patch
  must be a no-op (idempotence). Typed documents
  match on kind+apiVersion+name (unmatched ones are appended). ``$patch: delete`` removes a key, a list
  item or a whole document.
* JSON6902 (a list of ``op`` dicts) works only on a single-document v1alpha1 config.
* :func:`needs_reboot`: a v1alpha1 change outside ``.debug``, ``.cluster`` and the listed ``.machine``
  paths needs a reboot; typed documents never do.
"""

from __future__ import annotations

import copy
import difflib
import hashlib

from ansible_collections.tazlab.resilience.plugins.module_utils.talos.errors import TalosPatchError

try:
    import yaml
except ImportError:  # pragma: no cover - PyYAML ships with ansible-core
    HAS_YAML = False
else:
    HAS_YAML = True

DELETE = "$patch"
MERGE_KEYS = {"interfaces": ("interface", "deviceSelector"), "vlans": ("vlanId",)}
REPLACE_LISTS = {"podSubnets", "serviceSubnets"}
NO_REBOOT_TOP = ("debug", "cluster")
NO_REBOOT_MACHINE = ("network", "certSANs", "kubelet", "time", "install", "sysctls", "sysfs", "logging",
                     "registries", "nodeLabels", "nodeAnnotations", "nodeTaints")
NO_REBOOT_MACHINE_FEATURES = ("kubePrism",)


# -- documents ------------------------------------------------------------------------------------
def load_documents(text):
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise TalosPatchError("invalid machine config YAML: %s" % exc)
    for d in docs:
        if not isinstance(d, dict):
            raise TalosPatchError("every machine config document must be a mapping")
    return docs


def dump_documents(docs):
    return "---\n".join(yaml.safe_dump(d, sort_keys=False, default_flow_style=False) for d in docs)


def is_v1alpha1(doc):
    """The v1alpha1 document (or a patch of it): no kind/apiVersion (typed documents have both)."""
    return "kind" not in doc and "apiVersion" not in doc


def doc_key(doc):
    """Identity of a typed document: (apiVersion, kind, name)."""
    return doc.get("apiVersion"), doc.get("kind"), doc.get("name")


def _is_delete(value):
    return isinstance(value, dict) and value.get(DELETE) == "delete"


# -- strategic merge ------------------------------------------------------------------------------
def _match_key(list_name, item):
    for key in MERGE_KEYS.get(list_name, ()):
        if isinstance(item, dict) and key in item:
            return key, item[key]
    return None


def _merge_list(name, dst, src):
    if name in REPLACE_LISTS:
        return copy.deepcopy([i for i in src if not _is_delete(i)])
    out = list(dst)
    for item in src:
        mk = _match_key(name, item)
        if mk is not None:
            idx = next((i for i, cur in enumerate(out) if isinstance(cur, dict) and cur.get(mk[0]) == mk[1]), None)
            if _is_delete(item):
                if idx is not None:
                    out.pop(idx)
                continue
            if idx is not None:
                out[idx] = merge(out[idx], item)
                continue
        elif _is_delete(item):
            rest = dict((k, v) for k, v in item.items() if k != DELETE)
            out = [cur for cur in out if not (isinstance(cur, dict) and all(cur.get(k) == v for k, v in rest.items()))]
            continue
        if item in out:
            # Talos would append a duplicate; skipping it makes re-applying a patch to the patched config a no-op
            continue
        out.append(copy.deepcopy(item))
    return out


def merge(dst, src, name=None):
    """Talos strategic merge of ``src`` into a copy of ``dst``."""
    if isinstance(dst, dict) and isinstance(src, dict):
        out = copy.deepcopy(dst)
        for key, value in src.items():
            if key == DELETE:
                continue
            if _is_delete(value) and len(value) == 1:
                out.pop(key, None)
            elif key in out and isinstance(out[key], (dict, list)) and isinstance(value, type(out[key])):
                out[key] = merge(out[key], value, key) if isinstance(value, dict) else _merge_list(key, out[key], value)
            elif isinstance(value, list):
                out[key] = _merge_list(key, [], value)
            else:
                out[key] = copy.deepcopy(value)
        return out
    if isinstance(dst, list) and isinstance(src, list):
        return _merge_list(name, dst, src)
    return copy.deepcopy(src)


def strategic_merge(docs, patch_docs):
    docs = copy.deepcopy(docs)
    for patch in patch_docs:
        if not isinstance(patch, dict):
            raise TalosPatchError("a strategic merge patch document must be a mapping")
        if is_v1alpha1(patch):
            idx = next((i for i, d in enumerate(docs) if is_v1alpha1(d)), None)
            if _is_delete(patch):
                if idx is not None:
                    docs.pop(idx)
                continue
            if idx is None:
                docs.insert(0, merge({}, patch))
            else:
                docs[idx] = merge(docs[idx], patch)
            continue
        if not patch.get("kind"):
            raise TalosPatchError("typed patch document without kind: %r" % (patch,))
        key = doc_key(patch)
        idx = next((i for i, d in enumerate(docs) if "kind" in d and doc_key(d) == key), None)
        if _is_delete(patch):
            if idx is None:
                raise TalosPatchError("cannot delete document %s/%s %r: not in the config" % (key[0], key[1], key[2]))
            docs.pop(idx)
        elif idx is None:
            docs.append(merge({}, patch))
        else:
            docs[idx] = merge(docs[idx], patch)
    return docs


# -- JSON6902 -------------------------------------------------------------------------------------
def _pointer(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise TalosPatchError("invalid JSON pointer %r" % path)
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc, parts, path):
    cur = doc
    for p in parts:
        if isinstance(cur, list):
            try:
                cur = cur[int(p)]
            except (ValueError, IndexError):
                raise TalosPatchError("JSON6902 path %s does not exist" % path)
        elif isinstance(cur, dict) and p in cur:
            cur = cur[p]
        else:
            raise TalosPatchError("JSON6902 path %s does not exist" % path)
    return cur


def _json_get(doc, path):
    return _walk(doc, _pointer(path), path)


def _json_remove(doc, path):
    parts = _pointer(path)
    if not parts:
        raise TalosPatchError("cannot remove the whole document")
    parent = _walk(doc, parts[:-1], path)
    last = parts[-1]
    try:
        if isinstance(parent, list):
            return parent.pop(int(last))
        return parent.pop(last)
    except (KeyError, IndexError, ValueError):
        raise TalosPatchError("JSON6902 path %s does not exist" % path)


def _json_add(doc, path, value, replace=False):
    parts = _pointer(path)
    if not parts:
        return copy.deepcopy(value)
    parent = _walk(doc, parts[:-1], path)
    last = parts[-1]
    if isinstance(parent, list):
        if last == "-" and not replace:
            parent.append(copy.deepcopy(value))
            return doc
        try:
            i = int(last)
        except ValueError:
            raise TalosPatchError("JSON6902 path %s: invalid list index" % path)
        if replace:
            if not 0 <= i < len(parent):
                raise TalosPatchError("JSON6902 path %s does not exist" % path)
            parent[i] = copy.deepcopy(value)
        else:
            if not 0 <= i <= len(parent):
                raise TalosPatchError("JSON6902 path %s: index out of range" % path)
            parent.insert(i, copy.deepcopy(value))
    elif isinstance(parent, dict):
        if replace and last not in parent:
            raise TalosPatchError("JSON6902 path %s does not exist" % path)
        parent[last] = copy.deepcopy(value)
    else:
        raise TalosPatchError("JSON6902 path %s: parent is not a container" % path)
    return doc


def json6902(docs, ops):
    if len(docs) != 1 or not is_v1alpha1(docs[0]):
        raise TalosPatchError("JSON6902 patches work only on a single-document v1alpha1 config "
                              "(this config has %d documents); use a strategic merge patch" % len(docs))
    doc = copy.deepcopy(docs[0])
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise TalosPatchError("invalid JSON6902 operation %r" % (op,))
        kind, path = op["op"], op["path"]
        if kind == "add":
            doc = _json_add(doc, path, op.get("value"))
        elif kind == "remove":
            _json_remove(doc, path)
        elif kind == "replace":
            doc = _json_add(doc, path, op.get("value"), replace=True)
        elif kind == "move":
            doc = _json_add(doc, path, _json_remove(doc, op["from"]))
        elif kind == "copy":
            doc = _json_add(doc, path, copy.deepcopy(_json_get(doc, op["from"])))
        elif kind == "test":
            if _json_get(doc, path) != op.get("value"):
                raise TalosPatchError("JSON6902 test failed at %s" % path)
        else:
            raise TalosPatchError("unknown JSON6902 op %r" % kind)
    return [doc]


# -- entry points ---------------------------------------------------------------------------------
def parse_patch(patch):
    """A patch given as YAML text, a dict, a list of ops or a list of documents -> ('json6902'|'strategic', value)."""
    if isinstance(patch, (str, bytes)):
        text = patch.decode("utf-8") if isinstance(patch, bytes) else patch
        try:
            loaded = [d for d in yaml.safe_load_all(text) if d is not None]
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


def _strip_no_reboot(doc):
    doc = copy.deepcopy(doc or {})
    for key in NO_REBOOT_TOP:
        doc.pop(key, None)
    machine = doc.get("machine")
    if isinstance(machine, dict):
        for key in NO_REBOOT_MACHINE:
            machine.pop(key, None)
        features = machine.get("features")
        if isinstance(features, dict):
            for key in NO_REBOOT_MACHINE_FEATURES:
                features.pop(key, None)
            if not features:
                machine.pop("features")
    return doc


def needs_reboot(old_docs, new_docs):
    """True when the v1alpha1 change touches a path that only takes effect with a reboot."""
    old = next((d for d in old_docs if is_v1alpha1(d)), None)
    new = next((d for d in new_docs if is_v1alpha1(d)), None)
    return _strip_no_reboot(old) != _strip_no_reboot(new)


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
