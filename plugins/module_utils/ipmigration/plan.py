# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Plan moving Talos control planes to new addresses (and the cluster to a VIP) without an outage.

Pure functions over plain data, no I/O (talos.md "IP change", kubernetes-api.md "The kubernetes Service"):

* :func:`parse_moves` - validate what the user asked for (addresses with their prefix, gateways).
* :func:`target_patches` - Talos strategic-merge patches that set the interface carrying the node's
  address (legacy ``machine.network.interfaces`` or a ``LinkConfig`` document, whichever the config uses),
  its routes and the VIP (``interfaces[].vip`` or ``Layer2VIPConfig``), and the certSANs
  (``machine.certSANs`` and ``cluster.apiServer.certSANs``) to exact values. The same function gives the
  forward patch and the reverse one (the original values) used to roll back.
* :func:`plan_migration` - the preflight (etcd quorum with every member healthy, every control plane
  Ready, each new address inside its subnet and not in use, the VIP configured or planned) and the
  ordered steps: control planes that only get the VIP and certSANs first, then the moves one at a time.
* :func:`verify_migration` - what must hold once every step is done.

A control plane is named by its etcd member hostname (= its Kubernetes node name); its current address
is the host of its etcd peer URL, so a rerun finds a moved node where it is now.
"""

from __future__ import annotations

import copy
import ipaddress

from ansible_collections.tazlab.resilience.plugins.module_utils.talos import patch as tp

DELETE = {'$patch': 'delete'}
DEFAULT_ROUTES = ('0.0.0.0/0', '::/0')
TALOS_DEFAULT_PORT = 50000


class PlanInputError(ValueError):
    """Input that cannot be planned at all (rejected before any API call)."""


# -- addresses ------------------------------------------------------------------------------------
def _ip(value):
    try:
        return ipaddress.ip_address(str(value).strip().strip('[]'))
    except ValueError:
        return None


def _iface(value):
    """ip_interface of 'a.b.c.d/nn' (a prefix is required: the subnet must be known)."""
    text = str(value).strip()
    if '/' not in text:
        raise PlanInputError('%s: give the address with its prefix length (e.g. %s/24)' % (text, text))
    try:
        return ipaddress.ip_interface(text)
    except ValueError:
        raise PlanInputError('%r is not an address with a prefix length' % (value,))


def ip_of(cidr):
    """'10.0.0.5/24' or {'address': '10.0.0.5/24'} -> '10.0.0.5' (None if not an address)."""
    if isinstance(cidr, dict):
        cidr = cidr.get('address')
    try:
        return str(ipaddress.ip_interface(str(cidr)).ip)
    except ValueError:
        return None


def host_of_url(url):
    """'https://10.0.0.5:2380' -> '10.0.0.5'; '[fd00::5]:2380' -> 'fd00::5'."""
    rest = str(url).split('://', 1)[-1].rstrip('/')
    if rest.startswith('['):
        return rest[1:].split(']', 1)[0]
    return rest.rsplit(':', 1)[0] if rest.count(':') == 1 else rest


def url_host(ip):
    return '[%s]' % ip if ':' in str(ip) else str(ip)


def peer_url(ip):
    return 'https://%s:2380' % url_host(ip)


def talos_endpoint(ip, port=TALOS_DEFAULT_PORT):
    """An endpoint as talosctl writes it: the bare address on 50000, else address:port."""
    if int(port or TALOS_DEFAULT_PORT) == TALOS_DEFAULT_PORT:
        return str(ip)
    return '%s:%d' % (url_host(ip), int(port))


def usable_host(iface):
    """Reasons an address cannot be a host in its subnet ([] when fine)."""
    net = iface.network
    ip = iface.ip
    if ip.is_unspecified or ip.is_multicast:
        return ['%s cannot be a node address' % ip]
    if net.num_addresses > 2 and ip in (net.network_address, net.broadcast_address):
        return ['%s is the %s address of %s, not a host in it' % (
            ip, 'network' if ip == net.network_address else 'broadcast', net)]
    return []


def parse_moves(moves):
    """Validate the requested moves; returns normalised dicts or raises PlanInputError."""
    out, errors, seen = [], [], set()
    for i, move in enumerate(moves or []):
        if not isinstance(move, dict) or not move.get('name') or not move.get('address'):
            errors.append('move %d: needs name and address' % i)
            continue
        try:
            iface = _iface(move['address'])
        except PlanInputError as exc:
            errors.append('%s: %s' % (move['name'], exc))
            continue
        if move['name'] in seen:
            errors.append('%s is listed twice' % move['name'])
        seen.add(move['name'])
        gateway = move.get('gateway')
        if gateway and _ip(gateway) is None:
            errors.append('%s: gateway %r is not an address' % (move['name'], gateway))
        k8s = move.get('kubernetes_address') or str(iface.ip)
        if _ip(k8s) is None:
            errors.append('%s: kubernetes_address %r is not an address' % (move['name'], k8s))
        out.append({'name': str(move['name']), 'ip': str(iface.ip), 'cidr': str(iface), 'iface': iface,
                    'gateway': str(_ip(gateway)) if gateway and _ip(gateway) else None,
                    'kubernetes_address': str(_ip(k8s)) if _ip(k8s) else k8s})
    if errors:
        raise PlanInputError('; '.join(errors))
    return out


# -- machine config shapes -------------------------------------------------------------------------
def _v1(docs):
    return next((d for d in docs if tp.is_v1alpha1(d)), {}) or {}


def _iface_key(iface):
    if 'interface' in iface:
        return {'interface': iface['interface']}
    if 'deviceSelector' in iface:
        return {'deviceSelector': copy.deepcopy(iface['deviceSelector'])}
    return None


def find_link(docs, ip):
    """Where the node's address is configured: {'shape': 'legacy'|'link', ...} or None."""
    for iface in ((_v1(docs).get('machine') or {}).get('network') or {}).get('interfaces') or []:
        if any(ip_of(a) == ip for a in iface.get('addresses') or []):
            key = _iface_key(iface)
            if key is None:
                return None
            return {'shape': 'legacy', 'key': key, 'link': iface.get('interface'), 'addresses': list(iface['addresses']),
                    'routes': copy.deepcopy(iface.get('routes')), 'vip': copy.deepcopy(iface.get('vip')),
                    'iface': copy.deepcopy(iface)}
    for doc in docs:
        if doc.get('kind') == 'LinkConfig' and any(ip_of(a) == ip for a in doc.get('addresses') or []):
            vips = [copy.deepcopy(d) for d in docs if d.get('kind') == 'Layer2VIPConfig' and d.get('link') == doc.get('name')]
            return {'shape': 'link', 'apiVersion': doc.get('apiVersion', 'v1alpha1'), 'link': doc.get('name'),
                    'addresses': copy.deepcopy(doc['addresses']), 'routes': copy.deepcopy(doc.get('routes')),
                    'vip_docs': vips}
    return None


