# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Make the ``default/kubernetes`` endpoints name the real apiservers again (issue 7).

The apiserver's lease reconciler owns two objects: Endpoints ``default/kubernetes`` (label
``endpointslice.kubernetes.io/skip-mirror: "true"``, one subset, addresses sorted, ports
``[{name: https, port: 6443, protocol: TCP}]``) and EndpointSlice ``default/kubernetes`` (label
``kubernetes.io/service-name: kubernetes``, ``addressType`` IPv4, endpoints ``{addresses: [ip],
conditions: {ready: true}}``, same ports). The apiserver never reads or deletes other slices with that
label; a dual-stack control plane (KEP-2438) keeps a second slice of the other ``addressType``. kube-proxy
reads the EndpointSlices, so fixing only the Endpoints (as the seed story did) does not fix the Service VIP.

Everything here works on one address family, the family of the desired addresses: only slices of that
``addressType`` are rewritten or deleted and watched; slices of the other family are left as they are.

* ``plan_endpoint_fix(observed, params)`` - pure: desired addresses (given, or the InternalIP of every
  Ready control-plane node), the objects as the apiserver would write them, what differs, what to
  restart.
* ``EndpointFix`` - writes both objects (PUT with resourceVersion, re-read on 409), deletes stale
  slices of the same family, watches for at least one master-lease period that the reconciler does not
  write a stale address of that family back (if it does, an apiserver still advertises it: on Talos
  its kube-apiserver static pod must be restarted, see ``STALE_CURE``), then rollout-restarts CoreDNS,
  kube-proxy and any listed Deployment/DaemonSet the way kubectl does and waits until they are rolled out.
"""

from __future__ import annotations

import copy
import ipaddress

from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.errors import (
    K8sError, NOT_FOUND, RefusedError,
)
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.objects import (
    controller_of, is_control_plane, is_terminating, meta, name_of, node_internal_ips, node_ready,
    pod_ready, selector_string, sort_ips,
)
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.operation import Operation
from ansible_collections.tazlab.resilience.plugins.module_utils.outcomes import Outcome
from ansible_collections.tazlab.resilience.plugins.module_utils.retry import Pace

__all__ = ['SKIP_MIRROR', 'SERVICE_NAME_LABEL', 'RESTARTED_AT', 'DEFAULT_RESTARTS', 'desired_endpoints',
           'desired_slice', 'endpoints_addresses', 'slice_addresses', 'plan_endpoint_fix', 'rollout_status',
           'EndpointFix', 'StaleAdvertiser']

SKIP_MIRROR = 'endpointslice.kubernetes.io/skip-mirror'
SERVICE_NAME_LABEL = 'kubernetes.io/service-name'
RESTARTED_AT = 'kubectl.kubernetes.io/restartedAt'
DEFAULT_RESTARTS = [{'kind': 'Deployment', 'namespace': 'kube-system', 'name': 'coredns'},
                    {'kind': 'DaemonSet', 'namespace': 'kube-system', 'name': 'kube-proxy'}]


#: Talos runs kube-apiserver with ``--advertise-address=$(POD_IP)`` (status.podIP, resolved when the
#: container starts): an apiserver that advertises an old address needs a new container, not a new
#: machine config. ``talosctl restart -k`` restarts a container of the k8s.io namespace (kubelet starts
#: it again), by the id ``talosctl containers -k`` lists.
STALE_CURE = ('On Talos kube-apiserver runs with --advertise-address=$(POD_IP), resolved when its container starts: '
              'restart the kube-apiserver static pod of the control plane that advertises it{where} - '
              '`talosctl -n {node} containers -k` lists kube-system/kube-apiserver-<node>:kube-apiserver:<id>, then '
              '`talosctl -n {node} restart -k <that id>` (rebooting that node does it too); editing the machine '
              'configuration does not change it. Elsewhere fix that apiserver\'s --advertise-address or stop it')


class StaleAdvertiser(Outcome):
    """The reconciler wrote an address back: an apiserver still advertises it (a domain outcome)."""

    kind = 'refused'
    changed = True  # found after the write

    def __init__(self, message, returned, removed, report):
        super(StaleAdvertiser, self).__init__(message)
        self.returned = returned
        self.removed = removed
        self.report = report

    def result_fields(self):
        return {'stale_addresses': self.returned, 'removed_addresses': self.removed, 'stickiness': self.report}


def _apiserver_order(addresses):
    """Unique addresses in the order the apiserver writes them (RepackSubsets sorts by the IP string)."""
    return sorted(set(addresses))


def _ports(port):
    return [{'name': 'https', 'port': int(port), 'protocol': 'TCP'}]


def _family(addresses):
    """The slice addressType for these addresses (IPv6 only when every one is IPv6, as the apiserver does)."""
    versions = set(ipaddress.ip_address(a).version for a in addresses)
    return 'IPv6' if versions == {6} else 'IPv4'


def address_family(address):
    """'IPv4' or 'IPv6' for one address, None when it is not an IP address."""
    try:
        return 'IPv6' if ipaddress.ip_address(str(address)).version == 6 else 'IPv4'
    except ValueError:
        return None


def same_family(slices, family):
    """The slices of one addressType (a dual-stack control plane has one family per slice)."""
    return [sl for sl in slices or [] if sl.get('addressType') == family]


def _apiserver_object(current, api_version, kind, namespace, name, labels):
    """A copy of the current object (or a new one) with the identity and the labels the apiserver gives it, and
    no managedFields; the rest of its metadata kept."""
    obj = copy.deepcopy(current) if current else {'metadata': {'name': name, 'namespace': namespace}}
    obj['apiVersion'] = api_version
    obj['kind'] = kind
    md = obj.setdefault('metadata', {})
    md['name'] = name
    md['namespace'] = namespace
    md['labels'] = dict(md.get('labels') or {}, **labels)
    md.pop('managedFields', None)
    return obj


def desired_endpoints(current, namespace, name, addresses, port):
    """The Endpoints object as the apiserver writes it, keeping the current object's other metadata."""
    obj = _apiserver_object(current, 'v1', 'Endpoints', namespace, name, {SKIP_MIRROR: 'true'})
    obj['subsets'] = [{'addresses': [{'ip': ip} for ip in _apiserver_order(addresses)], 'ports': _ports(port)}]
    return obj


