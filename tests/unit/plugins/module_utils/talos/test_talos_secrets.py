"""The Talos secrets bundle: key types, chains, formats, written once with mode 0600."""

from __future__ import annotations

import base64
import datetime
import os
import stat

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from ansible_collections.tazlab.resilience.plugins.module_utils.talos import secrets as ts
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.errors import TalosConfigError


@pytest.fixture(scope="module")
def bundle():
    return ts.generate_bundle("v1.13.9")


def _pair(bundle, name):
    crt = x509.load_pem_x509_certificate(base64.b64decode(bundle["certs"][name]["crt"]))
    key = ts.load_key(base64.b64decode(bundle["certs"][name]["key"]))
    return crt, key


@pytest.mark.parametrize("name,keytype,attr,value", [
    ("os", ed25519.Ed25519PrivateKey, NameOID.ORGANIZATION_NAME, "talos"),
    ("k8s", ec.EllipticCurvePrivateKey, NameOID.ORGANIZATION_NAME, "kubernetes"),
    ("k8saggregator", ec.EllipticCurvePrivateKey, NameOID.COMMON_NAME, "front-proxy"),
    ("etcd", ec.EllipticCurvePrivateKey, NameOID.ORGANIZATION_NAME, "etcd"),
])
def test_each_ca_has_the_talos_key_type_and_is_a_self_signed_ca(bundle, name, keytype, attr, value):
    crt, key = _pair(bundle, name)
    assert isinstance(key, keytype)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        assert key.curve.name == "secp256r1"
        assert crt.signature_hash_algorithm.name == "sha256"
    assert crt.subject.get_attributes_for_oid(attr)[0].value == value
    crt.verify_directly_issued_by(crt)             # self-signed, signature checks
    assert crt.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert crt.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign is True
    life = crt.not_valid_after_utc - crt.not_valid_before_utc
    assert datetime.timedelta(hours=87599) < life < datetime.timedelta(hours=87601)
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    assert crt.public_key().public_bytes(serialization.Encoding.DER, spki) == \
        key.public_key().public_bytes(serialization.Encoding.DER, spki)


def test_pem_labels_are_talos_own(bundle):
    assert base64.b64decode(bundle["certs"]["os"]["key"]).startswith(b"-----BEGIN ED25519 PRIVATE KEY-----")
    assert base64.b64decode(bundle["certs"]["k8s"]["key"]).startswith(b"-----BEGIN EC PRIVATE KEY-----")
    sa = base64.b64decode(bundle["certs"]["k8sserviceaccount"]["key"])
    assert sa.startswith(b"-----BEGIN RSA PRIVATE KEY-----")   # PKCS#1
    key = ts.load_key(sa)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 4096


def test_tokens_and_secrets_have_talos_formats(bundle):
    assert ts.TOKEN_RE.match(bundle["secrets"]["bootstraptoken"])
    assert ts.TOKEN_RE.match(bundle["trustdinfo"]["token"])
    assert bundle["secrets"]["bootstraptoken"] != bundle["trustdinfo"]["token"]
    assert len(base64.b64decode(bundle["secrets"]["secretboxencryptionsecret"], validate=True)) == 32
    assert "aescbcencryptionsecret" not in bundle["secrets"]
    assert len(base64.b64decode(bundle["cluster"]["secret"], validate=True)) == 32
    assert len(base64.urlsafe_b64decode(bundle["cluster"]["id"])) == 32
    assert set(bundle) == {"cluster", "secrets", "trustdinfo", "certs"}
    assert set(bundle["certs"]) == {"etcd", "k8s", "k8saggregator", "k8sserviceaccount", "os"}


def test_two_bundles_share_nothing(bundle):
    other = ts.generate_bundle("v1.13")
    for name in ts.CERTS:
        assert other["certs"][name]["key"] != bundle["certs"][name]["key"]
    assert other["cluster"] != bundle["cluster"]
    assert other["secrets"]["bootstraptoken"] != bundle["secrets"]["bootstraptoken"]


def test_old_contracts_use_ecdsa_service_account_and_aescbc():
    b16 = ts.generate_bundle("v1.6.7")
    assert isinstance(ts.load_key(base64.b64decode(b16["certs"]["k8sserviceaccount"]["key"])), ec.EllipticCurvePrivateKey)
    b12 = ts.generate_bundle("1.2")
    assert "aescbcencryptionsecret" in b12["secrets"] and "secretboxencryptionsecret" not in b12["secrets"]
    ts.validate_bundle(b12)


@pytest.mark.parametrize("bad", ["latest", "", "1", "v1.x"])
def test_bad_version_is_refused(bad):
    with pytest.raises(TalosConfigError):
        ts.parse_contract(bad)


def test_validate_rejects_broken_bundles(bundle):
    import copy
    b = copy.deepcopy(bundle)
    b["certs"]["os"]["key"] = bundle["certs"]["etcd"]["key"]
    with pytest.raises(TalosConfigError, match="does not belong"):
        ts.validate_bundle(b)
    b = copy.deepcopy(bundle)
    b["certs"]["os"] = dict(bundle["certs"]["k8s"])
    with pytest.raises(TalosConfigError, match="Ed25519"):
        ts.validate_bundle(b)
    b = copy.deepcopy(bundle)
    b["secrets"]["aescbcencryptionsecret"] = b["secrets"]["secretboxencryptionsecret"]
    with pytest.raises(TalosConfigError, match="exactly one"):
        ts.validate_bundle(b)
    b = copy.deepcopy(bundle)
    b["trustdinfo"]["token"] = "ABCDEF.0123456789abcdef"
    with pytest.raises(TalosConfigError, match="trustdinfo"):
        ts.validate_bundle(b)


def test_written_once_with_mode_0600_and_never_regenerated(tmp_path):
    path = str(tmp_path / "secrets.yaml")
    plan = ts.ensure_secrets(path, check_mode=True)
    assert plan["changed"] and plan["action"] == "generate" and not os.path.exists(path)
    first = ts.ensure_secrets(path)
    assert first["changed"] and first["generated"]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    content = open(path).read()
    assert "k8sserviceaccount" in content
    again = ts.ensure_secrets(path)
    assert not again["changed"] and not again["generated"] and again["action"] == "keep"
    assert open(path).read() == content
    assert again["os_ca_fingerprint"] == first["os_ca_fingerprint"]
    assert [p for p in os.listdir(str(tmp_path)) if p != "secrets.yaml"] == []   # no temp files left


def test_a_file_readable_by_others_is_tightened_not_regenerated(tmp_path):
    path = str(tmp_path / "secrets.yaml")
    ts.ensure_secrets(path)
    content = open(path).read()
    os.chmod(path, 0o644)
    assert ts.ensure_secrets(path, check_mode=True)["changed"]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    res = ts.ensure_secrets(path)
    assert res["changed"] and res["action"] == "fix_mode" and not res["generated"]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and open(path).read() == content


def test_a_brought_bundle_is_validated_and_a_broken_one_refused(tmp_path, bundle):
    path = str(tmp_path / "secrets.yaml")
    ts.write_private(path, yaml.safe_dump(bundle))
    assert not ts.ensure_secrets(path)["changed"]
    broken = dict(bundle, secrets={"bootstraptoken": "nope"})
    ts.write_private(path, yaml.safe_dump(broken))
    with pytest.raises(TalosConfigError, match="bootstraptoken"):
        ts.ensure_secrets(path)


def test_missing_directory_fails_before_anything(tmp_path):
    with pytest.raises(TalosConfigError, match="does not exist"):
        ts.ensure_secrets(str(tmp_path / "nope" / "secrets.yaml"))