def current_vip(docs):
    """The VIP a control plane's config carries (legacy interfaces[].vip.ip or a Layer2VIPConfig), or None."""
    for iface in ((_v1(docs).get('machine') or {}).get('network') or {}).get('interfaces') or []:
        vip = (iface.get('vip') or {}).get('ip')
        if vip:
            return str(vip)
    for doc in docs:
        if doc.get('kind') == 'Layer2VIPConfig' and doc.get('name'):
            return str(doc['name'])
    return None


def cert_sans(docs):
    v1 = _v1(docs)
    machine = list((v1.get('machine') or {}).get('certSANs') or [])
    apiserver = list(((v1.get('cluster') or {}).get('apiServer') or {}).get('certSANs') or [])
    return machine, apiserver, 'certSANs' in (v1.get('machine') or {}), \
        'certSANs' in ((v1.get('cluster') or {}).get('apiServer') or {})


def _route_dest(route):
    return route.get('network') if 'network' in route else route.get('destination')


def new_routes(routes, shape, gateway, network):
    """Routes after the move: the default route's gateway replaced (or added) when a gateway is given.

    Returns (routes or None, reasons)."""
    reasons = []
    out = copy.deepcopy(routes) if routes else []
    if gateway:
        default = [r for r in out if _route_dest(r) in DEFAULT_ROUTES]
        if default:
            for r in default:
                r['gateway'] = gateway
        else:
            dest = '::/0' if ':' in gateway else '0.0.0.0/0'
            out.append({'network': dest, 'gateway': gateway} if shape == 'legacy' else
                       {'destination': dest, 'gateway': gateway})
    for r in out:
        gw = _ip(r.get('gateway')) if r.get('gateway') else None
        if gw is not None and gw not in network:
            reasons.append('route %s via %s: the gateway is outside the new subnet %s (give gateway)' % (
                _route_dest(r), gw, network))
    return (out or (None if routes is None else [])), reasons