def desired_slice(current, namespace, name, addresses, port):
    """The EndpointSlice as the apiserver writes it for the kubernetes Service."""
    obj = _apiserver_object(current, 'discovery.k8s.io/v1', 'EndpointSlice', namespace, name,
                            {SERVICE_NAME_LABEL: name})
    obj['addressType'] = _family(addresses)
    obj['endpoints'] = [{'addresses': [ip], 'conditions': {'ready': True}} for ip in _apiserver_order(addresses)]
    obj['ports'] = _ports(port)
    return obj


def endpoints_addresses(ep):
    out = []
    for subset in (ep or {}).get('subsets') or []:
        for addr in subset.get('addresses') or []:
            out.append(addr.get('ip'))
        for addr in subset.get('notReadyAddresses') or []:
            out.append(addr.get('ip'))
    return out


def slice_addresses(sl):
    out = []
    for endpoint in (sl or {}).get('endpoints') or []:
        out.extend(endpoint.get('addresses') or [])
    return out


def _norm_ports(ports):
    return sorted((p.get('name') or '', int(p.get('port') or 0), p.get('protocol') or 'TCP') for p in ports or [])


def endpoints_right(ep, addresses, port):
    """Is the Endpoints object exactly what the apiserver would write for these addresses?"""
    if ep is None:
        return False
    if (meta(ep).get('labels') or {}).get(SKIP_MIRROR) != 'true':
        return False
    subsets = ep.get('subsets') or []
    if len(subsets) != 1 or subsets[0].get('notReadyAddresses'):
        return False
    ips = [a.get('ip') for a in subsets[0].get('addresses') or []]
    return sorted(ips) == sorted(set(addresses)) and _norm_ports(subsets[0].get('ports')) == _norm_ports(_ports(port))


