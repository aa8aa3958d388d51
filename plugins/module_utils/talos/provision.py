# -*- coding: utf-8 -*-
# Copyright: contributors to tazlab.resilience
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bring Talos nodes from maintenance mode to a running cluster (talos-provisioning.md, sections 3-4).

1. Probe every node: mutual TLS with the talosconfig answers -> ``configured``; otherwise a certless
   connection to its maintenance address answering MachineStatus stage ``maintenance`` -> ``maintenance``;
   neither -> ``down`` (waited for, bounded: the VM may still boot).
2. Plan (pure, :func:`make_plan`): apply the config to every maintenance node; bootstrap etcd on the one
   bootstrap control plane only when every control plane answers with mutual TLS and none has an etcd
   member (so a rerun never bootstraps again, and a replacement control plane joins instead); write the
   kubeconfig unless the file there is still good (same cluster CA, server, cert not expiring).
3. Execute: the maintenance server's self-signed certificate is read and its SPKI fingerprint checked
   against a pin (or reported), ApplyConfiguration (mode AUTO, no client cert), wait for the install and
   reboot (mutual TLS answers), Bootstrap once (AlreadyExists is done), wait for etcd (every control plane a
   voting member, healthy), every node RUNNING and ready, then the Kubeconfig RPC, then Kubernetes: every
   node Ready and the ``default/kubernetes`` endpoints listing every control plane.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import os
import socket
import ssl

from ansible_collections.tazlab.resilience.plugins.module_utils.retry import WaitTimeout, wait_until, wait_until_async
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.errors import (
    TalosApiError, TalosConfigError, TalosDisconnected, TalosError, TalosTimeout, TalosTLSError, TalosUnreachable)
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.kubeconfig import fetch_kubeconfig
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.talosconfig import split_endpoint

try:
    import yaml
    HAS_YAML = True
except ImportError:  # pragma: no cover
    HAS_YAML = False

ROLES = ('controlplane', 'worker')
RENEW_BEFORE = datetime.timedelta(days=30)
_DOWN = (TalosUnreachable, TalosDisconnected, TalosTimeout)
CONFIGURED, MAINTENANCE, PENDING, DOWN = 'configured', 'maintenance', 'pending', 'down'


# ------------------------------------------------------------------------------------------ input

def normalise_nodes(nodes, bootstrap_node=None):
    """Check the nodes before anything is sent; returns (nodes, bootstrap node name)."""
    out, names = [], set()
    for raw in nodes or []:
        n = dict(raw or {})
        if not n.get('name'):
            raise TalosConfigError('every node needs a name')
        if n['name'] in names:
            raise TalosConfigError('node %s is given twice' % n['name'])
        names.add(n['name'])
        if n.get('role') not in ROLES:
            raise TalosConfigError('node %s: role must be controlplane or worker, not %r' % (n['name'], n.get('role')))
        if not n.get('address'):
            raise TalosConfigError('node %s: address (where it answers now) is required' % n['name'])
        split_endpoint(n['address'])
        n['talos_address'] = n.get('talos_address') or n['address']
        split_endpoint(n['talos_address'])
        if n.get('config') is None and n.get('config_file'):
            try:
                with open(n['config_file'], 'r') as f:
                    n['config'] = f.read()
            except OSError as exc:
                raise TalosConfigError('node %s: cannot read config_file %s: %s' % (n['name'], n['config_file'], exc))
        if not n.get('config'):
            raise TalosConfigError('node %s: config or config_file (its machine config) is required' % n['name'])
        kind = machine_type(n['config'])
        if kind not in (None, n['role']):
            raise TalosConfigError('node %s is a %s but its config has machine.type %s' % (n['name'], n['role'], kind))
        out.append(n)
    cps = [n['name'] for n in out if n['role'] == 'controlplane']
    if not cps:
        raise TalosConfigError('no control plane among the nodes')
    boot = bootstrap_node or cps[0]
    if boot not in cps:
        raise TalosConfigError('bootstrap_node %s is not one of the control planes (%s)' % (boot, ', '.join(cps)))
    return out, boot


