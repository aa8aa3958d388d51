"""Stored objects: ``Entry`` (a dict that is never mutated, with its cached JSON bytes) and the small
helpers every part of the store shares (JSON deep copy, the apiserver's field order, key order).

A leaf module: it imports nothing of the twin.
"""

from __future__ import annotations

import datetime as _dt
import json
from typing import Any

__all__ = ["Entry", "jcopy", "ordered", "sort_key", "iso"]

_TOP_ORDER = ("apiVersion", "kind", "metadata")


def jcopy(v: Any) -> Any:
    """Deep copy of JSON-like data (faster than copy.deepcopy)."""
    if isinstance(v, dict):
        return {k: jcopy(x) for k, x in v.items()}
    if isinstance(v, list):
        return [jcopy(x) for x in v]
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


def ordered(obj: dict) -> dict:
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


def sort_key(k: tuple[str | None, str]) -> tuple[str, str]:
    """The order of stored keys ``(namespace, name)``: cluster-scoped (None) first, as ""."""
    return (k[0] or "", k[1])


def iso(ts: float) -> str:
    return _dt.datetime.fromtimestamp(ts, tz=_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