def slice_right(sl, name, addresses, port):
    if sl is None:
        return False
    if (meta(sl).get('labels') or {}).get(SERVICE_NAME_LABEL) != name:
        return False
    if sl.get('addressType') != _family(addresses):
        return False
    endpoints = sl.get('endpoints') or []
    ips = []
    for endpoint in endpoints:
        if len(endpoint.get('addresses') or []) != 1:
            return False
        if ((endpoint.get('conditions') or {}).get('ready')) is not True:
            return False
        ips.append(endpoint['addresses'][0])
    return sorted(ips) == sorted(set(addresses)) and _norm_ports(sl.get('ports')) == _norm_ports(_ports(port))


def discover_addresses(nodes, family=None):
    """(addresses, nodes used): the first InternalIP (of ``family`` when given and present) of every Ready
    control-plane node."""
    found, used = [], []
    for node in nodes or []:
        if not is_control_plane(node) or node_ready(node) != 'True':
            continue
        ips = node_internal_ips(node)
        if family:
            ips = [ip for ip in ips if address_family(ip) == family] or ips
        if ips:
            found.append(ips[0])
            used.append({'node': name_of(node), 'address': ips[0]})
    return sort_ips(found), used


def validate_addresses(addresses):
    """Reasons the given addresses are unusable ([] when fine)."""
    reasons = []
    versions = set()
    for addr in addresses or []:
        try:
            ip = ipaddress.ip_address(str(addr))
        except ValueError:
            reasons.append('{0!r} is not an IP address'.format(addr))
            continue
        if ip.is_unspecified or ip.is_multicast:
            reasons.append('{0} cannot be an apiserver address'.format(addr))
        versions.add(ip.version)
    if len(versions) > 1:
        reasons.append('mixed IPv4 and IPv6 addresses: the kubernetes Service has one address family')
    return reasons


def plan_endpoint_fix(observed, params):
    """Pure: observed {nodes, endpoints, slices, workloads{kind/ns/name: obj|None}} -> plan."""
    namespace = params.get('namespace') or 'default'
    name = params.get('name') or 'kubernetes'
    port = int(params.get('port') or 6443)
    plan = {'namespace': namespace, 'name': name, 'port': port, 'refused': [], 'warnings': [],
            'addresses': [], 'source': None, 'discovered_from': [], 'endpoints_action': 'none',
            'slice_action': 'none', 'delete_slices': [], 'restarts': [], 'skipped_restarts': [],
            'changed': False, 'before': {}, 'after': {}}
    given = params.get('addresses')
    if given:
        plan['refused'].extend(validate_addresses(given))
        if plan['refused']:
            return plan
        plan['addresses'] = sort_ips([str(ipaddress.ip_address(str(a))) for a in given])
        plan['source'] = 'given'
    else:
        current = [sl for sl in observed.get('slices') or [] if name_of(sl) == name]
        family = current[0].get('addressType') if current else None
        plan['addresses'], plan['discovered_from'] = discover_addresses(
            observed.get('nodes'), family if family in ('IPv4', 'IPv6') else None)
        plan['source'] = 'discovered'
        if not plan['addresses']:
            plan['refused'].append('no Ready control-plane node with an InternalIP found; give addresses explicitly')
            return plan
    addresses = plan['addresses']
    plan['family'] = _family(addresses)

    ep = observed.get('endpoints')
    all_slices = observed.get('slices') or []
    slices = same_family(all_slices, plan['family'])
    main = None
    for sl in all_slices:
        if name_of(sl) == name:
            main = sl
    others = [sl for sl in all_slices if sl not in slices and sl is not main]
    plan['other_family_slices'] = sorted(name_of(s) for s in others)
    plan['before'] = {'endpoints': sort_ips(endpoints_addresses(ep)) if ep else None,
                      'slices': dict((name_of(s), slice_addresses(s)) for s in all_slices)}
    if ep is None:
        plan['endpoints_action'] = 'create'
    elif not endpoints_right(ep, addresses, port):
        plan['endpoints_action'] = 'replace'
    if main is None:
        plan['slice_action'] = 'create'
    elif not slice_right(main, name, addresses, port):
        plan['slice_action'] = 'replace'
    plan['delete_slices'] = sorted(name_of(s) for s in slices if name_of(s) != name)
    plan['endpoints'] = desired_endpoints(ep, namespace, name, addresses, port)
    plan['slice'] = desired_slice(main, namespace, name, addresses, port)
    after_slices = dict((name_of(s), slice_addresses(s)) for s in others)
    after_slices[name] = list(addresses)
    plan['after'] = {'endpoints': list(addresses), 'slices': after_slices}
    plan['changed'] = (plan['endpoints_action'] != 'none' or plan['slice_action'] != 'none'
                       or bool(plan['delete_slices']))

    targets = []
    if params.get('restart_defaults', True):
        targets.extend(DEFAULT_RESTARTS)
    for extra in params.get('restart') or []:
        entry = {'kind': extra.get('kind') or 'Deployment', 'namespace': extra.get('namespace') or 'kube-system',
                 'name': extra['name']}
        if entry not in targets:
            targets.append(entry)
    workloads = observed.get('workloads') or {}
    if plan['changed']:
        for entry in targets:
            key = '{kind}/{namespace}/{name}'.format(**entry)
            if workloads.get(key) is None:
                plan['skipped_restarts'].append(dict(entry, reason='not found'))
            else:
                plan['restarts'].append(dict(entry))
    return plan


