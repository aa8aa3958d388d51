"""Ed25519 PKI of the Talos twin, as `talosctl gen secrets` makes it.

* the OS CA (self-signed, Ed25519), which signs
* per-node apid server certificates whose SANs are the node's current addresses plus `machine.certSANs`,
* client certificates whose Organization is the role (`os:admin`, `os:operator`, `os:reader`, ...).

Keys are written as Talos writes them: PKCS#8 DER in a PEM block labelled `ED25519 PRIVATE KEY`.
"""

from __future__ import annotations

import base64
import datetime as _dt
import ipaddress
import os
import tempfile
from dataclasses import dataclass

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ED25519_LABEL = "ED25519 PRIVATE KEY"
_VALIDITY = _dt.timedelta(days=3650)

#: Go's crypto/x509 KeyUsage flags (the names Talos' code sets) -> the python-cryptography KeyUsage argument.
_KEY_USAGE_FLAGS = {"DigitalSignature": "digital_signature", "ContentCommitment": "content_commitment",
                    "KeyEncipherment": "key_encipherment", "DataEncipherment": "data_encipherment",
                    "KeyAgreement": "key_agreement", "CertSign": "key_cert_sign", "CRLSign": "crl_sign",
                    "EncipherOnly": "encipher_only", "DecipherOnly": "decipher_only"}


def talos_key_pem(key) -> bytes:
    """PKCS#8 PEM relabelled `ED25519 PRIVATE KEY`, exactly as Talos writes its keys."""
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        return pem.encode()
    return pem.replace("PRIVATE KEY-----", ED25519_LABEL + "-----").encode()


def openssl_key_pem(pem: bytes) -> bytes:
    """The same key with the label Python's ssl module (OpenSSL) understands."""
    return pem.replace(ED25519_LABEL.encode(), b"PRIVATE KEY")


@dataclass
class CertKey:
    cert: x509.Certificate
    key: ed25519.Ed25519PrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        """Talos label (`ED25519 PRIVATE KEY`)."""
        return talos_key_pem(self.key)

    @property
    def key_pem_openssl(self) -> bytes:
        return openssl_key_pem(self.key_pem)

    def load_into(self, ctx) -> None:
        """This pair as the certificate chain of the ssl.SSLContext `ctx` (which reads it from files only)."""
        with tempfile.TemporaryDirectory() as tmp:
            crt, key = os.path.join(tmp, "tls.crt"), os.path.join(tmp, "tls.key")
            with open(crt, "wb") as f:
                f.write(self.cert_pem)
            with open(key, "wb") as f:
                f.write(self.key_pem_openssl)
            ctx.load_cert_chain(crt, key)


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = []
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


class TalosPKI:
    """The OS CA of one twin cluster and the certificates it signs.

    ``key_type`` is ``ed25519`` (what Talos uses). ``ecdsa`` (P-256) exists only as a control in the
    fidelity tests: it shows that a client failing against the Ed25519 twin fails because of Ed25519.
    """

    def __init__(self, ca: CertKey | None = None, key_type: str = "ed25519"):
        if key_type not in ("ed25519", "ecdsa"):
            raise ValueError("key_type is ed25519 or ecdsa")
        self.key_type = key_type
        self.ca = ca or self._make_ca()

    def _new_key(self):
        if self.key_type == "ecdsa":
            return ec.generate_private_key(ec.SECP256R1())
        return ed25519.Ed25519PrivateKey.generate()

    def _certificate(self, subject: x509.Name, public_key, *, ca: bool, usage: tuple[str, ...], ext_usage: tuple,
                     issuer: x509.Name, signing_key, sans: list[x509.GeneralName] = ()) -> x509.Certificate:
        """One certificate the way siderolabs/crypto's x509 package fills its template: Go's KeyUsage flags by
        name (``usage``), the extended usages, basic constraints, a subject key id on a CA and an authority
        key id on a leaf."""
        start = _now() - _dt.timedelta(minutes=5)
        builder = x509.CertificateBuilder(
            issuer_name=issuer, subject_name=subject, public_key=public_key,
            serial_number=x509.random_serial_number(), not_valid_before=start,
            not_valid_after=start + _dt.timedelta(minutes=5) + _VALIDITY)
        key_usage = x509.KeyUsage(**{arg: flag in usage for flag, arg in _KEY_USAGE_FLAGS.items()})
        extensions = [(x509.BasicConstraints(ca=ca, path_length=None), True), (key_usage, True),
                      (x509.ExtendedKeyUsage(list(ext_usage)), False)]
        if ca:
            extensions.append((x509.SubjectKeyIdentifier.from_public_key(public_key), False))
        else:
            extensions.append((x509.AuthorityKeyIdentifier.from_issuer_public_key(signing_key.public_key()), False))
        if sans:
            extensions.append((x509.SubjectAlternativeName(list(sans)), False))
        for ext, critical in extensions:
            builder = builder.add_extension(ext, critical=critical)
        return builder.sign(signing_key, hashes.SHA256() if self.key_type == "ecdsa" else None)

    def _make_ca(self) -> CertKey:
        key = self._new_key()
        name = _name("talos", "talos")
        cert = self._certificate(name, key.public_key(), ca=True, usage=("DigitalSignature", "CertSign"),
                                 ext_usage=(ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH),
                                 issuer=name, signing_key=key)
        return CertKey(cert, key)

    @property
    def ca_pem(self) -> bytes:
        return self.ca.cert_pem

    def _issue(self, subject: x509.Name, sans: list[x509.GeneralName], usage, key=None) -> CertKey:
        key = key or self._new_key()
        cert = self._certificate(subject, key.public_key(), ca=False, usage=("DigitalSignature",), ext_usage=(usage,),
                                 issuer=self.ca.cert.subject, signing_key=self.ca.key, sans=sans)
        return CertKey(cert, key)

    def server_cert(self, hostname: str, addresses: list[str], extra_sans: list[str] = ()) -> CertKey:
        """apid's serving certificate: SANs = the node's current addresses + hostname + certSANs."""
        sans: list[x509.GeneralName] = []
        seen = set()
        for value in [hostname, *addresses, *extra_sans]:
            if not value or value in seen:
                continue
            seen.add(value)
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(value)))
            except ValueError:
                sans.append(x509.DNSName(value))
        return self._issue(_name(hostname), sans, ExtendedKeyUsageOID.SERVER_AUTH)

    def client_cert(self, role: str = "os:admin", cn: str = "admin") -> CertKey:
        """A client identity; the role is the certificate's Organization (as `talosctl config new --roles`)."""
        return self._issue(_name(cn, role), [], ExtendedKeyUsageOID.CLIENT_AUTH)


def talosconfig(context: str, endpoints: list[str], nodes: list[str], ca_pem: bytes, client: CertKey) -> str:
    """A talosconfig as `talosctl` writes it: base64 PEM, the key labelled `ED25519 PRIVATE KEY`."""
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    doc = {
        "context": context,
        "contexts": {
            context: {
                "endpoints": list(endpoints),
                "nodes": list(nodes),
                "ca": b64(ca_pem),
                "crt": b64(client.cert_pem),
                "key": b64(client.key_pem),
            }
        },
    }
    return yaml.safe_dump(doc, sort_keys=False)


def write_talosconfig(path: str, context: str, endpoints: list[str], nodes: list[str], ca_pem: bytes,
                      client: CertKey) -> str:
    import os

    text = talosconfig(context, endpoints, nodes, ca_pem, client)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path