def target_patches(docs, link, target):
    """Strategic-merge patches that make the link, its VIP and the certSANs exactly ``target``.

    ``target``: {addresses, routes (None = absent), vip (legacy dict or None) | vip_docs (link shape),
    machine_sans, apiserver_sans, machine_sans_present, apiserver_sans_present}.
    """
    patches = []
    if link['shape'] == 'legacy':
        # Talos rejects $patch: delete on an inner key of a list item ("cannot delete an inner key") and deletes
        # a list item only by its first key: delete the whole interface by name, then add it back complete.
        if 'interface' not in link['key']:
            raise PlanInputError('the interface carrying %s is selected by deviceSelector: a Talos strategic merge '
                                 'patch cannot replace its addresses (list items are deleted only by a string first '
                                 'key); name it with interface: <link> first' % ', '.join(map(str, link['addresses'])))
        clear = {'interface': link['key']['interface'], '$patch': 'delete'}
        setv = copy.deepcopy(link.get('iface') or link['key'])
        for k in ('addresses', 'routes', 'vip'):
            setv.pop(k, None)
        setv = dict({'interface': link['key']['interface']}, **dict((k, v) for k, v in setv.items() if k != 'interface'))
        setv['addresses'] = list(target['addresses'])
        if target.get('routes') is not None:
            setv['routes'] = copy.deepcopy(target['routes'])
        if target.get('vip'):
            setv['vip'] = copy.deepcopy(target['vip'])
        patches.append({'machine': {'network': {'interfaces': [clear]}}})
        patches.append({'machine': {'network': {'interfaces': [setv]}}})
    else:
        head = {'apiVersion': link['apiVersion'], 'kind': 'LinkConfig', 'name': link['link']}
        patches.append(dict(head, addresses=DELETE, routes=DELETE))
        setv = dict(head, addresses=copy.deepcopy(target['addresses']))
        if target.get('routes') is not None:
            setv['routes'] = copy.deepcopy(target['routes'])
        patches.append(setv)
        want = dict((d.get('name'), d) for d in target.get('vip_docs') or [])
        for d in docs:
            if d.get('kind') == 'Layer2VIPConfig' and d.get('link') == link['link'] and d.get('name') not in want:
                patches.append({'apiVersion': d.get('apiVersion', 'v1alpha1'), 'kind': 'Layer2VIPConfig',
                                'name': d.get('name'), '$patch': 'delete'})
        for name, d in want.items():
            have = next((x for x in docs if x.get('kind') == 'Layer2VIPConfig' and x.get('name') == name), None)
            if have != d:
                if have is not None:
                    patches.append({'apiVersion': have.get('apiVersion', 'v1alpha1'), 'kind': 'Layer2VIPConfig',
                                    'name': name, '$patch': 'delete'})
                patches.append(copy.deepcopy(d))
    # Delete only what exists: a delete marker under a missing parent would be copied, not applied.
    dummy, dummy2, m_present, a_present = cert_sans(docs)
    clear_sans = {}
    if m_present:
        clear_sans['machine'] = {'certSANs': DELETE}
    apiserver_now = (_v1(docs).get('cluster') or {}).get('apiServer')
    if not target.get('apiserver_section', True) and isinstance(apiserver_now, dict) and \
            set(apiserver_now) <= set(['certSANs']):
        clear_sans['cluster'] = {'apiServer': DELETE}     # the section did not exist before
    elif a_present:
        clear_sans['cluster'] = {'apiServer': {'certSANs': DELETE}}
    set_sans = {}
    if target.get('machine_sans_present') or target.get('machine_sans'):
        set_sans['machine'] = {'certSANs': list(target.get('machine_sans') or [])}
    if target.get('apiserver_sans_present') or target.get('apiserver_sans'):
        set_sans['cluster'] = {'apiServer': {'certSANs': list(target.get('apiserver_sans') or [])}}
    if clear_sans:
        patches.append(clear_sans)
    if set_sans:
        patches.append(set_sans)
    return patches


