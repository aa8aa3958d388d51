# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""tazlab.resilience.node_health: an ansible-rulebook event source for dead Kubernetes nodes.

Watches Nodes and the kubelets' Leases (``kube-node-lease``) through the Kubernetes watch API and
reads the VMs' power state through Proxmox at an interval; emits one event per change that matters:

* ``node_unhealthy``: a node has been unhealthy (not Ready, its kubelet lease silent, or its VM
  stopped) for the confirmation window (``unhealthy_seconds``, or ``powered_off_seconds`` when
  Proxmox reads its VM stopped), judged on the API server's clock. A node that turns healthy again
  within the window (flapping) produces no event at all.
* ``node_recovered``: a node reported unhealthy is Ready again with a live lease and a running VM.
* ``source_degraded`` / ``source_restored``: the source lost (regained) the Kubernetes API or Proxmox.

Events carry no secrets (no credentials, no tokens: only node facts). The logic (``NodeHealth``) is
plain Python that unit tests drive without ansible-rulebook; ``main(queue, args)`` is the source
plugin contract (docs/sources.rst of ansible-rulebook).

Arguments (all optional; connection settings have the modules' names and environment variables):

kubernetes: dict of the k8s_auth options (kubeconfig, context, host, api_key, validate_certs, ca_cert,
    client_cert, client_key, proxy, impersonate_user); each falls back to K8S_AUTH_<OPTION>.
proxmox: dict of the proxmox_auth options (api_host, api_port, api_user, api_password, api_token_id,
    api_token_secret, validate_certs, ca_path, api_timeout); each falls back to PROXMOX_<...>.
    Without api_host (and no PROXMOX_HOST) the VM power state is not read and reads ``unknown``.
unhealthy_seconds: confirmation window for a node that is not Ready or whose lease is silent (30).
powered_off_seconds: confirmation window when Proxmox reads the VM stopped (0: at once).
lease_grace_seconds: a lease not renewed for this long makes a node unhealthy although it reads Ready (40).
proxmox_interval: seconds between two Proxmox reads (2).
tick: seconds between two evaluations of the windows (0.5).
clock_interval: seconds between two readings of the API server's clock (its Date header) (1). Windows and
    lease ages are judged on that clock, at the rate it is seen to run (not this machine's).
watch_timeout: timeoutSeconds asked for each watch; the source re-watches when the server ends it (300).
request_timeout: seconds for one list or Proxmox request (30).
degraded_after: consecutive failures of the API or of Proxmox before source_degraded (3).
nodes: only these node names (default: every node).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import os
import sys
import threading
import time

DOCUMENTATION = r"""
---
short_description: Dead Kubernetes nodes, from the Kubernetes watch API and Proxmox VM power states.
description:
  - Watches Nodes and kubelet Leases and reads the VMs' power state through Proxmox; emits
    node_unhealthy, node_recovered, source_degraded and source_restored, one event per change.
options:
  kubernetes:
    description: Kubernetes connection options (the tazlab.resilience.k8s_auth names; K8S_AUTH_* fallbacks).
    type: dict
  proxmox:
    description: Proxmox connection options (the tazlab.resilience.proxmox_auth names; PROXMOX_* fallbacks).
    type: dict
  unhealthy_seconds:
    description: Seconds a node must stay not Ready (or lease-silent) before node_unhealthy.
    type: float
    default: 30
  powered_off_seconds:
    description: Seconds a node's VM must read stopped before node_unhealthy.
    type: float
    default: 0
  lease_grace_seconds:
    description: A lease silent this long makes a Ready node unhealthy.
    type: float
    default: 40
  proxmox_interval:
    description: Seconds between two Proxmox reads.
    type: float
    default: 2
  watch_timeout:
    description: timeoutSeconds of each watch request.
    type: int
    default: 300
  nodes:
    description: Only these nodes.
    type: list
    elements: str
"""

EXAMPLES = r"""
- name: Recover dead nodes
  hosts: all
  sources:
    - tazlab.resilience.node_health:
        kubernetes: "{{ tazlab_kubernetes }}"
        proxmox: "{{ tazlab_proxmox }}"
        unhealthy_seconds: 60
  rules:
    - name: Show
      condition: event.type == "node_unhealthy"
      action:
        print_event:
"""

log = logging.getLogger("tazlab.resilience.node_health")

K8S_ENV = {
    'kubeconfig': ['K8S_AUTH_KUBECONFIG'], 'context': ['K8S_AUTH_CONTEXT'], 'host': ['K8S_AUTH_HOST'],
    'api_key': ['K8S_AUTH_API_KEY'], 'username': ['K8S_AUTH_USERNAME'], 'password': ['K8S_AUTH_PASSWORD'],
    'validate_certs': ['K8S_AUTH_VALIDATE_CERTS', 'K8S_AUTH_VERIFY_SSL'],
    'ca_cert': ['K8S_AUTH_CA_CERT', 'K8S_AUTH_SSL_CA_CERT'],
    'client_cert': ['K8S_AUTH_CLIENT_CERT', 'K8S_AUTH_CERT_FILE'],
    'client_key': ['K8S_AUTH_CLIENT_KEY', 'K8S_AUTH_KEY_FILE'],
    'proxy': ['K8S_AUTH_PROXY'], 'impersonate_user': ['K8S_AUTH_IMPERSONATE_USER'],
}
PROXMOX_ENV = {
    'api_host': ['PROXMOX_HOST'], 'api_port': ['PROXMOX_PORT'], 'api_user': ['PROXMOX_USER'],
    'api_password': ['PROXMOX_PASSWORD'], 'api_token_id': ['PROXMOX_TOKEN_ID'],
    'api_token_secret': ['PROXMOX_TOKEN_SECRET'], 'validate_certs': ['PROXMOX_VALIDATE_CERTS'],
    'ca_path': ['PROXMOX_CA_PATH'], 'api_timeout': ['PROXMOX_API_TIMEOUT'],
}
BOOLS = ('validate_certs',)
INTS = ('api_port', 'api_timeout')
LEASE_NAMESPACE = 'kube-node-lease'


# ------------------------------------------------------------------------------ settings
def _bool(value):
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ('1', 'true', 'yes', 'on', 'y')


def connection_settings(given, env_map, environ=None):
    """The options given, completed from the environment (K8S_AUTH_* / PROXMOX_*), typed; None dropped."""
    environ = os.environ if environ is None else environ
    given = dict(given or {})
    unknown = sorted(set(given) - set(env_map))
    if unknown:
        raise ValueError('unknown connection options: {0}'.format(', '.join(unknown)))
    out = {}
    for option, names in env_map.items():
        value = given.get(option)
        if value is None:
            value = next((environ[n] for n in names if environ.get(n) not in (None, '')), None)
        if value is None:
            continue
        if option in BOOLS:
            value = _bool(value)
        elif option in INTS:
            value = int(value)
        out[option] = value
    return out


def parse_time(text):
    """Epoch seconds from a Kubernetes timestamp (RFC 3339, micro or not), or None."""
    if not text:
        return None
    try:
        return datetime.datetime.fromisoformat(str(text).replace('Z', '+00:00')).timestamp()
    except ValueError:
        return None


def iso(epoch):
    if epoch is None:
        return None
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%fZ')


# ------------------------------------------------------------------------------ the logic
class NodeState(object):
    """What the source knows of one node."""

    __slots__ = ('name', 'ready', 'ready_since', 'ready_reason', 'system_uuid', 'renew', 'power', 'vmid',
                 'bad_since', 'reported', 'deleted')

    def __init__(self, name):
        self.name = name
        self.ready = 'Unknown'      # the Ready condition's status: True | False | Unknown
        self.ready_since = None     # its lastTransitionTime (server clock)
        self.ready_reason = None
        self.system_uuid = ''
        self.renew = None           # the kubelet lease's renewTime (server clock)
        self.power = 'unknown'      # the VM's power state per Proxmox: running | stopped | paused | unknown
        self.vmid = None
        self.bad_since = None       # when the source first saw it unhealthy (server clock)
        self.reported = False       # node_unhealthy emitted and not yet followed by node_recovered
        self.deleted = False


class NodeHealth(object):
    """Turns observations (node objects, leases, VM power states, the server's clock) into events.

    Pure: no I/O and no clock of its own. ``observe_*`` record facts; ``evaluate(now)`` returns the
    events due at server time ``now``, each at most once per change.
    """

    def __init__(self, unhealthy_seconds=30.0, powered_off_seconds=0.0, lease_grace_seconds=40.0, nodes=None):
        self.unhealthy_seconds = float(unhealthy_seconds)
        self.powered_off_seconds = float(powered_off_seconds)
        self.lease_grace_seconds = float(lease_grace_seconds)
        self.only = set(nodes) if nodes else None
        self.nodes = {}
        self.sources = {}  # 'kubernetes' | 'proxmox' -> {'ok': bool, 'failures': n, 'error': str}

    def _node(self, name):
        if name not in self.nodes:
            self.nodes[name] = NodeState(name)
        return self.nodes[name]

    def wanted(self, name):
        return bool(name) and (self.only is None or name in self.only)

    # -- observations --------------------------------------------------------------------------
    def observe_node(self, obj, deleted=False):
        meta = obj.get('metadata') or {}
        name = meta.get('name')
        if not self.wanted(name):
            return
        if deleted:
            self.nodes.pop(name, None)
            return
        state = self._node(name)
        status = obj.get('status') or {}
        ready = next((c for c in status.get('conditions') or [] if c.get('type') == 'Ready'), None)
        state.ready = (ready or {}).get('status') or 'Unknown'
        state.ready_since = parse_time((ready or {}).get('lastTransitionTime'))
        state.ready_reason = (ready or {}).get('reason')
        state.system_uuid = (status.get('nodeInfo') or {}).get('systemUUID') or ''

    def observe_lease(self, obj, deleted=False):
        name = (obj.get('metadata') or {}).get('name')
        if not self.wanted(name):
            return
        state = self._node(name)
        state.renew = None if deleted else parse_time((obj.get('spec') or {}).get('renewTime'))

    def observe_vms(self, vms):
        """vms: [{'name', 'vmid', 'status'}] (proxmox inventory.vm_power_states). A node without a VM
        reads unknown."""
        by_name = dict((vm.get('name'), vm) for vm in vms or [])
        for state in self.nodes.values():
            vm = by_name.get(state.name)
            state.power = (vm or {}).get('status') or 'unknown'
            state.vmid = (vm or {}).get('vmid')

    def forget_power(self):
        for state in self.nodes.values():
            state.power = 'unknown'

    def source_result(self, which, ok, error=None, degraded_after=3):
        """Record one success/failure of a source; returns source_degraded / source_restored when it changes."""
        info = self.sources.setdefault(which, {'ok': True, 'failures': 0, 'error': None})
        if ok:
            info['failures'] = 0
            if not info['ok']:
                info['ok'] = True
                info['error'] = None
                return {'type': 'source_restored', 'source': which}
            return None
        info['failures'] += 1
        info['error'] = _scrub(error)
        if info['ok'] and info['failures'] >= max(1, int(degraded_after)):
            info['ok'] = False
            return {'type': 'source_degraded', 'source': which, 'error': info['error'],
                    'failures': info['failures']}
        return None

    # -- judgement -----------------------------------------------------------------------------
    def lease_age(self, state, now):
        return None if state.renew is None or now is None else max(0.0, now - state.renew)

    def problems(self, state, now):
        """Why a node is unhealthy now (empty: healthy)."""
        out = []
        if state.ready != 'True':
            out.append('not_ready')
        age = self.lease_age(state, now)
        if age is not None and age > self.lease_grace_seconds:
            out.append('lease_silent')
        if state.power == 'stopped':
            out.append('powered_off')
        return out

    def evaluate(self, now):
        """Events due at server time `now` (epoch seconds).

        Nodes whose windows close in the same evaluation (a storm: several VMs seen stopped in one Proxmox
        reading) are reported in ONE node_unhealthy event: ``node`` is the first, ``nodes`` all of them, so a
        rule starts one run of the runbook that judges them together (its storm guard decides).
        ``unhealthy_nodes`` lists every node unhealthy at that moment, due or not.
        """
        events = []
        due = []
        unhealthy = []
        for name in sorted(self.nodes):
            state = self.nodes[name]
            problems = self.problems(state, now)
            if not problems:
                if state.bad_since is not None and not state.reported:
                    log.info('node_health: %s healthy again %.1fs after it turned unhealthy, inside its window: '
                             'nothing reported', name, now - state.bad_since)
                state.bad_since = None
                if state.reported and state.power in ('running', 'unknown'):
                    state.reported = False
                    events.append(self._event('node_recovered', state, now, problems))
                continue
            unhealthy.append(name)
            if state.bad_since is None:
                candidates = [now]
                if state.ready != 'True' and state.ready_since is not None:
                    candidates.append(state.ready_since)
                state.bad_since = min(candidates)
                if not state.reported:
                    log.info('node_health: %s unhealthy (%s) since %s on the API server\'s clock', name,
                             ', '.join(problems), iso(state.bad_since))
            if state.reported:
                continue
            window = self.powered_off_seconds if 'powered_off' in problems else self.unhealthy_seconds
            if now - state.bad_since >= window:
                state.reported = True
                due.append(self._event('node_unhealthy', state, now, problems))
        if due:
            first = dict(due[0])
            first['nodes'] = [e['node'] for e in due]
            first['not_ready_seconds'] = min(e['not_ready_seconds'] for e in due)
            first['unhealthy_nodes'] = unhealthy
            if len(due) > 1:
                first['details'] = dict((e['node'], dict((k, e[k]) for k in (
                    'system_uuid', 'ready', 'problems', 'since', 'power_state', 'vmid', 'lease_age_seconds')))
                    for e in due)
            events.append(first)
        return events

    def _event(self, kind, state, now, problems):
        age = self.lease_age(state, now)
        event = {
            'type': kind,
            'node': state.name,
            'system_uuid': state.system_uuid,
            'ready': state.ready,
            'ready_reason': state.ready_reason,
            'ready_since': iso(state.ready_since),
            'lease_renewed': iso(state.renew),
            'lease_age_seconds': None if age is None else round(age, 1),
            'power_state': state.power,
            'vmid': state.vmid,
            'observed_at': iso(now),
        }
        if kind == 'node_unhealthy':
            event['problems'] = problems
            event['since'] = iso(state.bad_since)
            event['unhealthy_seconds'] = round(now - state.bad_since, 1)
            # how long Kubernetes itself has shown it not Ready (its condition's transition, server clock):
            # the runbook's own not-Ready window, measured from that transition, must not make it wait again
            # for what this source already confirmed (its window may have started earlier, on a silent lease)
            event['not_ready_seconds'] = (round(max(0.0, now - state.ready_since), 1)
                                          if state.ready != 'True' and state.ready_since is not None else 0.0)
        return event


def _scrub(error):
    """An error message fit for an event: one line, bounded, without anything that looks like a secret."""
    text = ' '.join(str(error or '').split())[:300]
    for marker in ('PVEAPIToken=', 'Bearer ', 'Basic ', 'password=', 'token='):
        idx = text.find(marker)
        while idx >= 0:
            end = text.find(' ', idx + len(marker))
            text = text[:idx + len(marker)] + '***' + (text[end:] if end >= 0 else '')
            idx = text.find(marker, idx + len(marker) + 3)
    return text


# ------------------------------------------------------------------------------ the clients
def _import_collection():
    """The collection's module_utils. ansible-rulebook loads this file by path, outside Ansible's collection
    loader: when ``ansible_collections.tazlab.resilience`` is not importable, register it as the collection
    this file belongs to (four folders up: extensions/eda/plugins/event_source)."""
    try:
        from ansible_collections.tazlab.resilience.plugins.module_utils.k8s import client as k8s  # noqa: F401
    except ImportError:
        import types
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.abspath(__file__))))))
        for name, path in (('ansible_collections', None), ('ansible_collections.tazlab', None),
                           ('ansible_collections.tazlab.resilience', root)):
            module = sys.modules.get(name)
            if module is None:
                module = types.ModuleType(name)
                module.__path__ = []
                sys.modules[name] = module
            if path and path not in module.__path__:
                module.__path__.append(path)
    from ansible_collections.tazlab.resilience.plugins.module_utils.k8s import client as k8s_mod
    from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox import auth as px_auth
    from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox import client as px_client
    from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox import inventory as px_inventory
    return k8s_mod, px_auth, px_client, px_inventory


