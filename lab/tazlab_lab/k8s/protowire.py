"""Just enough of the Kubernetes protobuf encoding to read the few requests kubectl sends only as protobuf.

``kubectl auth can-i`` (1.32) POSTs its SelfSubjectAccessReview as ``application/vnd.kubernetes.protobuf``:
the 4-byte magic ``k8s\\x00`` then a ``runtime.Unknown`` (typeMeta=1, raw=2, contentEncoding=3,
contentType=4) whose ``raw`` is the object (k8s.io/api/authorization/v1/generated.proto). Answers go
back as JSON, which the client accepts (its Accept header ends in ``*/*``).
"""

from __future__ import annotations

from typing import Any

MAGIC = b"k8s\x00"


class ProtoError(ValueError):
    pass


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        if i >= len(buf):
            raise ProtoError("truncated varint")
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7
        if shift > 63:
            raise ProtoError("varint too long")


def fields(buf: bytes) -> dict[int, list[Any]]:
    """field number -> values (bytes for length-delimited, int for varint/fixed)."""
    out: dict[int, list[Any]] = {}
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            val, i = _varint(buf, i)
        elif wire == 2:
            n, i = _varint(buf, i)
            if i + n > len(buf):
                raise ProtoError("truncated field")
            val, i = buf[i:i + n], i + n
        elif wire == 1:
            val, i = int.from_bytes(buf[i:i + 8], "little"), i + 8
        elif wire == 5:
            val, i = int.from_bytes(buf[i:i + 4], "little"), i + 4
        else:
            raise ProtoError(f"unsupported wire type {wire}")
        out.setdefault(num, []).append(val)
    return out


def _str(f: dict[int, list[Any]], n: int) -> str:
    v = f.get(n)
    return v[-1].decode() if v else ""


def unwrap(body: bytes) -> tuple[str, str, bytes]:
    """-> (apiVersion, kind, raw object bytes) of an enveloped protobuf body."""
    if not body.startswith(MAGIC):
        raise ProtoError("missing the k8s protobuf magic")
    unknown = fields(body[len(MAGIC):])
    tm = fields(unknown.get(1, [b""])[-1])
    return _str(tm, 1), _str(tm, 2), unknown.get(2, [b""])[-1]


def self_subject_access_review(raw: bytes) -> dict:
    """SelfSubjectAccessReview (metadata=1, spec=2) -> its JSON form (spec only)."""
    obj = fields(raw)
    spec_f = fields(obj.get(2, [b""])[-1])
    spec: dict[str, Any] = {}
    if 1 in spec_f:
        ra = fields(spec_f[1][-1])
        names = {1: "namespace", 2: "verb", 3: "group", 4: "version", 5: "resource", 6: "subresource", 7: "name"}
        spec["resourceAttributes"] = {v: _str(ra, k) for k, v in names.items() if _str(ra, k)}
    if 2 in spec_f:
        nra = fields(spec_f[2][-1])
        spec["nonResourceAttributes"] = {v: _str(nra, k) for k, v in {1: "path", 2: "verb"}.items() if _str(nra, k)}
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "metadata": {},
            "spec": spec}