def original_target(docs, link):
    machine, apiserver, m_present, a_present = cert_sans(docs)
    target = {'addresses': copy.deepcopy(link['addresses']), 'routes': copy.deepcopy(link['routes']),
              'machine_sans': machine, 'apiserver_sans': apiserver, 'machine_sans_present': m_present,
              'apiserver_sans_present': a_present,
              'apiserver_section': 'apiServer' in (_v1(docs).get('cluster') or {})}
    if link['shape'] == 'legacy':
        target['vip'] = copy.deepcopy(link['vip'])
    else:
        target['vip_docs'] = copy.deepcopy(link['vip_docs'])
    return target


def _append_unique(values, extra):
    out = list(values)
    for v in extra:
        if v and v not in out:
            out.append(v)
    return out


def node_target(docs, link, old_ip, move, vip):
    """(target, reasons) for a control plane: its address replaced (if it moves), VIP and certSANs added."""
    reasons = []
    target = original_target(docs, link)
    new_ip = move['ip'] if move else old_ip
    if move and old_ip != move['ip']:
        addresses = []
        for a in link['addresses']:
            if ip_of(a) == old_ip:
                addresses.append({'address': move['cidr']} if isinstance(a, dict) else move['cidr'])
            else:
                addresses.append(copy.deepcopy(a))
        target['addresses'] = addresses
    network = move['iface'].network if move else None
    if network is None:
        for a in link['addresses']:
            if ip_of(a) == old_ip:
                try:
                    network = ipaddress.ip_interface(str(a.get('address') if isinstance(a, dict) else a)).network
                except ValueError:
                    network = None
    if network is not None:
        routes, why = new_routes(link['routes'], link['shape'], move.get('gateway') if move else None, network)
        target['routes'] = routes if (link['routes'] is not None or routes) else None
        reasons += why
        if vip and _ip(vip) not in network:
            reasons.append('the VIP %s is outside the subnet %s of %s: a Layer 2 VIP must share the control '
                           'planes\' subnet' % (vip, network, new_ip))
    if vip:
        if link['shape'] == 'legacy':
            target['vip'] = dict(target.get('vip') or {}, ip=vip)
        else:
            target['vip_docs'] = [{'apiVersion': 'v1alpha1', 'kind': 'Layer2VIPConfig', 'name': vip,
                                   'link': link['link']}]
    sans = [new_ip] + ([vip] if vip else [])
    released = old_ip if new_ip != old_ip and old_ip != vip else None
    # The address the node leaves is no longer its own: certificates stop naming it.
    target['machine_sans'] = _append_unique([x for x in target['machine_sans'] if x != released], sans)
    target['apiserver_sans'] = _append_unique([x for x in target['apiserver_sans'] if x != released], sans)
    return target, reasons