def _docs(text):
    return [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]


def machine_type(config_text):
    """machine.type of the v1alpha1 document, or None."""
    for doc in _docs(config_text):
        if doc.get('version') == 'v1alpha1' or 'machine' in doc:
            t = (doc.get('machine') or {}).get('type')
            return {'init': 'controlplane'}.get(t, t)
    return None


def cluster_ca(config_text):
    """The Kubernetes CA certificate (PEM bytes) of a control-plane config, or None."""
    for doc in _docs(config_text):
        crt = ((doc.get('cluster') or {}).get('ca') or {}).get('crt')
        if crt:
            return base64.b64decode(crt)
    return None


# ---------------------------------------------------------------------------------- fingerprints

def peer_spki_fingerprint(endpoint, timeout=10.0):
    """The SPKI fingerprint (base64 SHA-256, as Talos prints it) of the certificate served at ``endpoint``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    host, port = split_endpoint(endpoint)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(['h2'])
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            with ctx.wrap_socket(sock, server_hostname=host) as tls:
                der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError) as exc:
        raise TalosUnreachable('cannot read the certificate of %s:%s: %s' % (host, port, exc))
    cert = x509.load_der_x509_certificate(der)
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode('ascii')


# -------------------------------------------------------------------------------------- kubeconfig

def kubeconfig_ok(text, ca_pem, server=None, now=None):
    """(ok, reason): is an existing kubeconfig still the right one (same CA, server, cert valid > 30 days)?"""
    from cryptography import x509
    now = now or datetime.datetime.now(datetime.timezone.utc)
    try:
        doc = yaml.safe_load(text) or {}
        cluster = doc['clusters'][0]['cluster']
        user = doc['users'][0]['user']
        ca_data = base64.b64decode(cluster['certificate-authority-data'])
        crt = x509.load_pem_x509_certificate(base64.b64decode(user['client-certificate-data']))
    except Exception as exc:  # noqa: BLE001 - any doubt: fetch a new one
        return False, 'unreadable (%s)' % type(exc).__name__
    if server and cluster.get('server') != server:
        return False, 'server is %s, not %s' % (cluster.get('server'), server)
    if ca_pem is not None:
        if ca_pem.strip() not in ca_data:
            return False, 'issued by another cluster CA'
        try:
            crt.verify_directly_issued_by(x509.load_pem_x509_certificate(ca_pem))
        except Exception:  # noqa: BLE001
            return False, 'client certificate not issued by the cluster CA'
    if crt.not_valid_after_utc - now < RENEW_BEFORE:
        return False, 'client certificate expires %s' % crt.not_valid_after_utc.isoformat()
    return True, 'valid until %s' % crt.not_valid_after_utc.isoformat()


def set_server(text, server):
    doc = yaml.safe_load(text)
    for c in doc.get('clusters') or []:
        c['cluster']['server'] = server
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)


def write_private(path, text):
    from ansible_collections.tazlab.resilience.plugins.module_utils.talos.secrets import write_private as wp
    wp(path, text)


# ------------------------------------------------------------------------------------------ probe

async def probe(secure, insecure, node):
    """(state, detail) of one node; never raises for a node that does not answer."""
    reasons = []
    secure_tls = False
    if secure is not None:
        try:
            st = await secure.machine_status(endpoint=node['talos_address'], retries=0)
            return CONFIGURED, st
        except TalosTLSError as exc:
            secure_tls = True
            reasons.append(str(exc))
        except _DOWN as exc:
            reasons.append(str(exc))
        except TalosApiError as exc:
            if exc.status not in ('UNAVAILABLE', 'DEADLINE_EXCEEDED'):
                raise
            reasons.append(str(exc))
    try:
        st = await insecure.machine_status(endpoint=node['address'], retries=0)
    except TalosTLSError as exc:
        reasons.append(str(exc))
        if secure_tls and node['role'] == 'worker':
            # Configured (it wants a client certificate) but its own certificate is not valid for our CA yet: a
            # worker gets it from a control plane's trustd once etcd and the API run.
            return PENDING, '; '.join(reasons)
        return DOWN, '; '.join(reasons)
    except (TalosApiError,) + _DOWN as exc:
        reasons.append(str(exc))
        return DOWN, '; '.join(reasons)
    if st['stage'] == 'maintenance':
        return MAINTENANCE, st
    return DOWN, 'answers without a client certificate in stage %s: %s' % (st['stage'], '; '.join(reasons))


async def etcd_members(secure, node):
    try:
        members = await secure.etcd_member_list(endpoint=node['talos_address'])
    except (TalosApiError,) + _DOWN + (TalosTLSError,):
        return None
    return members or None


# ------------------------------------------------------------------------------------------- plan

def make_plan(nodes, states, boot, members, kubeconfig):
    """The plan (pure). states: {name: state}; members: {cp name: member list or None};
    kubeconfig: {'write': bool, 'reason': str}."""
    cps = [n for n in nodes if n['role'] == 'controlplane']
    apply = [n['name'] for n in nodes if states[n['name']] == MAINTENANCE]
    have_etcd = sorted(name for name, m in members.items() if m)
    # A worker cannot answer before a control plane's trustd signs its certificate: pending, waited for later.
    down = [n['name'] for n in nodes if states[n['name']] == DOWN and (n['role'] == 'controlplane' or have_etcd)]
    states = dict(states)
    for n in nodes:
        if states[n['name']] == DOWN and n['name'] not in down:
            states[n['name']] = PENDING
    all_cps_answer = all(states[n['name']] in (CONFIGURED, MAINTENANCE) for n in cps)
    bootstrap = not have_etcd and all_cps_answer
    why = ('etcd members exist on %s' % ', '.join(have_etcd) if have_etcd else
           'control planes %s do not answer yet' % ', '.join(n['name'] for n in cps if states[n['name']] == DOWN)
           if not all_cps_answer else 'no control plane has an etcd member')
    return dict(apply=apply, down=down, bootstrap=boot if bootstrap else None, bootstrap_reason=why,
                bootstrap_node=boot, kubeconfig=kubeconfig,
                states=dict((n['name'], states[n['name']]) for n in nodes))


# ---------------------------------------------------------------------------------------- waiting

async def poll(what, fn, timeout, interval):
    """Call ``await fn()`` until it returns (value, True); raise TalosTimeout with the last value."""
    try:
        value, _done = await wait_until_async(fn, lambda read: read[1], float(timeout), interval=interval, what=what)
    except WaitTimeout as exc:
        raise TalosTimeout('%s not reached within %ss (last: %s)' % (what, timeout, exc.last[0])) from None
    return value


class Provisioner(object):
    """One run. ``secure``/``insecure``: TalosClient-like objects (mutual TLS / certless);
    ``k8s_factory(kubeconfig_path)`` returns a K8sClient-like object (list_nodes, get_endpoints)."""

    def __init__(self, params, secure, insecure, k8s_factory=None, fingerprint=peer_spki_fingerprint, log=None):
        self.p = params
        self.secure = secure
        self.insecure = insecure
        self.k8s_factory = k8s_factory
        self.fingerprint = fingerprint
        self.interval = float(params.get('poll_interval') or 2.0)
        self.steps = []
        self.log = log if log is not None else []

    def step(self, name, **info):
        info['step'] = name
        self.steps.append(info)

    # -- read and plan
    async def read(self, nodes, boot):
        states, details = {}, {}
        cp_names = set(n['name'] for n in nodes if n['role'] == 'controlplane')
        etcd_seen = False
        for n in nodes:
            if n['role'] == 'controlplane' and await etcd_members(self.secure, n):
                etcd_seen = True
                break

        async def probe_all():
            for n in nodes:
                if states.get(n['name']) in (CONFIGURED, MAINTENANCE, PENDING):
                    continue
                states[n['name']], details[n['name']] = await probe(self.secure, self.insecure, n)
            # Before etcd runs a configured worker cannot answer at all: only control planes are waited for.
            down = [k for k, v in states.items() if v == DOWN and (k in cp_names or etcd_seen)]
            return dict((k, details[k]) for k in down), not down
        try:
            await poll('every node answering (maintenance mode or configured)', probe_all,
                       float(self.p.get('maintenance_timeout') or 300), self.interval)
        except TalosTimeout:
            pass  # reported with the plan: nodes that stay down stop the run before any change
        members = {}
        for n in nodes:
            if n['role'] == 'controlplane' and states[n['name']] == CONFIGURED:
                members[n['name']] = await etcd_members(self.secure, n)
        return states, details, members

    def kubeconfig_plan(self, nodes):
        dest = self.p.get('kubeconfig_dest')
        if not dest:
            return dict(write=False, reason='no kubeconfig_dest')
        if not os.path.exists(dest):
            return dict(write=True, reason='no file at %s' % dest)
        with open(dest, 'r') as f:
            text = f.read()
        cp = next(n for n in nodes if n['role'] == 'controlplane')
        ok, reason = kubeconfig_ok(text, cluster_ca(cp['config']), self.p.get('kubeconfig_server'))
        if ok and os.stat(dest).st_mode & 0o077:
            return dict(write=True, reason='mode too open', fix_mode_only=True)
        return dict(write=not ok, reason=reason)

    # -- actions
    async def apply(self, node):
        pinned = (self.p.get('maintenance_fingerprints') or {}).get(node['name'])
        fp = None
        try:
            fp = self.fingerprint(node['address'])
        except TalosError as exc:
            if pinned:
                raise
            self.log.append('%s: certificate not read: %s' % (node['name'], exc))
        if pinned and fp != pinned:
            raise TalosTLSError('node %s at %s presents a maintenance certificate with SPKI fingerprint %s, not the '
                                'pinned %s: refusing to send it its config (secrets)' % (
                                    node['name'], node['address'], fp, pinned))

        async def once():
            try:
                out = await self.insecure.apply_configuration(node['config'], mode='auto', endpoint=node['address'])
                return out, True
            except TalosApiError as exc:
                if exc.status == 'INVALID_ARGUMENT':
                    raise TalosError('node %s refused its config: %s' % (node['name'], exc))
                return str(exc), False
            except _DOWN as exc:
                return str(exc), False
        out = await poll('config accepted by %s' % node['name'], once, float(self.p.get('apply_timeout') or 120),
                         self.interval)
        self.step('apply', node=node['name'], address=node['address'], fingerprint=fp, pinned=bool(pinned),
                  mode=out.get('mode'))
        return fp

    async def wait_installed(self, node):
        """Installed and rebooted: the node answers with mutual TLS (a control plane sits in Booting until
        bootstrap, a worker needs a control plane's trustd for its certificate)."""
        async def once():
            try:
                st = await self.secure.machine_status(endpoint=node['talos_address'], retries=0)
                return st, st['stage'] in ('booting', 'running')
            except (TalosTLSError, TalosApiError) + _DOWN as exc:
                return str(exc), False
        return await poll('%s installed and answering with its config' % node['name'], once,
                          float(self.p.get('install_timeout') or 900), self.interval)

    async def bootstrap(self, node):
        async def once():
            try:
                await self.secure.bootstrap(endpoint=node['talos_address'])
                return 'bootstrapped', True
            except TalosApiError as exc:
                if exc.status == 'ALREADY_EXISTS':
                    return 'already bootstrapped', True
                if exc.status in ('FAILED_PRECONDITION', 'UNAVAILABLE'):
                    return str(exc), False
                raise
            except _DOWN as exc:
                return str(exc), False
        out = await poll('bootstrap of %s' % node['name'], once, float(self.p.get('bootstrap_timeout') or 300),
                         self.interval)
        self.step('bootstrap', node=node['name'], result=out)
        return out

    async def wait_etcd(self, cps):
        want = len(cps)

        async def once():
            seen = None
            for n in cps:
                try:
                    seen = await self.secure.etcd_member_list(endpoint=n['talos_address'])
                    break
                except (TalosApiError, TalosTLSError) + _DOWN:
                    continue
            if not seen:
                return 'no member list', False
            voters = [m for m in seen if not m['is_learner']]
            if len(seen) != want or len(voters) != want:
                return 'members %s (learners: %s)' % (sorted(m['hostname'] for m in seen),
                                                      sorted(m['hostname'] for m in seen if m['is_learner'])), False
            for n in cps:
                try:
                    st = await self.secure.etcd_status(endpoint=n['talos_address'], retries=0)
                except (TalosApiError, TalosTLSError) + _DOWN as exc:
                    return 'etcd on %s: %s' % (n['name'], exc), False
                if st['errors']:
                    return 'etcd on %s: %s' % (n['name'], st['errors']), False
            return sorted(m['hostname'] for m in seen), True
        members = await poll('etcd with %d voting members' % want, once, float(self.p.get('etcd_timeout') or 600),
                             self.interval)
        self.step('etcd', members=members)
        return members

    async def wait_ready(self, node):
        async def once():
            try:
                st = await self.secure.machine_status(endpoint=node['talos_address'], retries=0)
                return st, st['stage'] == 'running' and st['ready']
            except (TalosTLSError, TalosApiError) + _DOWN as exc:
                return str(exc), False
        return await poll('%s RUNNING and ready' % node['name'], once, float(self.p.get('ready_timeout') or 900),
                          self.interval)

    async def kubeconfig(self, cps):
        last = None
        for n in cps:
            try:
                data = await fetch_kubeconfig(self.secure, endpoint=n['talos_address'])
                break
            except (TalosApiError, TalosTLSError) + _DOWN as exc:
                last = exc
        else:
            raise TalosError('no control plane returned a kubeconfig: %s' % last)
        text = data.decode('utf-8')
        if self.p.get('kubeconfig_server'):
            text = set_server(text, self.p['kubeconfig_server'])
        write_private(self.p['kubeconfig_dest'], text)
        self.step('kubeconfig', dest=self.p['kubeconfig_dest'], source=n['name'])

    def wait_kubernetes(self, nodes, cps, sleep, clock):
        from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.errors import K8sError
        k8s = self.k8s_factory(self.p['kubeconfig_dest'])
        names = set(n['name'] for n in nodes)

        def probe():
            listing = k8s.list_nodes()
            items = listing.get('items', []) if isinstance(listing, dict) else listing
            ready = set()
            for item in items:
                conds = (item.get('status') or {}).get('conditions') or []
                if any(c.get('type') == 'Ready' and c.get('status') == 'True' for c in conds):
                    ready.add(item['metadata']['name'])
            ep = k8s.get_endpoints('default', 'kubernetes') or {}
            addrs = [a.get('ip') for s in ep.get('subsets') or [] for a in s.get('addresses') or []]
            return ready, addrs, sorted(names - ready)

        try:
            ready, addrs, _missing = wait_until(
                probe, lambda read: not read[2] and len(read[1]) >= len(cps),
                float(self.p.get('kubernetes_timeout') or 600), interval=self.interval,
                is_transient=lambda exc: isinstance(exc, K8sError), sleep=sleep, clock=clock, what='Kubernetes')
        except WaitTimeout as exc:
            last = str(exc.last_error) if exc.last_error is not None else \
                'not Ready: %s; kubernetes endpoints: %s' % (exc.last[2], exc.last[1])
            raise TalosTimeout('Kubernetes not ready within %ss (last: %s)'
                               % (self.p.get('kubernetes_timeout') or 600, last)) from None
        self.step('kubernetes', ready=sorted(ready), kubernetes_endpoints=sorted(addrs))
        return sorted(ready), sorted(addrs)


async def run_provision(params, secure, insecure, k8s_factory=None, check_mode=False, fingerprint=None):
    """The module's whole run (async part). Returns the result dict."""
    import time
    nodes, boot = normalise_nodes(params.get('nodes'), params.get('bootstrap_node'))
    prov = Provisioner(params, secure, insecure, k8s_factory, fingerprint=fingerprint or peer_spki_fingerprint)
    states, details, members = await prov.read(nodes, boot)
    plan = make_plan(nodes, states, boot, members, prov.kubeconfig_plan(nodes))
    changed = bool(plan['apply'] or plan['bootstrap'] or plan['kubeconfig']['write'])
    result = dict(changed=changed, plan=plan, bootstrap_node=boot, steps=prov.steps, log=prov.log)
    if plan['down']:
        raise TalosError('nodes %s answer neither with the talosconfig nor in maintenance mode: %s' % (
            ', '.join(plan['down']), '; '.join('%s: %s' % (k, details[k]) for k in plan['down'])))
    if check_mode:
        return result
    by_name = dict((n['name'], n) for n in nodes)
    cps = [n for n in nodes if n['role'] == 'controlplane']
    fingerprints = {}
    for name in plan['apply']:
        fingerprints[name] = await prov.apply(by_name[name])
    result['fingerprints'] = fingerprints
    for n in cps:
        await prov.wait_installed(n)
    if plan['bootstrap']:
        await prov.bootstrap(by_name[plan['bootstrap']])
    result['etcd_members'] = await prov.wait_etcd(cps)
    for n in nodes:
        await prov.wait_ready(n)
    if plan['kubeconfig']['write']:
        if plan['kubeconfig'].get('fix_mode_only'):
            os.chmod(params['kubeconfig_dest'], 0o600)
        else:
            await prov.kubeconfig(cps)
    if params.get('kubeconfig_dest') and params.get('wait_kubernetes', True) and k8s_factory is not None:
        loop = asyncio.get_running_loop()
        ready, endpoints = await loop.run_in_executor(None, prov.wait_kubernetes, nodes, cps, time.sleep, time.monotonic)
        result.update(nodes_ready=ready, kubernetes_endpoints=endpoints)
    return result


def k8s_factory(params):
    """Build the Kubernetes client that checks the fetched kubeconfig (kubernetes imported only when it runs)."""
    def build(path):
        from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.client import client_from_params
        return client_from_params(dict(kubeconfig=path, validate_certs=params['k8s_validate_certs'],
                                       request_timeout=15.0, api_retries=3, api_retry_deadline=20.0))
    return build


def run_provision_module(run):
    """talos_provision: the module runner's one call (grpclib is imported only here)."""
    from ansible_collections.tazlab.resilience.plugins.module_utils.talos.client import TalosClient
    from ansible_collections.tazlab.resilience.plugins.module_utils.talos.talosconfig import resolve_auth

    p = run.params
    nodes = p['nodes']
    kwargs = dict(timeout=p['timeout'], connect_timeout=p['connect_timeout'], retries=0)

    async def main_async():
        secure_auth = resolve_auth(talosconfig=p['talosconfig'], context=p['context'],
                                   endpoints=[n.get('talos_address') or n['address'] for n in nodes])
        insecure_auth = resolve_auth(endpoints=[n['address'] for n in nodes], insecure=True)
        async with TalosClient(secure_auth, **kwargs) as secure, TalosClient(insecure_auth, **kwargs) as insecure:
            return await run_provision(p, secure, insecure, k8s_factory(p) if p['kubeconfig_dest'] else None,
                                       check_mode=run.check_mode)
    return asyncio.run(main_async())