def rollout_status(kind, obj, pods, ready_nodes, stamp, baseline=None):
    """(done, detail) for a rollout restart stamped `stamp`, judged from the pods themselves.

    Deployment: at least spec.replicas new pods ready and no old pod left alive. DaemonSet: every
    live pod on a Ready node is new and ready, and at least as many as ran on Ready nodes before.
    Pods on nodes that are not Ready are left out (they cannot roll; kubectl would wait forever).
    """
    def is_new(pod):
        return (meta(pod).get('annotations') or {}).get(RESTARTED_AT) == stamp

    live = [p for p in pods if not is_terminating(p)]
    if kind == 'DaemonSet':
        live = [p for p in live if (p.get('spec') or {}).get('nodeName') in ready_nodes]
        new_ready = [p for p in live if is_new(p) and pod_ready(p)]
        old = [p for p in live if not is_new(p)]
        want = baseline if baseline is not None else len(ready_nodes)
        done = not old and len(new_ready) >= want and all(pod_ready(p) for p in live)
        return done, {'ready_new': len(new_ready), 'old': len(old), 'want': want}
    spec = obj.get('spec') or {}
    want = spec.get('replicas')
    want = 1 if want is None else int(want)
    on_ready = [p for p in live if (p.get('spec') or {}).get('nodeName') in ready_nodes
                or not (p.get('spec') or {}).get('nodeName')]
    new_ready = [p for p in on_ready if is_new(p) and pod_ready(p)]
    old = [p for p in on_ready if not is_new(p)]
    done = len(new_ready) >= want and not old
    return done, {'ready_new': len(new_ready), 'old': len(old), 'want': want}