# -- the plan --------------------------------------------------------------------------------------
def plan_migration(facts, moves, vip=None, port=TALOS_DEFAULT_PORT):
    """The preflight and the steps.

    facts: {'control_planes': [{name, address, docs, etcd_healthy, is_learner}],
            'etcd_quorum': bool, 'kubernetes': None | {'nodes': [{name, control_plane, ready, internal_ip}]}}
    moves: output of :func:`parse_moves`. Returns a JSON-able dict (patches included).
    """
    refused = []
    cps = list(facts.get('control_planes') or [])
    by_name = dict((cp['name'], cp) for cp in cps)
    if not cps:
        refused.append('no etcd member found: is this a bootstrapped Talos control plane?')
    if not facts.get('etcd_quorum'):
        refused.append('etcd has no quorum: an address change now cannot be followed by the peers')
    unhealthy = sorted(cp['name'] for cp in cps if not cp.get('etcd_healthy'))
    if unhealthy:
        refused.append('etcd member(s) not healthy: %s (every member must be healthy before one moves)'
                       % ', '.join(unhealthy))
    learners = sorted(cp['name'] for cp in cps if cp.get('is_learner'))
    if learners:
        refused.append('etcd learner(s) still joining: %s' % ', '.join(learners))
    k8s = facts.get('kubernetes')
    if k8s is not None:
        cp_nodes = [n for n in k8s.get('nodes') or [] if n.get('control_plane')]
        not_ready = sorted(n['name'] for n in cp_nodes if not n.get('ready'))
        if not_ready:
            refused.append('control plane(s) not Ready: %s' % ', '.join(not_ready))
        missing = sorted(set(by_name) - set(n['name'] for n in cp_nodes))
        if missing:
            refused.append('etcd member(s) without a Kubernetes control-plane node of that name: %s'
                           % ', '.join(missing))

    moves_by_name = dict((m['name'], m) for m in moves)
    for m in moves:
        if m['name'] not in by_name:
            refused.append('%s is not a control plane (etcd members: %s)' % (m['name'], ', '.join(sorted(by_name))))
        refused.extend('%s: %s' % (m['name'], r) for r in usable_host(m['iface']))
        if m.get('gateway') and _ip(m['gateway']) not in m['iface'].network:
            refused.append('%s: gateway %s is outside %s' % (m['name'], m['gateway'], m['iface'].network))

    # VIP: configured (in the control planes' configs) or planned (given).
    unreadable = sorted(cp['name'] for cp in cps if cp.get('docs') is None)
    if unreadable:
        refused.append('cannot read the machine config of %s through the Talos API' % ', '.join(unreadable))
    cps_read = [cp for cp in cps if cp.get('docs') is not None]
    configured = sorted(set(v for v in (current_vip(cp['docs']) for cp in cps_read) if v))
    vip_now = configured[0] if len(configured) == 1 else None
    if len(configured) > 1:
        refused.append('the control planes carry different VIPs: %s' % ', '.join(configured))
    planned = str(_ip(vip)) if vip and _ip(vip) else None
    if vip and planned is None:
        refused.append('VIP %r is not an address' % (vip,))
    if not planned and not vip_now:
        refused.append('no VIP configured on the control planes and none planned (give vip)')
    vip_after = planned or vip_now
    vip_move = bool(planned and vip_now and planned != vip_now)

    # Addresses in use: every node's current address (Talos and Kubernetes views).
    in_use = {}
    for cp in cps:
        in_use.setdefault(cp['address'], cp['name'])
    for n in (k8s or {}).get('nodes') or []:
        if n.get('internal_ip'):
            in_use.setdefault(n['internal_ip'], n['name'])
    taken = {}
    for m in moves:
        for addr in set([m['ip'], m['kubernetes_address']]):
            owner = in_use.get(addr)
            if owner is not None and owner != m['name']:
                refused.append('%s: %s is in use by %s' % (m['name'], addr, owner))
            if addr in taken and taken[addr] != m['name']:
                refused.append('%s: %s is also planned for %s' % (m['name'], addr, taken[addr]))
            taken[addr] = m['name']
        if planned and m['ip'] == planned:
            refused.append('%s: %s is the VIP' % (m['name'], m['ip']))
        if vip_now and m['ip'] == vip_now and not vip_move:
            refused.append('%s: %s is the current VIP (move the VIP elsewhere in the same run to reuse it)'
                           % (m['name'], m['ip']))
    if planned and planned in in_use and not (vip_now == planned):
        refused.append('VIP %s is in use by %s' % (planned, in_use[planned]))

    steps, positions = [], {}
    for cp in cps:
        positions[cp['name']] = cp['address']
        if cp.get('docs') is None:
            continue
        move = moves_by_name.get(cp['name'])
        link = find_link(cp['docs'], cp['address'])
        if link is None:
            refused.append('%s: no static address %s in its machine config (neither machine.network.interfaces nor '
                           'a LinkConfig)' % (cp['name'], cp['address']))
            continue
        target, reasons = node_target(cp['docs'], link, cp['address'], move, vip_after)
        refused.extend('%s: %s' % (cp['name'], r) for r in reasons)
        forward = target_patches(cp['docs'], link, target)
        desired = tp.apply_patches(cp['docs'], forward)
        changed = desired != cp['docs']
        reverse = target_patches(desired, find_link(desired, move['ip'] if move else cp['address']) or link,
                                 original_target(cp['docs'], link))
        new_ip = move['ip'] if move else cp['address']
        step = {'name': cp['name'], 'address_before': cp['address'], 'address_after': new_ip,
                'kubernetes_address_after': move['kubernetes_address'] if move else None,
                'moves': new_ip != cp['address'], 'shape': link['shape'], 'link': link['link'],
                'changed': changed, 'patches': forward if changed else [], 'reverse_patches': reverse if changed else [],
                'peer_url_after': peer_url(new_ip), 'vip_after': vip_after,
                'takes_old_vip': bool(vip_move and new_ip == vip_now)}
        steps.append(step)
    # VIP/certSAN-only steps first (no risk), then moves in the order given; a node taking the old VIP last.
    order = dict((m['name'], i) for i, m in enumerate(moves))
    steps.sort(key=lambda s: (s['moves'], s['takes_old_vip'], order.get(s['name'], -1)))
    endpoints_after = [talos_endpoint(s['address_after'], port) for s in sorted(
        steps, key=lambda s: [cp['name'] for cp in cps].index(s['name']))]
    return {'refused': refused, 'steps': steps, 'pending': [s['name'] for s in steps if s['changed']],
            'positions': positions, 'vip': {'configured': vip_now, 'planned': planned, 'after': vip_after,
                                            'move': vip_move},
            'endpoints_after': endpoints_after, 'changed': any(s['changed'] for s in steps)}


