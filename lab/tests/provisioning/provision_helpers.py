"""Set-up of the provisioning twin tests: a Talos secrets bundle, machine configs, a grpclib client.

Written for the tests from the upstream formats (talos-provisioning.md sections 1-2), not from the
collection: the twin is checked against what a real client sends.
(A plain module, not conftest.py, as in lab/tests/talos.)
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import ssl
import tempfile
import os

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID



def _ca(key, org, sign_hash):
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)])
    now = dt.datetime.now(dt.timezone.utc)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, sign_hash))


def _pem_key(key) -> bytes:
    fmt = serialization.PrivateFormat.PKCS8 if isinstance(key, ed25519.Ed25519PrivateKey) \
        else serialization.PrivateFormat.TraditionalOpenSSL
    pem = key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())
    if isinstance(key, ed25519.Ed25519PrivateKey):
        pem = pem.replace(b"PRIVATE KEY-----", b"ED25519 PRIVATE KEY-----")   # as Talos writes it
    return pem


class Secrets:
    """The secrets bundle's CAs: OS CA (Ed25519), Kubernetes CA (ECDSA P-256), tokens."""

    def __init__(self):
        self.os_key = ed25519.Ed25519PrivateKey.generate()
        self.os_ca = _ca(self.os_key, "talos", None)
        self.k8s_key = ec.generate_private_key(ec.SECP256R1())
        self.k8s_ca = _ca(self.k8s_key, "kubernetes", hashes.SHA256())
        self.trustd_token = "abcdef.0123456789abcdef"
        self.bootstrap_token = "ghijkl.0123456789abcdef"

    @staticmethod
    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    def pem(self, cert) -> bytes:
        return cert.public_bytes(serialization.Encoding.PEM)

    def admin_client(self):
        """(cert PEM, key PEM with the OpenSSL label) of an os:admin client, Ed25519, signed by the OS CA."""
        key = ed25519.Ed25519PrivateKey.generate()
        now = dt.datetime.now(dt.timezone.utc)
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "os:admin")]))
                .issuer_name(self.os_ca.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
                .not_valid_after(now + dt.timedelta(days=365))
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
                .sign(self.os_key, None))
        return self.pem(cert), key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption())

    def config(self, role: str, endpoint: str, hostname: str | None = None, labels: dict | None = None,
               taints: dict | None = None) -> bytes:
        cp = role == "controlplane"
        machine = {"type": role, "token": self.trustd_token,
                   "ca": {"crt": self.b64(self.pem(self.os_ca))},
                   "certSANs": [], "kubelet": {"image": "ghcr.io/siderolabs/kubelet:v1.36.3"},
                   "network": {}, "install": {"disk": "/dev/sda", "image": "ghcr.io/siderolabs/installer:v1.13.9",
                                              "wipe": False},
                   "features": {"kubePrism": {"enabled": True, "port": 7445}},
                   "nodeLabels": dict(labels or {})}
        if taints:
            machine["nodeTaints"] = dict(taints)
        if hostname:
            machine["network"]["hostname"] = hostname
        cluster = {"id": "aWQ=", "secret": "c2VjcmV0", "clusterName": "tazlab",
                   "controlPlane": {"endpoint": endpoint}, "token": self.bootstrap_token,
                   "network": {"dnsDomain": "cluster.local", "podSubnets": ["10.244.0.0/16"],
                               "serviceSubnets": ["10.96.0.0/12"]},
                   "ca": {"crt": self.b64(self.pem(self.k8s_ca))}}
        if cp:
            machine["ca"]["key"] = self.b64(_pem_key(self.os_key))
            cluster["ca"]["key"] = self.b64(_pem_key(self.k8s_key))
        doc = {"version": "v1alpha1", "debug": False, "persist": True, "machine": machine, "cluster": cluster}
        return yaml.safe_dump(doc, sort_keys=False).encode()


def certless_context() -> ssl.SSLContext:
    """What `talosctl --insecure` does: TLS, no client certificate, the server's cert not verified."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    return ctx


def mtls_context(secrets: Secrets) -> ssl.SSLContext:
    crt, key = secrets.admin_client()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cadata=secrets.pem(secrets.os_ca).decode())
    with tempfile.TemporaryDirectory() as tmp:
        c, k = os.path.join(tmp, "c.pem"), os.path.join(tmp, "k.pem")
        open(c, "wb").write(crt)
        open(k, "wb").write(key)
        ctx.load_cert_chain(c, k)
    ctx.set_alpn_protocols(["h2"])
    return ctx


def call(address: str, port: int, ctx: ssl.SSLContext, rpc: str, request, reply_type, stream: bool = False,
         timeout: float = 10.0):
    """One Talos RPC from the test thread (its own event loop); returns the reply (or the stream's list)."""
    from grpclib.client import Channel, UnaryStreamMethod, UnaryUnaryMethod

    async def run():
        channel = Channel(address, port, ssl=ctx)
        try:
            kind = UnaryStreamMethod if stream else UnaryUnaryMethod
            method = kind(channel, rpc, type(request), reply_type)
            return await asyncio.wait_for(method(request), timeout)
        finally:
            channel.close()
    return asyncio.run(run())
