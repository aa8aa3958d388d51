"""talosconfig lookup/parsing, the Ed25519 key relabelling and the mutual-TLS context."""

from __future__ import annotations

import base64
import datetime as dt
import ssl

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import NameOID

from ansible_collections.tazlab.resilience.plugins.module_utils.talos import talosconfig as tc
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.errors import TalosConfigError


def _cert(subject_key, issuer_key, cn, org, ca=False):
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org), x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.timezone.utc)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(
        x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "talos"), x509.NameAttribute(NameOID.COMMON_NAME, "talos")]))
        .public_key(subject_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(issuer_key, None))


@pytest.fixture(scope="module")
def creds():
    ca_key = ed25519.Ed25519PrivateKey.generate()
    ca = _cert(ca_key, ca_key, "talos", "talos", ca=True)
    key = ed25519.Ed25519PrivateKey.generate()
    crt = _cert(key, ca_key, "admin", "os:admin")
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).replace(b"PRIVATE KEY-----", b"ED25519 PRIVATE KEY-----")
    return ca.public_bytes(serialization.Encoding.PEM), crt.public_bytes(serialization.Encoding.PEM), key_pem


def b64(data):
    return base64.b64encode(data).decode()


def _config(creds, **extra):
    ctx = {"endpoints": ["10.0.0.2", "10.0.0.3:50001"], "nodes": ["10.0.0.5"], "ca": b64(creds[0]),
           "crt": b64(creds[1]), "key": b64(creds[2])}
    doc = {"context": "lab", "contexts": {"lab": ctx, "other": dict(ctx, endpoints=["10.9.9.9"])}}
    doc.update(extra)
    return doc


def test_talos_key_label_is_relabelled_for_openssl(creds):
    assert b"BEGIN ED25519 PRIVATE KEY" in creds[2]
    auth = tc.auth_from_talosconfig(_config(creds))
    assert auth.key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert b"ED25519" not in auth.key_pem
    serialization.load_pem_private_key(auth.key_pem, None)    # the same PKCS#8 key


def test_context_endpoints_nodes(creds):
    auth = tc.auth_from_talosconfig(_config(creds))
    assert auth.context == "lab"
    assert auth.endpoints == [("10.0.0.2", 50000), ("10.0.0.3", 50001)]
    assert auth.nodes == ["10.0.0.5"]
    other = tc.auth_from_talosconfig(_config(creds), context="other")
    assert other.endpoints == [("10.9.9.9", 50000)]
    with pytest.raises(TalosConfigError, match="context 'nope' not found"):
        tc.auth_from_talosconfig(_config(creds), context="nope")


def test_lookup_order(tmp_path, monkeypatch, creds):
    home = tmp_path / "home"
    (home / ".talos").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    default = home / ".talos" / "config"
    default.write_text(yaml.safe_dump(_config(creds)))
    explicit = tmp_path / "explicit"
    explicit.write_text(yaml.safe_dump(_config(creds, context="other")))
    env = tmp_path / "env"
    env.write_text(yaml.safe_dump(_config(creds, context="other")))
    assert tc.find_talosconfig(environ={}) == str(default)
    assert tc.find_talosconfig(environ={"TALOSCONFIG": str(env)}) == str(env)
    assert tc.find_talosconfig(str(explicit), environ={"TALOSCONFIG": str(env)}) == str(explicit)
    assert tc.load_talosconfig(environ={"TALOSCONFIG": str(env)}).context == "other"
    assert tc.load_talosconfig(environ={}).context == "lab"
    default.unlink()
    with pytest.raises(TalosConfigError, match="no talosconfig"):
        tc.load_talosconfig(environ={})


def test_direct_credentials_and_overrides(tmp_path, creds):
    auth = tc.resolve_auth(endpoints=["[fd00::1]:50000"], ca=creds[0].decode(), crt=creds[1].decode(),
                           key=base64.b64encode(creds[2]).decode())
    assert auth.endpoints == [("fd00::1", 50000)] and auth.source == "parameters"
    with pytest.raises(TalosConfigError, match="together"):
        tc.resolve_auth(endpoints=["1.2.3.4"], ca=creds[0].decode())
    with pytest.raises(TalosConfigError, match="endpoints are required"):
        tc.resolve_auth(ca=creds[0], crt=creds[1], key=creds[2])
    path = tmp_path / "cfg"
    path.write_text(yaml.safe_dump(_config(creds)))
    auth = tc.resolve_auth(talosconfig=str(path), endpoints=["https://10.1.1.1:50000"], nodes=["10.1.1.2"])
    assert auth.endpoints == [("10.1.1.1", 50000)] and auth.nodes == ["10.1.1.2"]
    with pytest.raises(TalosConfigError, match="neither PEM nor base64"):
        tc.TalosAuth(["1.2.3.4"], "not a cert!", creds[1], creds[2])


def test_ssl_context_is_mutual_and_verifying(creds):
    ctx = tc.auth_from_talosconfig(_config(creds)).ssl_context()
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname is True
    assert len(ctx.get_ca_certs()) == 1
    bad = tc.TalosAuth(["1.2.3.4"], creds[0], creds[0], creds[2])   # crt does not match the key
    with pytest.raises(TalosConfigError, match="cannot be loaded"):
        bad.ssl_context()


def test_split_endpoint():
    assert tc.split_endpoint("1.2.3.4") == ("1.2.3.4", 50000)
    assert tc.split_endpoint("node-1:123") == ("node-1", 123)
    assert tc.split_endpoint("https://[::1]:5/") == ("::1", 5)
    assert tc.split_endpoint("fd00::2") == ("fd00::2", 50000)
    with pytest.raises(TalosConfigError):
        tc.split_endpoint("host:port")


def test_insecure_is_only_for_maintenance_mode_endpoints():
    auth = tc.resolve_auth(endpoints=["10.0.0.21"], insecure=True)
    assert auth.insecure and auth.crt_pem is None and auth.endpoints == [("10.0.0.21", 50000)]
    ctx = auth.ssl_context()
    assert ctx.verify_mode == ssl.CERT_NONE and ctx.check_hostname is False
    with pytest.raises(TalosConfigError, match="endpoints"):
        tc.resolve_auth(insecure=True)
