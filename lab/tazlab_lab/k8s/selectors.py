"""Label and field selectors in the API's string syntax (k8s.io/apimachinery/pkg/labels, pkg/fields)."""

from __future__ import annotations

import re
from typing import Any, Callable

from .errors import ApiError
from .resources import CUSTOM_STYLE, Resource

Matcher = Callable[[dict], bool]


class SelectorError(ValueError):
    pass


def _split_top(raw: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts, depth, cur = [], 0, []
    for ch in raw:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                        r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_SET_RE = re.compile(r"^(\S+)\s+(in|notin)\s*\((.*)\)$")
_OP_RE = re.compile(r"^([^=!<>\s]+)\s*(==|=|!=|>|<)\s*(.*)$")


def _check_key(key: str) -> None:
    if not _LABEL_KEY.match(key) or len(key.split("/")[-1]) > 63:
        raise SelectorError(f"unable to parse requirement: invalid label key \"{key}\"")


def _check_value(value: str) -> None:
    if len(value) > 63 or not _LABEL_VALUE.match(value):
        raise SelectorError(f"unable to parse requirement: invalid label value: \"{value}\"")


def parse_label_selector(raw: str | None) -> Matcher | None:
    """Compile a label selector string; None/empty -> None (matches everything)."""
    if raw is None or not raw.strip():
        return None
    reqs: list[Callable[[dict], bool]] = []
    for term in _split_top(raw):
        m = _SET_RE.match(term)
        if m:
            key, op, vals = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",") if v.strip()}
            _check_key(key)
            for v in vals:
                _check_value(v)
            if op == "in":
                reqs.append(lambda l, k=key, vs=vals: k in l and l[k] in vs)
            else:
                reqs.append(lambda l, k=key, vs=vals: k not in l or l[k] not in vs)
            continue
        if term.startswith("!"):
            key = term[1:].strip()
            _check_key(key)
            reqs.append(lambda l, k=key: k not in l)
            continue
        m = _OP_RE.match(term)
        if m:
            key, op, value = m.group(1), m.group(2), m.group(3).strip()
            _check_key(key)
            if op in ("=", "=="):
                _check_value(value)
                reqs.append(lambda l, k=key, v=value: l.get(k) == v)
            elif op == "!=":
                _check_value(value)
                reqs.append(lambda l, k=key, v=value: l.get(k) != v)
            else:
                try:
                    num = int(value)
                except ValueError:
                    raise SelectorError(f"unable to parse requirement: for 'Gt', 'Lt' operators, the value "
                                        f"must be an integer") from None
                if op == ">":
                    reqs.append(lambda l, k=key, n=num: k in l and _int(l[k]) is not None and _int(l[k]) > n)
                else:
                    reqs.append(lambda l, k=key, n=num: k in l and _int(l[k]) is not None and _int(l[k]) < n)
            continue
        if re.match(r"^[^\s=!<>(),]+$", term):
            _check_key(term)
            reqs.append(lambda l, k=term: k in l)
            continue
        raise SelectorError(f"unable to parse requirement: found '{term}', expected: identifier")

    def match(obj: dict) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(r(labels) for r in reqs)

    return match


def _int(v: Any) -> int | None:
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def label_selector_from_dict(sel: dict | None) -> Matcher | None:
    """A metav1.LabelSelector ({matchLabels, matchExpressions}) as a matcher; {} matches everything."""
    if sel is None:
        return None
    ml = sel.get("matchLabels") or {}
    exprs = sel.get("matchExpressions") or []

    def match(obj: dict) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        for k, v in ml.items():
            if labels.get(k) != v:
                return False
        for e in exprs:
            k, op, vals = e.get("key"), e.get("operator"), e.get("values") or []
            if op == "In" and not (k in labels and labels[k] in vals):
                return False
            if op == "NotIn" and k in labels and labels[k] in vals:
                return False
            if op == "Exists" and k not in labels:
                return False
            if op == "DoesNotExist" and k in labels:
                return False
        return True

    return match


def _unescape_split(raw: str) -> list[str]:
    """Split a field selector on unescaped commas (fields.ParseSelector accepts \\, \\= \\\\)."""
    parts, cur, i = [], [], 0
    while i < len(raw):
        ch = raw[i]
        if ch == "\\" and i + 1 < len(raw):
            cur.append(raw[i:i + 2])
            i += 2
            continue
        if ch == ",":
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    parts.append("".join(cur))
    return [p for p in parts if p]


def _unescape(v: str) -> str:
    return re.sub(r"\\(.)", r"\1", v)


def _field_value(obj: dict, path: str) -> str:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            cur = None
            break
        cur = cur.get(part)
    if path == "status.podIPs":
        ips = ((obj.get("status") or {}).get("podIPs")) or []
        return ",".join(str(i.get("ip", "")) for i in ips)
    if cur is None:
        # Go renders zero values: "" for strings, "false" for bools
        if path in ("spec.unschedulable", "spec.hostNetwork"):
            return "false"
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def parse_field_selector(raw: str | None, res: Resource) -> tuple[Matcher | None, list[tuple[str, str, str]]]:
    """Compile a field selector for ``res``; unsupported fields raise ApiError 400 as the apiserver does.

    Returns (matcher, requirements) where requirements are (field, op, value) triples, so callers can
    use an index (spec.nodeName, metadata.namespace, metadata.name).
    """
    if raw is None or not raw.strip():
        return None, []
    reqs: list[tuple[str, str, str]] = []
    for term in _unescape_split(raw.strip()):
        m = re.match(r"^((?:[^=!\\]|\\.)*?)(==|!=|=)(.*)$", term)
        if not m:
            raise ApiError(400, "BadRequest", f"invalid selector: '{raw}'; can't understand '{term}'")
        fld, op, value = m.group(1).strip(), m.group(2), _unescape(m.group(3))
        if op == "==":
            op = "="
        if fld == "spec.host" and res.key == "pods":
            fld = "spec.nodeName"
        if fld not in res.fields:
            if res.field_style == CUSTOM_STYLE:
                msg = f"field label not supported: {fld}"
            else:
                msg = f"\"{fld}\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
            raise ApiError(400, "BadRequest", msg)
        reqs.append((fld, op, value))

    def match(obj: dict) -> bool:
        for fld, op, value in reqs:
            have = _field_value(obj, fld)
            if (have == value) != (op == "="):
                return False
        return True

    return match, reqs
