"""What etcd holds for each Secret: the kube-apiserver's storage transformers (EncryptionConfiguration).

From ../shared/reference/talos-hardening.md section 1 and kubernetes ``staging/src/k8s.io/apiserver/
pkg/storage/value``: the apiserver stores every Secret through the first provider of its encryption
config; Talos renders it with ``secretbox`` (key name ``key2``, from ``cluster.secretboxEncryptionSecret``)
first, then ``aescbc`` (key ``key1``, from ``cluster.aescbcEncryptionSecret``), then ``identity``.
Stored values:

* identity: the Kubernetes protobuf envelope, magic ``k8s\\x00`` then a ``runtime.Unknown`` (typeMeta=1,
  raw=2). (The twin puts the object's JSON in ``raw``; the real apiserver puts its protobuf there.)
* secretbox: ``k8s:enc:secretbox:v1:key2:`` + 24-byte nonce + NaCl secretbox (XSalsa20-Poly1305) of
  the identity bytes;
* aescbc: ``k8s:enc:aescbc:v1:key1:`` + 16-byte IV + AES-CBC (PKCS#7) of the identity bytes.

A read through a transformer that is not the first one is *stale*: etcd3's GuaranteedUpdate then writes
even an unchanged object, which is why ``kubectl get secrets -A -o json | kubectl replace -f -`` re-encrypts
every Secret (the twin's Store asks :meth:`SecretsAtRest.stale`).

Which apiserver's config counts: the one that serves the write (``providers_fn``, the world answers
with the VIP holder's running config). Not modelled: an apiserver failing to read a value stored with a
key it does not have (the danger of changing a secretbox secret in place, siderolabs/talos#8702).
"""

from __future__ import annotations

import base64
import json
import os
from typing import Callable

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

try:
    import nacl.secret
    HAS_NACL = True
except ImportError:  # pragma: no cover - a dev dependency (requirements-dev.txt)
    HAS_NACL = False

MAGIC = b"k8s\x00"
SECRETBOX_PREFIX = b"k8s:enc:secretbox:v1:"
AESCBC_PREFIX = b"k8s:enc:aescbc:v1:"
ENC_PREFIX = b"k8s:enc:"


def providers_from_talos_config(v1alpha1: dict | None) -> list[tuple[str, str, bytes]]:
    """The provider list Talos renders (APIServerEncryptionConfig) from the v1alpha1 document."""
    cluster = (v1alpha1 or {}).get("cluster") or {}
    out: list[tuple[str, str, bytes]] = []
    for field, kind, keyname in (("secretboxEncryptionSecret", "secretbox", "key2"),
                                 ("aescbcEncryptionSecret", "aescbc", "key1")):
        value = cluster.get(field)
        if value:
            try:
                out.append((kind, keyname, base64.b64decode(str(value), validate=True)))
            except ValueError:
                continue   # the real apiserver would not start with it; the twin keeps the others
    out.append(("identity", "", b""))
    return out


def _unknown(obj: dict) -> bytes:
    """runtime.Unknown{typeMeta{apiVersion, kind}, raw} after the magic."""
    def ld(num: int, data: bytes) -> bytes:
        out, n = bytearray([(num << 3) | 2]), len(data)
        while True:
            b = n & 0x7F
            n >>= 7
            out.append(b | (0x80 if n else 0))
            if not n:
                break
        return bytes(out) + data
    tm = ld(1, str(obj.get("apiVersion", "v1")).encode()) + ld(2, str(obj.get("kind", "Secret")).encode())
    raw = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
    return MAGIC + ld(1, tm) + ld(2, raw)


def transform(providers: list[tuple[str, str, bytes]], plain: bytes) -> bytes:
    kind, keyname, key = providers[0]
    if kind == "secretbox":
        if not HAS_NACL:  # pragma: no cover
            raise RuntimeError("pynacl is needed for the secretbox transformer")
        nonce = os.urandom(nacl.secret.SecretBox.NONCE_SIZE)
        return SECRETBOX_PREFIX + keyname.encode() + b":" + bytes(nacl.secret.SecretBox(key).encrypt(plain, nonce))
    if kind == "aescbc":
        iv = os.urandom(16)
        padder = padding.PKCS7(128).padder()
        data = padder.update(plain) + padder.finalize()
        enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
        return AESCBC_PREFIX + keyname.encode() + b":" + iv + enc.update(data) + enc.finalize()
    return plain


def prefix_of(providers: list[tuple[str, str, bytes]]) -> bytes:
    kind, keyname, _ = providers[0]
    if kind == "identity":
        return MAGIC
    return b"k8s:enc:" + kind.encode() + b":v1:" + keyname.encode() + b":"


def decrypt(value: bytes, providers: list[tuple[str, str, bytes]]) -> bytes:
    """The identity bytes of a stored value (what a read through these providers gives), or ValueError."""
    for kind, keyname, key in providers:
        if kind == "identity":
            if not value.startswith(ENC_PREFIX):
                return value
            continue
        p = b"k8s:enc:" + kind.encode() + b":v1:" + keyname.encode() + b":"
        if not value.startswith(p):
            continue
        body = value[len(p):]
        if kind == "secretbox":
            return bytes(nacl.secret.SecretBox(key).decrypt(body))
        iv, data = body[:16], body[16:]
        dec = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
        unpadder = padding.PKCS7(128).unpadder()
        return unpadder.update(dec.update(data) + dec.finalize()) + unpadder.finalize()
    raise ValueError("no matching prefix found")


class SecretsAtRest:
    """etcd's ``/registry/secrets/<namespace>/<name>`` values, kept next to the twin's Store."""

    def __init__(self, store, providers_fn: Callable[[], list[tuple[str, str, bytes]]]):
        self.store = store
        self.providers_fn = providers_fn
        self.values: dict[str, bytes] = {}
        for s in store.list("secrets"):
            self._put(s)
        store.subscribe(self._on_write)
        store.stale_value = self.stale

    @staticmethod
    def key(namespace: str, name: str) -> str:
        return f"/registry/secrets/{namespace}/{name}"

    def _put(self, obj: dict) -> None:
        md = obj.get("metadata") or {}
        self.values[self.key(md.get("namespace", ""), md.get("name", ""))] = transform(self.providers_fn(),
                                                                                       _unknown(obj))

    def _on_write(self, etype: str, res: str, obj: dict) -> None:
        if res != "secrets":
            return
        md = obj.get("metadata") or {}
        if etype == "DELETED":
            self.values.pop(self.key(md.get("namespace", ""), md.get("name", "")), None)
        else:
            self._put(obj)

    def stale(self, res: str, obj: dict) -> bool:
        if res != "secrets":
            return False
        md = obj.get("metadata") or {}
        value = self.values.get(self.key(md.get("namespace", ""), md.get("name", "")))
        if value is None:
            return False
        providers = self.providers_fn()
        if providers[0][0] == "identity":
            return value.startswith(ENC_PREFIX)
        return not value.startswith(prefix_of(providers))

    def get(self, key: str, prefix: bool = False) -> list[tuple[str, bytes]]:
        """(key, value) as ``etcdctl get <key> [--prefix]`` would print them, sorted by key."""
        if prefix:
            return sorted((k, v) for k, v in self.values.items() if k.startswith(key))
        return [(key, self.values[key])] if key in self.values else []
