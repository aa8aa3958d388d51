# -*- coding: utf-8 -*-
# Copyright: contributors to tazlab.resilience
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Secrets encryption at rest with secretbox on a running Talos cluster (talos-hardening.md section 1).

* The secret: 32 random bytes, standard base64, kept in the secrets bundle (secrets.yaml of talos_secrets,
  ``secrets.secretboxencryptionsecret``, mode 0600) - generated there once when the bundle has none
  (bundles of contract <= 1.2 carry only aescbc), never regenerated.
* Talos cannot rotate it: one secretbox key (name ``key2``), no old key for decryption next to a new one;
  replacing the value in place makes every stored Secret unreadable (siderolabs/talos#8702). So a control
  plane whose config already has a *different* secretbox secret is refused, before anything changes.
* ``cluster.secretboxEncryptionSecret`` is patched into each control plane's config (a ``.cluster``
  change: applied without a reboot; Talos re-creates the kube-apiserver static pod), one control plane
  at a time, its apiserver healthy again before the next.
* Then every Secret is read and PUT back unchanged: the apiserver finds it stale (stored with another
  provider) and writes it through secretbox (``kubectl get secrets -A -o json | kubectl replace -f -``).
* Verification on a real cluster: the apiserver metric ``apiserver_storage_transformation_operations_total``
  (``transformation_type="to_storage"``, ``transformer_prefix`` starting ``k8s:enc:secretbox:v1:``) grew
  by at least the number rewritten (:func:`secretbox_writes`), or read ``/registry/secrets/`` from an
  etcd snapshot and check every value starts with ``k8s:enc:secretbox:v1:key2:`` (:func:`stored_summary`).
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets as _random

from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.errors import K8sError
from ansible_collections.tazlab.resilience.plugins.module_utils.talos import patch as tp
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.secrets import load_bundle, write_private

try:
    import yaml
except ImportError:  # pragma: no cover - PyYAML ships with ansible-core
    yaml = None

FIELD = 'secretboxEncryptionSecret'
BUNDLE_FIELD = 'secretboxencryptionsecret'
ROTATION_ISSUE = 'siderolabs/talos#8702'
SECRETBOX_PREFIX = b'k8s:enc:secretbox:v1:'
STORED_PREFIX = b'k8s:enc:secretbox:v1:key2:'
MAGIC = b'k8s\x00'


class SecretboxRefused(Exception):
    pass


def valid_secret(value):
    try:
        raw = base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        return False
    return len(raw) == 32


def new_secret():
    return base64.b64encode(_random.token_bytes(32)).decode('ascii')


def ensure_bundle_secret(path, check_mode=False):
    """(secret, generated): the bundle's secretbox secret, added to the bundle once when it has none."""
    bundle = load_bundle(path)
    block = bundle.get('secrets') or {}
    value = block.get(BUNDLE_FIELD)
    if value:
        if not valid_secret(value):
            raise SecretboxRefused('secrets.%s in %s is not base64 of 32 bytes' % (BUNDLE_FIELD, path))
        return value, False
    value = new_secret()
    if not check_mode:
        bundle.setdefault('secrets', {})[BUNDLE_FIELD] = value
        write_private(path, yaml.safe_dump(bundle, sort_keys=False, default_flow_style=False))
    return value, True


def current_secret(docs):
    v1 = next((d for d in docs if tp.is_v1alpha1(d)), {}) or {}
    return (v1.get('cluster') or {}).get(FIELD) or None