class EndpointFix(Operation):
    """Observe, plan, write, check stickiness, restart and wait through a K8sClient (an :class:`Operation`:
    ``EndpointFix(client, options, clock=, sleep=, now=)``, ``elapsed()``, ``event()``)."""

    def _targets(self):
        targets = list(DEFAULT_RESTARTS) if self.options.get('restart_defaults', True) else []
        for extra in self.options.get('restart') or []:
            targets.append({'kind': extra.get('kind') or 'Deployment',
                            'namespace': extra.get('namespace') or 'kube-system', 'name': extra['name']})
        return targets

    def observe(self):
        ns = self.options.get('namespace') or 'default'
        name = self.options.get('name') or 'kubernetes'
        observed = {'nodes': [], 'endpoints': None, 'slices': [], 'workloads': {}}
        if not self.options.get('addresses'):
            observed['nodes'] = self.client.list_nodes()
        try:
            observed['endpoints'] = self.client.get_endpoints(ns, name)
        except K8sError as exc:
            if exc.kind != NOT_FOUND:
                raise
        observed['slices'] = self.client.list_endpoint_slices(ns, label_selector='{0}={1}'.format(
            SERVICE_NAME_LABEL, name))
        for entry in self._targets():
            key = '{kind}/{namespace}/{name}'.format(**entry)
            try:
                observed['workloads'][key] = self.client.get_workload(entry['kind'], entry['namespace'],
                                                                      entry['name'])
            except K8sError as exc:
                if exc.kind != NOT_FOUND:
                    raise
                observed['workloads'][key] = None
        return observed

    def plan(self, observed=None):
        return plan_endpoint_fix(observed if observed is not None else self.observe(), self.options)

    def run(self, check_mode=False):
        plan = self.plan()
        result = {'changed': False, 'addresses': plan['addresses'], 'source': plan['source'],
                  'discovered_from': plan['discovered_from'], 'plan': _public(plan),
                  'diff': {'before': plan['before'], 'after': plan['after'] if plan['changed'] else plan['before']},
                  'restarted': [], 'skipped_restarts': plan['skipped_restarts'], 'stickiness': None, 'rollout': []}
        if plan['refused']:
            raise RefusedError('cannot fix {0}/{1}: {2}'.format(plan['namespace'], plan['name'],
                                                                '; '.join(plan['refused'])), plan['refused'])
        if check_mode or not plan['changed']:
            result['changed'] = plan['changed']
            return result

        self._write(plan)
        result['changed'] = True
        if self.options.get('stickiness_check', True):
            result['stickiness'] = self._stickiness(plan)
        stamp = self.now()
        baselines = {}
        ready_nodes = self._ready_nodes()
        for entry in plan['restarts']:
            if entry['kind'] == 'DaemonSet':
                baselines['{kind}/{namespace}/{name}'.format(**entry)] = len(
                    [p for p in self._workload_pods(entry) if not is_terminating(p)
                     and (p.get('spec') or {}).get('nodeName') in ready_nodes])
            try:
                self.client.patch_workload(entry['kind'], entry['namespace'], entry['name'], {
                    'spec': {'template': {'metadata': {'annotations': {RESTARTED_AT: stamp}}}}})
            except K8sError as exc:
                if exc.kind == NOT_FOUND:
                    result['skipped_restarts'].append(dict(entry, reason='vanished before the restart'))
                    continue
                raise
            result['restarted'].append(dict(entry, restarted_at=stamp, t=self.elapsed()))
        if result['restarted'] and self.options.get('wait', True):
            result['rollout'] = self._await_rollouts(result['restarted'], stamp, baselines)
        return result

    # -- writes -----------------------------------------------------------------------------------
    def _write(self, plan):
        ns, name, addresses, port = plan['namespace'], plan['name'], plan['addresses'], plan['port']

        def read_ep():
            try:
                return self.client.get_endpoints(ns, name)
            except K8sError as exc:
                if exc.kind == NOT_FOUND:
                    return None
                raise

        def modify_ep(current):
            if current is not None and endpoints_right(current, addresses, port):
                return None
            return desired_endpoints(current, ns, name, addresses, port)

        def write_ep(body):
            if meta(body).get('resourceVersion'):
                return self.client.replace_endpoints(ns, name, body)
            return self.client.create_endpoints(ns, body)

        self.client.read_modify_write('endpoints {0}/{1}'.format(ns, name), read_ep, modify_ep, write_ep)

        def read_slice():
            for sl in self.client.list_endpoint_slices(ns, label_selector='{0}={1}'.format(SERVICE_NAME_LABEL, name)):
                if name_of(sl) == name:
                    return sl
            return None

        seen = {}

        def modify_slice(current):
            if current is not None and slice_right(current, name, addresses, port):
                return None
            seen['type'] = current.get('addressType') if current is not None else None
            return desired_slice(current, ns, name, addresses, port)

        def write_slice(body):
            if not meta(body).get('resourceVersion'):
                return self.client.create_endpoint_slice(ns, body)
            if seen.get('type') == body['addressType']:
                return self.client.replace_endpoint_slice(ns, name, body)
            # addressType is immutable: delete, then create (as the apiserver's endpoints adapter does)
            self.client.delete_endpoint_slice(ns, name)
            fresh = copy.deepcopy(body)
            for key in ('resourceVersion', 'uid', 'creationTimestamp', 'generation'):
                fresh['metadata'].pop(key, None)
            return self.client.create_endpoint_slice(ns, fresh)

        self.client.read_modify_write('endpointslice {0}/{1}'.format(ns, name), read_slice, modify_slice, write_slice)
        for stale in plan['delete_slices']:
            try:
                self.client.delete_endpoint_slice(ns, stale)
            except K8sError as exc:
                if exc.kind != NOT_FOUND:
                    raise

    # -- stickiness -------------------------------------------------------------------------------
    def _current(self, ns, name, family):
        """The Endpoints, the slices of ``family`` and the addresses they name (other families are not looked at)."""
        try:
            ep = self.client.get_endpoints(ns, name)
        except K8sError as exc:
            if exc.kind != NOT_FOUND:
                raise
            ep = None
        slices = same_family(self.client.list_endpoint_slices(
            ns, label_selector='{0}={1}'.format(SERVICE_NAME_LABEL, name)), family)
        addrs = set(endpoints_addresses(ep))
        for sl in slices:
            addrs.update(slice_addresses(sl))
        return ep, slices, addrs

    def _suspects(self, advertised, family):
        """Ready control planes none of whose InternalIPs of ``family`` is advertised: their apiserver is the likely
        one still advertising an old address."""
        out = []
        for node in self.client.list_nodes():
            if not is_control_plane(node) or node_ready(node) != 'True':
                continue
            ips = [ip for ip in node_internal_ips(node) if address_family(ip) == family]
            if ips and not set(ips) & set(advertised):
                out.append({'node': name_of(node), 'address': ips[0]})
        return out

    def _stickiness(self, plan):
        """Watch the objects for stickiness_period seconds; fail if the reconciler writes back other addresses."""
        period = float(self.options.get('stickiness_period') or 20)
        interval = float(self.options.get('poll_interval') or 1)
        ns, name = plan['namespace'], plan['name']
        family = plan.get('family') or _family(plan['addresses'])
        desired = set(plan['addresses'])
        pace = Pace(interval, timeout=period, sleep=self.sleep, clock=self.clock)
        polls = 0
        while True:
            ep, slices, addrs = self._current(ns, name, family)
            polls += 1
            extra = sorted(addrs - desired)
            missing = sorted(desired - addrs)
            if extra or missing:
                after = round(pace.elapsed(), 3)
                # The reconciler's own list: it rewrites each object whole, so an object that carries a returning
                # address holds its list (the Endpoints first; a slice when we read between its two writes).
                lists = [[ip for ip in endpoints_addresses(ep) if address_family(ip) == family]]
                lists += [slice_addresses(sl) for sl in slices]
                advertised = next((lst for lst in lists if set(extra) & set(lst)), None) or lists[0] or sorted(addrs)
                suspects = self._suspects(advertised, family) if extra else []
                report = {'ok': False, 'watched_s': after, 'polls': polls, 'returned': extra, 'removed': missing,
                          'family': family, 'endpoints': endpoints_addresses(ep),
                          'slices': dict((name_of(s), slice_addresses(s)) for s in slices), 'suspects': suspects}
                parts = []
                if extra:
                    where = ''
                    node = '<node-ip>'
                    if suspects:
                        where = ' (probably {0})'.format(', '.join(
                            '{node}, now {address}'.format(**x) for x in suspects))
                        node = suspects[0]['address']
                    parts.append('address {0} keeps coming back into {1}/{2} (rewritten {3:g}s after the fix): an '
                                 'apiserver still advertises it, so patching endpoints cannot stick. {4}'.format(
                                     ', '.join(extra), ns, name, after, STALE_CURE.format(where=where, node=node)))
                if missing:
                    parts.append('address {0} was removed again by the endpoint reconciler: no running apiserver '
                                 'advertises it'.format(', '.join(missing)))
                raise StaleAdvertiser('; '.join(parts), extra, missing, report)
            if pace.expired():
                return {'ok': True, 'watched_s': round(pace.elapsed(), 3), 'polls': polls, 'family': family}
            pace.sleep()

    # -- rollouts ---------------------------------------------------------------------------------
    def _ready_nodes(self):
        return set(name_of(n) for n in self.client.list_nodes() if node_ready(n) == 'True')

    def _workload_pods(self, entry, obj=None):
        obj = obj or self.client.get_workload(entry['kind'], entry['namespace'], entry['name'])
        selector = selector_string(((obj.get('spec') or {}).get('selector') or {}).get('matchLabels'))
        pods = self.client.list_pods(namespace=entry['namespace'], label_selector=selector or None)
        if entry['kind'] == 'DaemonSet':
            uid = meta(obj).get('uid')
            pods = [p for p in pods if not uid or any(o.get('uid') == uid for o in meta(p).get('ownerReferences') or [])
                    or controller_of(p) == ('DaemonSet', entry['name'])]
        return pods

    def _await_rollouts(self, restarted, stamp, baselines):
        timeout = float(self.options.get('rollout_timeout') or 300)
        interval = float(self.options.get('poll_interval') or 1)
        pace = Pace(interval, timeout=timeout, sleep=self.sleep, clock=self.clock)
        report = dict(('{kind}/{namespace}/{name}'.format(**e), dict((k, e[k]) for k in ('kind', 'namespace', 'name'))
                       ) for e in restarted)
        for entry in report.values():
            entry.update(done=False, rolled_out_at=None)
        while True:
            ready_nodes = self._ready_nodes()
            for key, entry in report.items():
                if entry['done']:
                    continue
                try:
                    obj = self.client.get_workload(entry['kind'], entry['namespace'], entry['name'])
                except K8sError as exc:
                    if exc.kind != NOT_FOUND:
                        raise
                    entry.update(done=True, detail={'note': 'workload deleted meanwhile'}, rolled_out_at=self.elapsed())
                    continue
                pods = self._workload_pods(entry, obj)
                done, detail = rollout_status(entry['kind'], obj, pods, ready_nodes, stamp, baselines.get(key))
                entry['detail'] = detail
                if done:
                    entry['done'] = True
                    entry['rolled_out_at'] = self.elapsed()
            if all(e['done'] for e in report.values()):
                return [report[k] for k in sorted(report)]
            if pace.expired():
                late = [k for k, e in report.items() if not e['done']]
                raise RolloutTimeout('not rolled out within {0:g}s: {1}'.format(timeout, ', '.join(sorted(late))),
                                     [report[k] for k in sorted(report)])
            pace.sleep()


