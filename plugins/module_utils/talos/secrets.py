# -*- coding: utf-8 -*-
# Copyright: contributors to tazlab.resilience
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Talos secrets bundle (``talosctl gen secrets`` / the Terraform provider's talos_machine_secrets).

Generated natively with ``cryptography`` (talos-provisioning.md, section 1):

* ``certs.os``: the Talos API CA, O=talos, **Ed25519** (key PEM labelled ``ED25519 PRIVATE KEY``);
* ``certs.k8s`` (O=kubernetes), ``certs.k8saggregator`` (CN=front-proxy), ``certs.etcd`` (O=etcd):
  ECDSA P-256 / SHA-256 (key PEM ``EC PRIVATE KEY``);
* ``certs.k8sserviceaccount``: RSA 4096 PKCS#1 for version contracts >= 1.7, ECDSA before;
* ``secrets.bootstraptoken`` and ``trustdinfo.token``: ``[a-z0-9]{6}.[a-z0-9]{16}``;
* ``secrets.secretboxencryptionsecret`` (contract >= 1.3; ``aescbcencryptionsecret`` before): 32 random
  bytes, standard base64; ``cluster.secret`` the same; ``cluster.id``: 32 random bytes, URL-safe base64.

CAs are valid 10 years (87600 h). The file is secrets.yaml as talosctl writes it: certificates and keys
are base64 of PEM. :func:`ensure_secrets` writes it once (mode 0600, atomically) and never regenerates
it; a second run only reads and validates it.
"""

from __future__ import annotations

import base64
import datetime
import os
import re
import secrets as _random
import tempfile
import traceback

from ansible_collections.tazlab.resilience.plugins.module_utils.talos.errors import TalosConfigError

try:
    import yaml
except ImportError:  # pragma: no cover - PyYAML ships with ansible-core
    HAS_YAML = False
else:
    HAS_YAML = True

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
except ImportError:
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None

CA_VALIDITY = datetime.timedelta(hours=87600)
TOKEN_RE = re.compile(r"^[a-z0-9]{6}\.[a-z0-9]{16}$")
TOKEN_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
ED25519_LABEL = "ED25519 PRIVATE KEY"
DEFAULT_TALOS_VERSION = "v1.13.9"
CERTS = ("os", "k8s", "k8saggregator", "etcd")


def parse_contract(version):
    """``v1.13.9`` / ``1.13`` / ``v1.13`` -> (1, 13); the version contract is major.minor."""
    m = re.match(r"^v?(\d+)\.(\d+)(?:\.\d+)?(?:[-+].*)?$", str(version or "").strip())
    if not m:
        raise TalosConfigError("talos_version %r is not a Talos version (like v1.13.9 or v1.13)" % (version,))
    contract = (int(m.group(1)), int(m.group(2)))
    if contract < (1, 0):
        raise TalosConfigError("talos_version %r is too old" % (version,))
    return contract


# -- keys and certificates --------------------------------------------------------------------------
def b64(data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    return base64.b64encode(data).decode("ascii")


def unb64(text, what):
    try:
        return base64.b64decode("".join(str(text).split()), validate=True)
    except (ValueError, TypeError):
        raise TalosConfigError("%s is not base64" % what)


def key_pem(key):
    """PEM as Talos writes it: Ed25519 PKCS#8 labelled ``ED25519 PRIVATE KEY``, ECDSA SEC1, RSA PKCS#1."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode("ascii")
        return pem.replace("PRIVATE KEY-----", ED25519_LABEL + "-----").encode("ascii")
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def load_key(pem):
    """A private key from Talos PEM (accepts the ``ED25519 PRIVATE KEY`` label)."""
    if isinstance(pem, str):
        pem = pem.encode("ascii")
    pem = pem.replace(ED25519_LABEL.encode("ascii"), b"PRIVATE KEY")
    return serialization.load_pem_private_key(pem, password=None)


def _name(cn=None, org=None):
    attrs = []
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    if cn:
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _algorithm(key):
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


def _now(now):
    return (now or datetime.datetime.now(datetime.timezone.utc)).replace(microsecond=0)


def new_ca(kind, org=None, cn=None, now=None):
    """A self-signed CA: ``kind`` ``ed25519`` or ``ecdsa`` (P-256). Returns (cert PEM, key PEM)."""
    key = ed25519.Ed25519PrivateKey.generate() if kind == "ed25519" else ec.generate_private_key(ec.SECP256R1())
    now = _now(now)
    name = _name(cn=cn, org=org)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(seconds=10)).not_valid_after(now + CA_VALIDITY)
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                            crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                              critical=False)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    cert = builder.sign(key, _algorithm(key))
    return cert.public_bytes(serialization.Encoding.PEM), key_pem(key)