def plan(configs, secret):
    """[{node, action: keep|set}] for {node: config docs}; refuses a different secret already set.

    ``secret`` None: adopt what is set (all control planes must agree), nothing to set where it is missing
    is an error (there is no secret to set)."""
    have = dict((node, current_secret(docs)) for node, docs in configs.items())
    existing = sorted(set(v for v in have.values() if v))
    if len(existing) > 1:
        raise SecretboxRefused('the control planes carry %d different secretbox secrets: Secrets written through '
                               'one apiserver are unreadable on the others. Talos cannot rotate the secretbox secret '
                               '(%s); fix this by hand before going on.' % (len(existing), ROTATION_ISSUE))
    if secret is not None and not valid_secret(secret):
        raise SecretboxRefused('the secretbox secret must be base64 of 32 random bytes')
    if existing and secret is not None and existing[0] != secret:
        nodes = sorted(n for n, v in have.items() if v)
        raise SecretboxRefused(
            'refusing to change the secretbox secret already set on %s: Talos has one secretbox key and no way to '
            'keep the old one for decryption, so replacing it makes every Secret stored with it unreadable '
            '(%s). Keep the existing secret (put it in the secrets bundle) instead.'
            % (', '.join(nodes), ROTATION_ISSUE))
    want = secret or (existing[0] if existing else None)
    if want is None:
        raise SecretboxRefused('no secretbox secret given and none is set on the control planes')
    steps = [dict(node=n, action='keep' if have[n] == want else 'set') for n in sorted(configs)]
    return want, steps


def patch_docs(secret):
    return [{'cluster': {FIELD: secret}}]


def with_secret(docs, secret):
    return tp.strategic_merge(docs, patch_docs(secret))


# -- verification -------------------------------------------------------------------------------------
_METRIC = re.compile(r'^apiserver_storage_transformation_operations_total\{([^}]*)\}\s+([0-9.eE+-]+)\s*$')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def secretbox_writes(metrics_text):
    """Sum of successful to_storage transformations through secretbox in an apiserver's /metrics text."""
    total = 0.0
    for line in (metrics_text or '').splitlines():
        m = _METRIC.match(line.strip())
        if not m:
            continue
        labels = dict(_LABEL.findall(m.group(1)))
        if labels.get('transformation_type') == 'to_storage' and \
                labels.get('transformer_prefix', '').startswith(SECRETBOX_PREFIX.decode()) and \
                labels.get('status', 'OK') == 'OK':
            total += float(m.group(2))
    return int(total)


def stored_summary(values):
    """{secretbox, aescbc, identity, other, not_secretbox: [keys]} for {etcd key: stored bytes}."""
    out = dict(secretbox=0, aescbc=0, identity=0, other=0, not_secretbox=[])
    for key, value in sorted(values.items()):
        if value.startswith(STORED_PREFIX):
            out['secretbox'] += 1
            continue
        if value.startswith(b'k8s:enc:aescbc:v1:'):
            out['aescbc'] += 1
        elif value.startswith(MAGIC):
            out['identity'] += 1
        else:
            out['other'] += 1
        out['not_secretbox'].append(key)
    return out


def _rewrite_one(client, ns, name):
    """PUT the Secret back unchanged; True when the apiserver wrote it again (a new resourceVersion)."""
    seen = {}

    def read():
        return client.call('get secret %s/%s' % (ns, name), client.core.read_namespaced_secret, namespace=ns, name=name)

    def same(obj):
        seen['rv'] = (obj.get('metadata') or {}).get('resourceVersion')
        return obj

    def write(obj):
        return client.call('replace secret %s/%s' % (ns, name), client.core.replace_namespaced_secret,
                           write=True, namespace=ns, name=name, body=obj)
    dummy, written = client.read_modify_write('rewrite secret %s/%s' % (ns, name), read, same, write)
    return (written.get('metadata') or {}).get('resourceVersion') != seen.get('rv')


def rewrite_all(client, namespace=None):
    """Read every Secret and PUT it back unchanged (409: re-read and try again).

    Returns the Secrets the apiserver really wrote again (a new resourceVersion: it found them stale, i.e.
    stored with another provider); an unchanged PUT of a Secret already stored with the first provider is a
    no-op, so a second run reports nothing."""
    if namespace:
        listed = client.items(client.call('list secrets in %s' % namespace, client.core.list_namespaced_secret,
                                          namespace=namespace))
    else:
        listed = client.items(client.call('list secrets', client.core.list_secret_for_all_namespaces))
    done = []
    for s in listed:
        ns, name = s['metadata']['namespace'], s['metadata']['name']
        try:
            if _rewrite_one(client, ns, name):
                done.append('%s/%s' % (ns, name))
        except K8sError as exc:
            if exc.kind == 'not_found':   # deleted since the list: nothing left to re-encrypt
                continue
            raise
    return done
