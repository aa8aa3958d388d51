# -*- coding: utf-8 -*-
# Copyright: contributors to tazlab.resilience
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""talosconfig parsing and the mutual-TLS context of the Talos API.

Lookup order (as talosctl): an explicit path, ``$TALOSCONFIG``, ``~/.talos/config``,
``/var/run/secrets/talos.dev/config``. ``ca``/``crt``/``key`` are base64 of PEM; Talos labels the
Ed25519 key ``ED25519 PRIVATE KEY`` around PKCS#8 DER, which Python's ssl (OpenSSL) only reads as
``PRIVATE KEY``, so it is relabelled. Credentials may also be given directly (PEM text or base64).
"""

from __future__ import annotations

import base64
import binascii
import os
import ssl
import tempfile

from ansible_collections.tazlab.resilience.plugins.module_utils.talos.errors import TalosConfigError

try:
    import yaml
except ImportError:  # pragma: no cover - PyYAML ships with ansible-core
    HAS_YAML = False
else:
    HAS_YAML = True

DEFAULT_PATHS = ("~/.talos/config", "/var/run/secrets/talos.dev/config")
DEFAULT_PORT = 50000


def find_talosconfig(path=None, environ=None):
    """The talosconfig path to use, or None when there is none."""
    environ = os.environ if environ is None else environ
    if path:
        return os.path.expanduser(path)
    if environ.get("TALOSCONFIG"):
        return os.path.expanduser(environ["TALOSCONFIG"])
    for candidate in DEFAULT_PATHS:
        candidate = os.path.expanduser(candidate)
        if os.path.exists(candidate):
            return candidate
    return None


def _pem(value, what):
    """PEM bytes from PEM text, base64 of PEM (talosconfig) or a path to a PEM file."""
    if value is None or value == "":
        raise TalosConfigError("talos %s is missing" % what)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = value.strip()
    if "-----BEGIN" in text:
        pem = text
    elif os.path.sep in text and os.path.exists(os.path.expanduser(text)):
        with open(os.path.expanduser(text), "r") as f:
            pem = f.read().strip()
    else:
        try:
            pem = base64.b64decode("".join(text.split()), validate=True).decode("utf-8").strip()
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise TalosConfigError("talos %s is neither PEM nor base64 of PEM" % what)
        if "-----BEGIN" not in pem:
            raise TalosConfigError("talos %s is base64 but not of a PEM document" % what)
    return (pem + "\n").encode("utf-8")


def relabel_key(pem):
    """``ED25519 PRIVATE KEY`` -> ``PRIVATE KEY`` (same PKCS#8 DER inside)."""
    return pem.replace(b"-----BEGIN ED25519 PRIVATE KEY-----", b"-----BEGIN PRIVATE KEY-----") \
              .replace(b"-----END ED25519 PRIVATE KEY-----", b"-----END PRIVATE KEY-----")


def split_endpoint(endpoint, default_port=DEFAULT_PORT):
    """``host``, ``host:port``, ``[v6]:port``, ``https://host:port`` -> (host, port)."""
    ep = str(endpoint).strip()
    if "://" in ep:
        ep = ep.split("://", 1)[1]
    ep = ep.rstrip("/")
    if ep.startswith("["):
        host, dummy, rest = ep[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif ep.count(":") == 1:
        host, port = ep.split(":")
    else:
        host, port = ep, ""
    if not host:
        raise TalosConfigError("invalid Talos endpoint %r" % endpoint)
    try:
        return host, int(port) if port else default_port
    except ValueError:
        raise TalosConfigError("invalid port in Talos endpoint %r" % endpoint)


class TalosAuth(object):
    """Endpoints, nodes and the client identity for one context.

    ``insecure=True`` is for nodes in maintenance mode only (``talosctl --insecure``): no client
    certificate, and the node's self-signed certificate cannot be verified.
    """

    def __init__(self, endpoints, ca=None, crt=None, key=None, nodes=None, context=None, source=None, insecure=False):
        if not endpoints:
            raise TalosConfigError("no Talos endpoints%s" % (" in context %r" % context if context else ""))
        self.endpoints = [split_endpoint(e) for e in endpoints]
        self.nodes = list(nodes or [])
        self.insecure = bool(insecure)
        if self.insecure:
            self.ca_pem = self.crt_pem = self.key_pem = None
        else:
            self.ca_pem = _pem(ca, "ca")
            self.crt_pem = _pem(crt, "crt")
            self.key_pem = relabel_key(_pem(key, "key"))
        self.context = context
        self.source = source

    def ssl_context(self):
        """Mutual TLS, verification on: the server must present a cert of our CA matching the address."""
        if self.insecure:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.set_alpn_protocols(["h2"])
            return ctx
        try:
            ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=self.ca_pem.decode("ascii"))
        except ssl.SSLError as exc:
            raise TalosConfigError("talos ca is not a valid certificate: %s" % exc)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.check_hostname = True
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.set_alpn_protocols(["h2"])
        tmp = tempfile.mkdtemp(prefix="talos-tls-")
        try:
            crt, key = os.path.join(tmp, "client.crt"), os.path.join(tmp, "client.key")
            fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(self.key_pem)
            with open(crt, "wb") as f:
                f.write(self.crt_pem)
            try:
                ctx.load_cert_chain(crt, key)
            except ssl.SSLError as exc:
                raise TalosConfigError("talos client crt/key cannot be loaded (%s)" % exc)
        finally:
            for name in ("client.crt", "client.key"):
                try:
                    os.unlink(os.path.join(tmp, name))
                except OSError:
                    pass
            os.rmdir(tmp)
        return ctx


def load_talosconfig(path=None, context=None, environ=None):
    """A :class:`TalosAuth` from a talosconfig file (lookup order as talosctl)."""
    if not HAS_YAML:
        raise TalosConfigError("PyYAML is required to read a talosconfig")
    found = find_talosconfig(path, environ)
    if not found:
        raise TalosConfigError("no talosconfig: give talosconfig/ca/crt/key, set TALOSCONFIG or create ~/.talos/config")
    try:
        with open(found, "r") as f:
            doc = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise TalosConfigError("cannot read talosconfig %s: %s" % (found, exc))
    return auth_from_talosconfig(doc, context=context, source=found)


def auth_from_talosconfig(doc, context=None, source=None):
    if not isinstance(doc, dict):
        raise TalosConfigError("talosconfig %s is not a mapping" % (source or ""))
    contexts = doc.get("contexts") or {}
    name = context or doc.get("context")
    if not name:
        if len(contexts) == 1:
            name = list(contexts)[0]
        else:
            raise TalosConfigError("talosconfig %s has no current context" % (source or ""))
    if name not in contexts:
        raise TalosConfigError("context %r not found in talosconfig %s (have: %s)"
                               % (name, source or "", ", ".join(sorted(contexts)) or "none"))
    ctx = contexts[name] or {}
    return TalosAuth(ctx.get("endpoints") or [], ctx.get("ca"), ctx.get("crt"), ctx.get("key"),
                     nodes=ctx.get("nodes") or [], context=name, source=source)


def resolve_auth(talosconfig=None, context=None, endpoints=None, nodes=None, ca=None, crt=None, key=None,
                 environ=None, insecure=False):
    """Direct ca/crt/key (with endpoints) win; otherwise the talosconfig, with endpoints/nodes overridable."""
    if insecure:
        if not endpoints:
            raise TalosConfigError("endpoints (the maintenance-mode nodes) are required with insecure")
        return TalosAuth(endpoints, nodes=nodes, source="insecure", insecure=True)
    if ca or crt or key:
        if not (ca and crt and key):
            raise TalosConfigError("ca, crt and key must be given together")
        if not endpoints:
            raise TalosConfigError("endpoints are required with ca/crt/key")
        return TalosAuth(endpoints, ca, crt, key, nodes=nodes, source="parameters")
    auth = load_talosconfig(talosconfig, context, environ)
    if endpoints:
        auth.endpoints = [split_endpoint(e) for e in endpoints]
    if nodes:
        auth.nodes = list(nodes)
    return auth