class ServerClock(object):
    """The API server's clock, as its responses report it (the ``Date`` header, whole seconds).

    Between two reports the estimate moves at the rate the reports themselves show (server seconds per
    local second, from reports at least ``min_span`` local seconds apart within ``window``), never at an
    assumed real-time rate: a cluster whose clock runs faster or slower than this machine's (a lab's time
    scale, a clock being slewed) is judged on its own clock. Until a rate is known the estimate stays at
    the last report (late, never early: a window is never cut short). A report that contradicts the
    estimate by more than ``jump`` seconds (the clock was set, or its rate changed) starts the rate anew.
    The estimate never runs backwards.
    """

    def __init__(self, monotonic=time.monotonic, window=60.0, min_span=2.0, jump=2.0):
        self.monotonic = monotonic
        self.window = float(window)
        self.min_span = float(min_span)
        self.jump = float(jump)
        self.samples = []   # (local monotonic, server epoch), oldest first
        self._last = None   # the last estimate given (never go back)
        self.resets = 0

    def rate(self):
        """Server seconds per local second, or None while the reports span less than min_span."""
        if len(self.samples) < 2:
            return None
        (l0, s0), (l1, s1) = self.samples[0], self.samples[-1]
        if l1 - l0 < self.min_span:
            return None
        return max(0.0, (s1 - s0) / (l1 - l0))

    def _extrapolate(self, local):
        l1, s1 = self.samples[-1]
        rate = self.rate()
        return s1 if rate is None else s1 + rate * max(0.0, local - l1)

    def observe(self, server_epoch, local=None):
        """Record one report: the server said its time was ``server_epoch`` at local monotonic ``local``."""
        local = self.monotonic() if local is None else float(local)
        server_epoch = float(server_epoch)
        if self.rate() is not None:  # without a rate there is nothing to contradict
            expected = self._extrapolate(local)
            # whole-second reports: one second of truncation, plus what a wrong rate may have drifted
            if abs(server_epoch - expected) > self.jump + 1.0:
                self.samples = []
                self.resets += 1
                if self._last is not None and server_epoch < self._last:
                    self._last = None  # the server's clock went back: follow it
        self.samples.append((local, server_epoch))
        while len(self.samples) > 2 and local - self.samples[1][0] >= self.window:
            self.samples.pop(0)

    def now(self, local=None):
        """The estimate of the server's time now (epoch seconds), or None before the first report."""
        if not self.samples:
            return None
        estimate = self._extrapolate(self.monotonic() if local is None else float(local))
        if self._last is not None and estimate < self._last:
            estimate = self._last
        self._last = estimate
        return estimate