def issue_client_cert(ca_crt_pem, ca_key_pem, org, cn=None, days=365, now=None):
    """An Ed25519 client certificate signed by the CA (the admin talosconfig: O=os:admin, clientAuth)."""
    ca_cert = x509.load_pem_x509_certificate(ca_crt_pem)
    ca_key = load_key(ca_key_pem)
    key = ed25519.Ed25519PrivateKey.generate()
    now = _now(now)
    cert = (x509.CertificateBuilder().subject_name(_name(cn=cn, org=org)).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(seconds=10)).not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()), critical=False)
            .sign(ca_key, _algorithm(ca_key)))
    return cert.public_bytes(serialization.Encoding.PEM), key_pem(key)


def token():
    """``[a-z0-9]{6}.[a-z0-9]{16}`` (kubelet bootstrap token, trustd token)."""
    def pick(n):
        return "".join(_random.choice(TOKEN_ALPHABET) for dummy in range(n))
    return "%s.%s" % (pick(6), pick(16))


# -- the bundle -------------------------------------------------------------------------------------
def generate_bundle(talos_version=DEFAULT_TALOS_VERSION, now=None):
    """A new secrets bundle as the secrets.yaml mapping (certificates/keys base64 of PEM)."""
    if not HAS_CRYPTOGRAPHY:
        raise TalosConfigError("the cryptography package is required to generate Talos secrets")
    contract = parse_contract(talos_version)
    os_crt, os_key = new_ca("ed25519", org="talos", now=now)
    k8s_crt, k8s_key = new_ca("ecdsa", org="kubernetes", now=now)
    agg_crt, agg_key = new_ca("ecdsa", cn="front-proxy", now=now)
    etcd_crt, etcd_key = new_ca("ecdsa", org="etcd", now=now)
    if contract >= (1, 7):
        sa_key = rsa.generate_private_key(public_exponent=65537, key_size=4096)
    else:
        sa_key = ec.generate_private_key(ec.SECP256R1())
    secrets_block = {"bootstraptoken": token()}
    if contract >= (1, 3):
        secrets_block["secretboxencryptionsecret"] = b64(_random.token_bytes(32))
    else:
        secrets_block["aescbcencryptionsecret"] = b64(_random.token_bytes(32))
    return {
        "cluster": {"id": base64.urlsafe_b64encode(_random.token_bytes(32)).decode("ascii"),
                    "secret": b64(_random.token_bytes(32))},
        "secrets": secrets_block,
        "trustdinfo": {"token": token()},
        "certs": {
            "etcd": {"crt": b64(etcd_crt), "key": b64(etcd_key)},
            "k8s": {"crt": b64(k8s_crt), "key": b64(k8s_key)},
            "k8saggregator": {"crt": b64(agg_crt), "key": b64(agg_key)},
            "k8sserviceaccount": {"key": b64(key_pem(sa_key))},
            "os": {"crt": b64(os_crt), "key": b64(os_key)},
        },
    }


def _cert_pair(bundle, name):
    entry = ((bundle.get("certs") or {}).get(name)) or {}
    if not entry.get("crt") or not entry.get("key"):
        raise TalosConfigError("secrets bundle: certs.%s needs crt and key" % name)
    crt = unb64(entry["crt"], "certs.%s.crt" % name)
    key = unb64(entry["key"], "certs.%s.key" % name)
    try:
        cert = x509.load_pem_x509_certificate(crt)
        priv = load_key(key)
    except ValueError as exc:
        raise TalosConfigError("secrets bundle: certs.%s does not parse: %s" % (name, exc))
    if cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) != \
            priv.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo):
        raise TalosConfigError("secrets bundle: certs.%s key does not belong to its certificate" % name)
    return cert, priv