def verify_migration(facts, plan, expected_kubernetes=None):
    """Problems left after a migration ([] when the cluster is where it should be)."""
    problems = []
    if plan['pending']:
        problems.append('control plane(s) not migrated yet: %s' % ', '.join(plan['pending']))
    if not facts.get('etcd_quorum'):
        problems.append('etcd has no quorum')
    for cp in facts.get('control_planes') or []:
        if not cp.get('etcd_healthy'):
            problems.append('etcd member %s is not healthy' % cp['name'])
    k8s = facts.get('kubernetes') or {}
    for n in k8s.get('nodes') or []:
        if n.get('control_plane') and not n.get('ready'):
            problems.append('control plane %s is not Ready' % n['name'])
    if expected_kubernetes is not None:
        want = sorted(set(expected_kubernetes))
        if sorted(set(k8s.get('endpoints') or [])) != want:
            problems.append('Endpoints default/kubernetes list %s, expected %s' % (k8s.get('endpoints'), want))
        if sorted(set(k8s.get('slice_addresses') or [])) != want:
            problems.append('EndpointSlice default/kubernetes lists %s, expected %s' % (k8s.get('slice_addresses'), want))
    for what in ('coredns', 'kube_proxy'):
        state = k8s.get(what)
        if state is not None and not state.get('ready'):
            problems.append('%s is not ready: %s' % (what.replace('_', '-'), state))
    return problems