class RolloutTimeout(Outcome):
    """The restarted workloads did not roll out within rollout_timeout (a domain outcome); carries the report."""

    kind = 'timeout'
    changed = True  # the workloads were restarted

    def __init__(self, message, report):
        super(RolloutTimeout, self).__init__(message)
        self.report = report

    def result_fields(self):
        return {'rollout': self.report}


# -- the module's one call -------------------------------------------------------------------------------

#: Options of the module the executor reads (the connection options go to the client).
OPTIONS = ('addresses', 'port', 'restart_defaults', 'restart', 'wait', 'rollout_timeout', 'stickiness_check',
           'stickiness_period', 'poll_interval')


def check_options(params):
    """Reasons the module's own options are unusable, before any API call."""
    errors = []
    if params.get('addresses') is not None:
        if not params['addresses']:
            errors.append('addresses must not be an empty list (omit it to discover the control-plane nodes)')
        errors.extend(validate_addresses(params['addresses']))
    return errors


def connect(params):
    """The K8sClient for the module's connection options (the kubernetes package is imported only here)."""
    from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.client import client_from_params
    return client_from_params(params)


def run_endpoint_fix(run):
    """k8s_endpoint_fix: the module runner's one call."""
    options = dict((k, run.params[k]) for k in OPTIONS)
    options.update(namespace='default', name='kubernetes')
    client = connect(run.params)
    run.changed = lambda: bool(client.writes)
    return EndpointFix(client, options).run(check_mode=run.check_mode)


def _public(plan):
    out = dict(plan)
    out.pop('endpoints', None)
    out.pop('slice', None)
    out['endpoints_object'] = plan.get('endpoints')
    out['slice_object'] = plan.get('slice')
    return out


__all__ += ['RolloutTimeout', 'discover_addresses', 'validate_addresses', 'endpoints_right', 'slice_right',
            'address_family', 'same_family', 'STALE_CURE', 'OPTIONS', 'check_options', 'connect', 'run_endpoint_fix']