def validate_bundle(bundle):
    """Check a bundle (generated here, by talosctl, or brought by the user); returns a summary (no secrets)."""
    if not HAS_CRYPTOGRAPHY:
        raise TalosConfigError("the cryptography package is required to read Talos secrets")
    if not isinstance(bundle, dict):
        raise TalosConfigError("secrets bundle is not a mapping")
    summary = {"certs": {}}
    for name in CERTS:
        cert, priv = _cert_pair(bundle, name)
        if name == "os" and not isinstance(priv, ed25519.Ed25519PrivateKey):
            raise TalosConfigError("secrets bundle: certs.os must be Ed25519 (all Talos API keys are)")
        summary["certs"][name] = {"not_after": cert.not_valid_after_utc.isoformat(),
                                  "subject": cert.subject.rfc4514_string(),
                                  "key_type": type(priv).__name__.replace("PrivateKey", "").lstrip("_")}
    sa = ((bundle.get("certs") or {}).get("k8sserviceaccount") or {}).get("key")
    if not sa:
        raise TalosConfigError("secrets bundle: certs.k8sserviceaccount.key is missing")
    try:
        load_key(unb64(sa, "certs.k8sserviceaccount.key"))
    except ValueError as exc:
        raise TalosConfigError("secrets bundle: certs.k8sserviceaccount.key does not parse: %s" % exc)
    sec = bundle.get("secrets") or {}
    if not TOKEN_RE.match(str(sec.get("bootstraptoken") or "")):
        raise TalosConfigError("secrets bundle: secrets.bootstraptoken is not [a-z0-9]{6}.[a-z0-9]{16}")
    if bool(sec.get("secretboxencryptionsecret")) == bool(sec.get("aescbcencryptionsecret")):
        raise TalosConfigError("secrets bundle: exactly one of secrets.secretboxencryptionsecret and "
                               "secrets.aescbcencryptionsecret must be set")
    for field in ("secretboxencryptionsecret", "aescbcencryptionsecret"):
        if sec.get(field) and len(unb64(sec[field], "secrets." + field)) != 32:
            raise TalosConfigError("secrets bundle: secrets.%s must be 32 bytes" % field)
    if not TOKEN_RE.match(str((bundle.get("trustdinfo") or {}).get("token") or "")):
        raise TalosConfigError("secrets bundle: trustdinfo.token is not [a-z0-9]{6}.[a-z0-9]{16}")
    cluster = bundle.get("cluster") or {}
    if not cluster.get("id") or not cluster.get("secret"):
        raise TalosConfigError("secrets bundle: cluster.id and cluster.secret are required")
    summary["os_ca_fingerprint"] = spki_fingerprint(_cert_pair(bundle, "os")[0])
    return summary


def spki_fingerprint(cert):
    """base64 of SHA-256 over SubjectPublicKeyInfo (how Talos prints certificate fingerprints)."""
    digest = hashes.Hash(hashes.SHA256())
    digest.update(cert.public_key().public_bytes(serialization.Encoding.DER,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo))
    return base64.b64encode(digest.finalize()).decode("ascii")


def pem_of(bundle, name, part="crt"):
    """The PEM bytes of ``certs.<name>.<part>``."""
    return unb64(bundle["certs"][name][part], "certs.%s.%s" % (name, part))


# -- the file ---------------------------------------------------------------------------------------
def load_bundle(path):
    if not HAS_YAML:
        raise TalosConfigError("PyYAML is required to read the secrets bundle")
    try:
        with open(path, "r") as f:
            return yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise TalosConfigError("cannot read secrets bundle %s: %s" % (path, exc))


def write_private(path, text):
    """Write atomically with mode 0600 (the temporary file is 0600 from the start)."""
    directory = os.path.dirname(os.path.abspath(path)) or "."
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), dir=directory)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def plan_secrets(path):
    """What :func:`ensure_secrets` would do: ``generate`` (no file), ``keep`` or ``fix_mode`` (too open)."""
    if not os.path.exists(path):
        return {"action": "generate", "path": path}
    mode = os.stat(path).st_mode & 0o777
    return {"action": "fix_mode" if mode & 0o077 else "keep", "path": path, "mode": "%04o" % mode}


def ensure_secrets(path, talos_version=DEFAULT_TALOS_VERSION, check_mode=False, now=None):
    """Generate the bundle at ``path`` once; an existing bundle is validated and kept, never regenerated."""
    plan = plan_secrets(path)
    result = {"path": path, "changed": plan["action"] != "keep", "generated": False, "action": plan["action"]}
    if plan["action"] == "generate":
        parse_contract(talos_version)
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise TalosConfigError("directory %s of the secrets bundle does not exist" % directory)
        if check_mode:
            return result
        bundle = generate_bundle(talos_version, now=now)
        write_private(path, yaml.safe_dump(bundle, sort_keys=False, default_flow_style=False))
        result["generated"] = True
    else:
        bundle = load_bundle(path)
        if plan["action"] == "fix_mode" and not check_mode:
            os.chmod(path, 0o600)
    result.update(validate_bundle(bundle))
    result["mode"] = "0600" if not check_mode or plan["action"] == "keep" else plan.get("mode")
    return result


# -- the module's one call -------------------------------------------------------------------------------

def cryptography_library(params=None):
    """The module runner's dependency probe."""
    return [('cryptography', HAS_CRYPTOGRAPHY, CRYPTOGRAPHY_IMPORT_ERROR)]


def run_secrets_module(run):
    """talos_secrets: the module runner's one call."""
    run.context['path'] = run.params['path']
    return ensure_secrets(run.params['path'], run.params['talos_version'], check_mode=run.check_mode)