def http_date(text):
    """Epoch seconds from an HTTP Date header, or None (the collection's one HTTP-Date reader, k8s/objects.py)."""
    _import_collection()
    from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.objects import parse_http_date
    return parse_http_date(text)


class Gone(Exception):
    """The watch's resourceVersion expired (410): list again."""


class KubeSide(object):
    """Lists and watches Nodes and Leases with the kubernetes client (blocking: run in threads)."""

    def __init__(self, auth, request_timeout=30.0, watch_timeout=300):
        k8s_mod = _import_collection()[0]
        from kubernetes import client as k8s_client
        self.api = k8s_mod.build_api_client(auth)
        self.core = k8s_client.CoreV1Api(self.api)
        self.coordination = k8s_client.CoordinationV1Api(self.api)
        self.request_timeout = float(request_timeout)
        self.watch_timeout = int(watch_timeout)
        self.clock = ServerClock()  # the API server's clock, from the Date headers of its answers
        self.responses = []         # open watch responses (closed on shutdown)

    def _note_date(self, response):
        when = http_date((getattr(response, 'headers', None) or {}).get('Date'))
        if when is not None:
            self.clock.observe(when)

    def server_now(self):
        """The API server's time now, on its own clock (None before its first answer)."""
        return self.clock.now()

    def refresh_clock(self):
        """GET /api/v1 (discovery): keeps the estimate of the API server's clock fresh (and proves the API answers)."""
        response = self.core.get_api_resources(_preload_content=False, _request_timeout=self.request_timeout)
        self._note_date(response)

    def _func(self, kind):
        if kind == 'node':
            return self.core.list_node, {}
        return self.coordination.list_namespaced_lease, {'namespace': LEASE_NAMESPACE}

    def list(self, kind):
        func, kwargs = self._func(kind)
        response = func(_preload_content=False, _request_timeout=self.request_timeout, **kwargs)
        self._note_date(response)
        data = json.loads(response.data)
        return data.get('items') or [], (data.get('metadata') or {}).get('resourceVersion')

    def watch(self, kind, resource_version, on_event, stop):
        """Watch from resource_version until the server ends the stream; calls on_event(type, obj) and
        returns the last resourceVersion seen. Raises Gone on 410."""
        from kubernetes.watch.watch import iter_resp_lines
        func, kwargs = self._func(kind)
        response = func(watch=True, resource_version=resource_version, allow_watch_bookmarks=True,
                        timeout_seconds=self.watch_timeout, _preload_content=False,
                        _request_timeout=(self.request_timeout, self.watch_timeout + self.request_timeout), **kwargs)
        self._note_date(response)
        self.responses.append(response)
        try:
            for line in iter_resp_lines(response):
                if stop.is_set():
                    break
                if not line:
                    continue
                event = json.loads(line)
                kind_ = event.get('type')
                obj = event.get('object') or {}
                if kind_ == 'ERROR':
                    if obj.get('code') == 410:
                        raise Gone(obj.get('message'))
                    raise RuntimeError('watch error: {0}'.format(obj.get('message')))
                rv = (obj.get('metadata') or {}).get('resourceVersion')
                if rv:
                    resource_version = rv
                if kind_ != 'BOOKMARK':
                    on_event(kind_, obj)
        finally:
            try:
                self.responses.remove(response)
            except ValueError:
                pass
            response.release_conn()
        return resource_version

    def close(self):
        for response in list(self.responses):
            try:
                response.shutdown() if hasattr(response, 'shutdown') else response.close()
            except Exception:  # noqa: BLE001 - closing on the way out
                pass


class ProxmoxSide(object):
    def __init__(self, settings_dict):
        _k8s, px_auth, px_client, px_inventory = _import_collection()
        self.client = px_client.ProxmoxClient(px_auth.ConnectionSettings(**settings_dict))
        self.inventory = px_inventory

    def read(self):
        # One listing (cluster/resources), no config read per VM: the source only triggers, by node name;
        # the runbook proves identity (SMBIOS UUID) itself. (With identities, 500 VMs were 500 more requests
        # per reading and ten seconds of detection on the 500-node cluster.)
        return self.inventory.vm_power_states(self.client, identities=False)['vms']


# ------------------------------------------------------------------------------ the loop
class Source(object):
    """Runs the watches in threads, Proxmox reads at an interval and the evaluation ticks; puts events."""

    def __init__(self, queue, args, kube=None, proxmox=None):
        self.queue = queue
        self.args = dict(args or {})
        self.health = NodeHealth(unhealthy_seconds=self.args.get('unhealthy_seconds', 30),
                                 powered_off_seconds=self.args.get('powered_off_seconds', 0),
                                 lease_grace_seconds=self.args.get('lease_grace_seconds', 40),
                                 nodes=self.args.get('nodes'))
        self.degraded_after = int(self.args.get('degraded_after', 3))
        self.tick = float(self.args.get('tick', 0.5))
        self.proxmox_interval = float(self.args.get('proxmox_interval', 2))
        self.kube = kube
        self.proxmox = proxmox
        self.stop = threading.Event()
        self.lock = threading.RLock()
        self.synced = set()
        self.loop = None
        self.pending = []  # events from threads, put by the loop
        self.stats = {'watch_restarts': 0, 'relists': 0}

    def _k8s(self):
        if self.kube is None:
            auth = connection_settings(self.args.get('kubernetes'), K8S_ENV)
            self.kube = KubeSide(auth, request_timeout=self.args.get('request_timeout', 30),
                                 watch_timeout=self.args.get('watch_timeout', 300))
        return self.kube

    def _px(self):
        if self.proxmox is None:
            settings = connection_settings(self.args.get('proxmox'), PROXMOX_ENV)
            if not settings.get('api_host'):
                return None
            self.proxmox = ProxmoxSide(settings)
        return self.proxmox

    def _note(self, event):
        if event is not None:
            with self.lock:
                self.pending.append(event)

    def _apply(self, kind, obj, deleted=False):
        with self.lock:
            if kind == 'node':
                self.health.observe_node(obj, deleted)
            else:
                self.health.observe_lease(obj, deleted)

    def watch_loop(self, kind):
        """Blocking: list, then watch; re-watch when the server ends the stream, re-list on 410 or error."""
        rv = None
        backoff = 0.5
        while not self.stop.is_set():
            try:
                if rv is None:
                    items, rv = self._k8s().list(kind)
                    with self.lock:
                        names = set()
                        for obj in items:
                            names.add((obj.get('metadata') or {}).get('name'))
                            self._apply(kind, obj)
                        if kind == 'node':
                            for gone in [n for n in self.health.nodes if n not in names]:
                                self.health.nodes.pop(gone, None)
                        self.synced.add(kind)
                        if {'node', 'lease'} <= self.synced and not self.stats.get('ready'):
                            self.stats['ready'] = True
                            log.info('node_health: watching %d nodes and their leases', len(self.health.nodes))
                    self.stats['relists'] += 1
                    self._note(self.health.source_result('kubernetes', True))
                rv = self._k8s().watch(kind, rv, lambda t, o: self._apply(kind, o, t == 'DELETED'), self.stop)
                self.stats['watch_restarts'] += 1
                backoff = 0.5
            except Gone:
                log.info('%s watch: resourceVersion expired (410), listing again', kind)
                rv = None
            except Exception as exc:  # noqa: BLE001 - any failure: report, back off, list again
                if self.stop.is_set():
                    break
                if getattr(exc, 'status', None) == 410:  # 410 Gone as the HTTP answer to the watch request
                    log.info('%s watch: resourceVersion expired (HTTP 410), listing again', kind)
                    rv = None
                    continue
                log.warning('%s watch failed: %s', kind, _scrub(exc))
                self._note(self.health.source_result('kubernetes', False, exc, self.degraded_after))
                rv = None
                self.stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)

    def clock_loop(self):
        """Ask the API server its time every clock_interval (local) seconds: the windows and lease ages are
        judged on its clock, which need not run at this machine's rate."""
        interval = float(self.args.get('clock_interval', 1))
        while not self.stop.is_set():
            try:
                self._k8s().refresh_clock()
            except Exception as exc:  # noqa: BLE001 - the watches report the API's health
                log.debug('clock refresh failed: %s', _scrub(exc))
            self.stop.wait(interval)

    def proxmox_loop(self):
        while not self.stop.is_set():
            try:
                px = self._px()
                if px is None:
                    return
                vms = px.read()
                with self.lock:
                    self.health.observe_vms(vms)
                self._note(self.health.source_result('proxmox', True))
            except Exception as exc:  # noqa: BLE001 - unknown power, never a guess
                log.warning('proxmox read failed: %s', _scrub(exc))
                with self.lock:
                    self.health.forget_power()
                self._note(self.health.source_result('proxmox', False, exc, self.degraded_after))
            self.stop.wait(self.proxmox_interval)

    def due(self):
        """Events due now (thread-side notes first, then the node judgement once both lists synced)."""
        with self.lock:
            events, self.pending = self.pending, []
            now = self.kube.server_now() if {'node', 'lease'} <= self.synced else None
            if now is not None:
                events.extend(self.health.evaluate(now))
        return events

    async def run(self):
        loop = asyncio.get_running_loop()
        threads = [threading.Thread(target=self.watch_loop, args=(k,), daemon=True, name='node_health-' + k)
                   for k in ('node', 'lease')]
        threads.append(threading.Thread(target=self.proxmox_loop, daemon=True, name='node_health-proxmox'))
        threads.append(threading.Thread(target=self.clock_loop, daemon=True, name='node_health-clock'))
        try:
            await loop.run_in_executor(None, self._k8s)
            for t in threads:
                t.start()
            while True:
                for event in self.due():
                    log.info('node_health: %s %s at %s (API server clock)', event['type'],
                             event.get('node') or event.get('source'), event.get('observed_at') or '-')
                    await self.queue.put(event)
                    await asyncio.sleep(0)
                await asyncio.sleep(self.tick)
        finally:
            self.stop.set()
            if self.kube is not None:
                self.kube.close()


async def main(queue, args):
    """ansible-rulebook source plugin entry point."""
    source = Source(queue, args)
    try:
        await source.run()
    except asyncio.CancelledError:
        log.info('node_health source stopping')
        raise


if __name__ == '__main__':
    class _PrintQueue(object):
        async def put(self, event):
            print(json.dumps(event), flush=True)

    asyncio.run(main(_PrintQueue(), json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}))
