# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Talos VMs on Proxmox: find, place, create or clone, start, add to HA, read the address.

* Identity is the SMBIOS UUID (identity.py): each wanted VM has a fixed ``uuid`` that goes into
  ``smbios1`` and that the kubelet reports as ``systemUUID`` (what proxmox_fence matches). A wanted VM is
  *found* by that UUID; a VM that only bears its name is ours only when it carries this module's marker in
  its description and is stopped (an interrupted clone or create whose smbios1 was not yet set); any other
  name clash is a refusal. So a VM is never created twice.
* Placement (pure, ``place``): control planes on distinct PVE hosts (refused when there are fewer online
  hosts than control planes unless ``allow_colocation``), workers spread over the hosts with the fewest of
  the cluster's VMs; VMs that exist keep their host; a ``host`` given for a VM is honoured.
* ``plan`` is pure and is what check mode returns; ``execute`` carries it out with the client (create =
  POST /nodes/{n}/qemu, clone = POST .../clone then PUT .../config, start, HA = POST /cluster/ha/resources),
  each task waited for, bounded.
* ``read_address`` polls the guest agent (GET .../agent/network-get-interfaces) for the IPv4 of the
  interface whose MAC is net0's, skipping loopback, link-local and excluded addresses (the VIP).
"""

from __future__ import annotations

import ipaddress
import re
import uuid as uuidlib

from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox import errors as E
from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.auth import ConnectionSettings
from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.client import parse_smbios_uuid
from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.identity import norm_uuid, same_uuid
from ansible_collections.tazlab.resilience.plugins.module_utils.retry import WaitTimeout, wait_until

__all__ = ['MARKER', 'ROLES', 'normalise_vms', 'place', 'plan', 'execute', 'read_address', 'agent_ipv4',
           'read_cluster', 'create_params', 'clone_config', 'new_uuid', 'net0_mac', 'ensure_vms', 'run_provision_vms']

MARKER = 'managed-by: tazlab.resilience provision'
RETIRED = 'retired: replaced by the VM with SMBIOS UUID'  # written by replace_node (module_utils/replace_node.py)
ROLES = ('controlplane', 'worker')
_NAME = re.compile(r'^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$')
_MAC = re.compile(r'(?:^|,)(?:virtio|e1000|vmxnet3|rtl8139)[^=,]*=([0-9A-Fa-f:]{17})')
_MACADDR = re.compile(r'macaddr=([0-9A-Fa-f:]{17})')

DEFAULTS = dict(cores=2, sockets=1, memory=4096, cpu='host', machine='q35', bios='seabios',
                scsihw='virtio-scsi-pci', disk_size=20, storage='local-lvm', bridge='vmbr0', vlan=None,
                iso=None, template=None, host=None, vmid=None, ha=None, tags=None, mac=None, onboot=True,
                address=None, full_clone=True, replaces=None)


def new_uuid():
    """A fresh SMBIOS UUID (lower case, as qemu-server writes it)."""
    return str(uuidlib.uuid4())


def net0_mac(config):
    """The MAC of net0 in a VM config (``virtio=AA:BB:..,bridge=..`` or ``macaddr=``), upper case, or None."""
    net0 = str((config or {}).get('net0') or '')
    m = _MAC.search(net0) or _MACADDR.search(net0)
    return m.group(1).upper() if m else None


def normalise_vms(vms, defaults=None):
    """Check the wanted VMs (before any API call) and fill in the defaults; raise ProxmoxError INVALID."""
    merged_defaults = dict(DEFAULTS)
    merged_defaults.update(dict((k, v) for k, v in (defaults or {}).items() if v is not None))
    out, names, uuids, vmids = [], set(), set(), set()
    for raw in vms or []:
        vm = dict(merged_defaults)
        own = dict((k, v) for k, v in (raw or {}).items() if v is not None)
        vm.update(own)
        # A VM's own boot source wins over the other source given in the defaults.
        if own.get('template') and not own.get('iso'):
            vm['iso'] = None
        elif own.get('iso') and not own.get('template'):
            vm['template'] = None
        name = vm.get('name')
        if not name or not _NAME.match(str(name)):
            raise E.ProxmoxError(E.INVALID, 'VM name {0!r} is not a valid DNS label'.format(name))
        if vm.get('role') not in ROLES:
            raise E.ProxmoxError(E.INVALID, 'VM {0}: role must be one of {1}, not {2!r}'.format(
                name, ', '.join(ROLES), vm.get('role')))
        if not vm.get('uuid'):
            raise E.ProxmoxError(E.INVALID, 'VM {0}: uuid (its fixed SMBIOS UUID) is required; it is the identity '
                                            'fencing relies on'.format(name))
        try:
            vm['uuid'] = str(uuidlib.UUID(str(vm['uuid'])))
        except ValueError:
            raise E.ProxmoxError(E.INVALID, 'VM {0}: uuid {1!r} is not a UUID'.format(name, vm['uuid']))
        if bool(vm.get('iso')) == bool(vm.get('template')):
            raise E.ProxmoxError(E.INVALID, 'VM {0}: give exactly one of iso (create with the Talos ISO) or template '
                                            '(clone)'.format(name))
        for key in ('cores', 'sockets', 'memory', 'disk_size'):
            try:
                vm[key] = int(vm[key])
            except (TypeError, ValueError):
                raise E.ProxmoxError(E.INVALID, 'VM {0}: {1} must be an integer'.format(name, key))
            if vm[key] <= 0:
                raise E.ProxmoxError(E.INVALID, 'VM {0}: {1} must be positive'.format(name, key))
        if vm['memory'] < 2048:
            raise E.ProxmoxError(E.INVALID, 'VM {0}: memory {1} MiB is below the 2048 MiB Talos needs'.format(
                name, vm['memory']))
        if vm['scsihw'] == 'virtio-scsi-single':
            raise E.ProxmoxError(E.INVALID, 'VM {0}: scsihw virtio-scsi-single hangs the Talos bootstrap (talos#11173); '
                                            'use virtio-scsi-pci'.format(name))
        if vm.get('vmid') is not None:
            vm['vmid'] = int(vm['vmid'])
            if vm['vmid'] < 100:
                raise E.ProxmoxError(E.INVALID, 'VM {0}: vmid must be >= 100'.format(name))
            if vm['vmid'] in vmids:
                raise E.ProxmoxError(E.INVALID, 'vmid {0} is given twice'.format(vm['vmid']))
            vmids.add(vm['vmid'])
        if vm.get('mac') and not re.match(r'^([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}$', vm['mac']):
            raise E.ProxmoxError(E.INVALID, 'VM {0}: mac {1!r} is not a MAC address'.format(name, vm['mac']))
        if vm.get('address'):
            try:
                ipaddress.ip_address(str(vm['address']))
            except ValueError:
                raise E.ProxmoxError(E.INVALID, 'VM {0}: address {1!r} is not an IP address'.format(name, vm['address']))
        if vm.get('ha') is None:
            vm['ha'] = vm['role'] == 'controlplane'
        if name in names:
            raise E.ProxmoxError(E.INVALID, 'VM name {0} is given twice'.format(name))
        if norm_uuid(vm['uuid']) in uuids:
            raise E.ProxmoxError(E.INVALID, 'SMBIOS UUID {0} is given twice: every VM needs its own'.format(vm['uuid']))
        names.add(name)
        uuids.add(norm_uuid(vm['uuid']))
        out.append(vm)
    if not out:
        raise E.ProxmoxError(E.INVALID, 'no VMs given')
    return out


# ------------------------------------------------------------------------------------------- reading

def read_cluster(client):
    """{'hosts': {name: online}, 'quorate', 'vms': [resource + smbios_uuid, description, config],
    'templates': [resources], 'ha': set of vmids}: GETs only."""
    status = client.cluster_status()
    resources = [r for r in (client.get('cluster/resources', type='vm') or []) if r.get('type') == 'qemu']
    vms, templates = [], []
    for res in resources:
        item = dict(res)
        item['vmid'] = int(res.get('vmid'))
        if res.get('template') in (1, True, '1'):
            templates.append(item)
            continue
        item['config'] = None
        if status['nodes'].get(res.get('node'), False):
            try:
                item['config'] = client.vm_config(res.get('node'), item['vmid'])
            except E.ProxmoxError as exc:
                if exc.kind not in (E.HOST_OFFLINE, E.NOT_FOUND):
                    raise
        cfg = item['config'] or {}
        item['smbios_uuid'] = parse_smbios_uuid(cfg.get('smbios1'))
        item['description'] = cfg.get('description') or ''
        vms.append(item)
    ha = set()
    try:
        for r in client.get('cluster/ha/resources') or []:
            sid = str(r.get('sid', ''))
            if sid.startswith('vm:'):
                ha.add(int(sid[3:]))
    except E.ProxmoxError as exc:
        if exc.kind not in (E.NOT_FOUND, E.PERMISSION):
            raise
    return dict(hosts=dict(status['nodes']), quorate=status['quorate'], vms=vms, templates=templates, ha=ha)


def _find(cluster, want):
    """(existing VM or None, refusal or None) for one wanted VM."""
    by_uuid = [v for v in cluster['vms'] if same_uuid(v.get('smbios_uuid'), want['uuid'])]
    if len(by_uuid) > 1:
        return None, 'SMBIOS UUID {0} of {1} is carried by VMs {2}: which is the node cannot be told'.format(
            want['uuid'], want['name'], sorted(v['vmid'] for v in by_uuid))
    if by_uuid:
        vm = by_uuid[0]
        if RETIRED in (vm.get('description') or '') and want.get('uuid'):
            return None, ('VM {0} ({1}) carrying SMBIOS UUID {2} was retired by replace_node ({3}): give {1} the new '
                          'UUID in the inventory'.format(vm['vmid'], want['name'], want['uuid'],
                                                         vm['description'].split(RETIRED, 1)[1].strip()))
        if want.get('vmid') is not None and vm['vmid'] != want['vmid']:
            return None, 'VM {0}: its SMBIOS UUID {1} is on vmid {2}, not on the vmid {3} asked for'.format(
                want['name'], want['uuid'], vm['vmid'], want['vmid'])
        return vm, None
    unreadable = [v for v in cluster['vms'] if v.get('config') is None and v.get('name') in (None, want['name'])]
    if want.get('replaces') and same_uuid(want['replaces'], want['uuid']):
        return None, 'VM {0}: a replacement needs a new SMBIOS UUID, not the old {1}'.format(want['name'], want['uuid'])
    if unreadable:
        return None, ('VM {0}: the config of VM(s) {1} cannot be read (their PVE host is offline): one of them may '
                      'already be {0}, so none is created'.format(want['name'], sorted(v['vmid'] for v in unreadable)))
    # The VM a replacement replaces (proven powered off before) keeps its name; it is not a clash.
    named = [v for v in cluster['vms'] if v.get('name') == want['name']
             and not (want.get('replaces') and same_uuid(v.get('smbios_uuid'), want['replaces']))]
    if want.get('vmid') is not None:
        clash = [v for v in cluster['vms'] + cluster['templates'] if v['vmid'] == want['vmid']]
        if clash and clash[0] not in named:
            return None, 'VM {0}: vmid {1} is taken by {2!r}'.format(want['name'], want['vmid'], clash[0].get('name'))
    if not named:
        return None, None
    if len(named) == 1 and _description(want) in named[0]['description'] and named[0].get('status') == 'stopped' \
            and (want.get('vmid') is None or named[0]['vmid'] == want['vmid']):
        vm = dict(named[0])
        vm['unfinished'] = True  # created by us, smbios1 not set yet: finish it
        return vm, None
    return None, ('VM {0}: VM(s) {1} bear the name but not its SMBIOS UUID {2}; refusing to create a second one '
                  '(rename it, or give its UUID)'.format(want['name'], sorted(v['vmid'] for v in named), want['uuid']))


def _template_for(cluster, want, host):
    """The template resource to clone for `want` onto `host`: by vmid or name, one on `host` preferred."""
    ref = want['template']
    cands = [t for t in cluster['templates'] if str(t['vmid']) == str(ref) or t.get('name') == ref]
    if not cands:
        raise E.ProxmoxError(E.NOT_FOUND, 'VM {0}: template {1!r} not found'.format(want['name'], ref))
    local = [t for t in cands if t.get('node') == host]
    return (local or sorted(cands, key=lambda t: t['vmid']))[0]


# ----------------------------------------------------------------------------------------- placement

def place(wants, existing, hosts, allow_colocation=False, other_vms=None):
    """{name: host} for every wanted VM (pure).

    wants: normalised VMs; existing: {name: host} of those that exist; hosts: {host: online};
    other_vms: [host, ...] of VMs not in `wants` (count for the spread). Raises ProxmoxError INVALID.
    """
    online = sorted(h for h, up in hosts.items() if up)
    if not online:
        raise E.ProxmoxError(E.HOST_OFFLINE, 'no PVE host is online')
    load = dict((h, 0) for h in online)
    for h in other_vms or []:
        if h in load:
            load[h] += 1
    out = {}
    cp_hosts = {}
    cps = [w for w in wants if w['role'] == 'controlplane']
    if len(cps) > len(online) and not allow_colocation:
        raise E.ProxmoxError(E.INVALID, '{0} control planes but only {1} online PVE host(s) ({2}): losing one host '
                             'would cost etcd its quorum; add hosts or set allow_colocation'.format(
                                 len(cps), len(online), ', '.join(online)))
    # Fixed first: VMs that exist stay where they are; a given host is honoured.
    for w in wants:
        host = existing.get(w['name']) or w.get('host')
        if host is None:
            continue
        if w['name'] not in existing and host not in load:
            raise E.ProxmoxError(E.INVALID, 'VM {0}: host {1} is not an online PVE host ({2})'.format(
                w['name'], host, ', '.join(online)))
        out[w['name']] = host
        if host in load:
            load[host] += 1
        if w['role'] == 'controlplane':
            cp_hosts.setdefault(host, []).append(w['name'])
    if not allow_colocation:
        shared = dict((h, n) for h, n in cp_hosts.items() if len(n) > 1)
        new_shared = dict((h, n) for h, n in shared.items() if any(x not in existing for x in n))
        if new_shared:
            raise E.ProxmoxError(E.INVALID, 'control planes {0} would share a PVE host; spread them or set '
                                 'allow_colocation'.format('; '.join('{0} on {1}'.format(', '.join(n), h)
                                                                     for h, n in sorted(new_shared.items()))))
    for w in cps + [w for w in wants if w['role'] == 'worker']:
        if w['name'] in out:
            continue
        cands = online
        if w['role'] == 'controlplane':
            free = [h for h in online if h not in cp_hosts]
            cands = free or online  # only reachable with allow_colocation
        workers = dict((h, 0) for h in online)
        for name, h in out.items():
            role = next((x['role'] for x in wants if x['name'] == name), None)
            if role == 'worker' and h in workers:
                workers[h] += 1
        if w['role'] == 'worker':
            host = min(cands, key=lambda h: (workers[h], load[h], h))
        else:
            host = min(cands, key=lambda h: (len(cp_hosts.get(h, [])), load[h], h))
        out[w['name']] = host
        load[host] += 1
        if w['role'] == 'controlplane':
            cp_hosts.setdefault(host, []).append(w['name'])
    return out


# --------------------------------------------------------------------------------------------- plan

def _description(want):
    return '{0}\nrole: {1}\nsmbios uuid: {2}'.format(MARKER, want['role'], want['uuid'])


def _net0(want):
    net = 'virtio' + ('=' + want['mac'].upper() if want.get('mac') else '') + ',bridge=' + want['bridge']
    if want.get('vlan'):
        net += ',tag={0}'.format(int(want['vlan']))
    return net


def create_params(want, vmid):
    """POST /nodes/{host}/qemu parameters for a Talos VM booted from the ISO (talos-provisioning.md 6)."""
    p = dict(vmid=int(vmid), name=want['name'], memory=want['memory'], cores=want['cores'], sockets=want['sockets'],
             cpu=want['cpu'], machine=want['machine'], bios=want['bios'], scsihw=want['scsihw'],
             scsi0='{0}:{1}'.format(want['storage'], want['disk_size']), ide2='{0},media=cdrom'.format(want['iso']),
             net0=_net0(want), boot='order=scsi0;ide2;net0', agent='enabled=1', serial0='socket',
             smbios1='uuid={0}'.format(want['uuid']), balloon=0, onboot=1 if want['onboot'] else 0,
             description=_description(want), ostype='l26')
    if want.get('tags'):
        p['tags'] = ';'.join(want['tags']) if isinstance(want['tags'], (list, tuple)) else str(want['tags'])
    return p


def clone_config(want):
    """PUT .../config after a clone: the identity and the sizing (a clone gets a fresh random smbios1)."""
    p = dict(smbios1='uuid={0}'.format(want['uuid']), memory=want['memory'], cores=want['cores'],
             sockets=want['sockets'], cpu=want['cpu'], agent='enabled=1', balloon=0,
             onboot=1 if want['onboot'] else 0, description=_description(want))
    if want.get('mac') or want.get('vlan'):
        p['net0'] = _net0(want)
    if want.get('tags'):
        p['tags'] = ';'.join(want['tags']) if isinstance(want['tags'], (list, tuple)) else str(want['tags'])
    return p


def _drift(want, vm):
    cfg = vm.get('config') or {}
    out = {}
    for key in ('memory', 'cores', 'sockets'):
        if key in cfg and str(cfg[key]) != str(want[key]):
            out[key] = dict(have=cfg[key], want=want[key])
    if 'cpu' in cfg and str(cfg['cpu']).split(',', maxsplit=1)[0] != want['cpu']:
        out['cpu'] = dict(have=cfg['cpu'], want=want['cpu'])
    agent = str(cfg.get('agent', '0'))
    if not (agent.startswith('1') or 'enabled=1' in agent):
        out['agent'] = dict(have=cfg.get('agent'), want='enabled=1')
    return out


def plan(wants, cluster, allow_colocation=False):
    """The plan (pure): one entry per wanted VM with its host, vmid and actions; refusals raise first."""
    if cluster.get('quorate') is False:
        raise E.ProxmoxError(E.NO_QUORUM, 'the PVE cluster is not quorate: nothing is created or started')
    found, refusals = {}, []
    for w in wants:
        vm, why = _find(cluster, w)
        if why:
            refusals.append(why)
        found[w['name']] = vm
    if refusals:
        raise E.ProxmoxError(E.INVALID, '; '.join(refusals))
    existing = dict((n, v['node']) for n, v in found.items() if v is not None)
    ours = set(v['vmid'] for v in found.values() if v is not None)
    others = [v.get('node') for v in cluster['vms'] if v['vmid'] not in ours]
    placement = place(wants, existing, cluster['hosts'], allow_colocation, others)
    entries = []
    for w in wants:
        vm = found[w['name']]
        host = placement[w['name']]
        e = dict(name=w['name'], role=w['role'], uuid=w['uuid'], host=host, vmid=w.get('vmid'), actions=[],
                 ha=w['ha'], exists=vm is not None, drift={})
        if vm is None:
            if w.get('template'):
                tpl = _template_for(cluster, w, host)
                e['source'] = dict(template=tpl['vmid'], node=tpl['node'])
                e['actions'] += ['clone', 'configure']
            else:
                e['source'] = dict(iso=w['iso'])
                e['actions'].append('create')
            e['status'] = 'stopped'
        else:
            e['vmid'] = vm['vmid']
            e['status'] = vm.get('status')
            if vm.get('unfinished'):
                e['actions'].append('configure')
            else:
                e['drift'] = _drift(w, vm)
            if not cluster['hosts'].get(vm['node'], False):
                raise E.ProxmoxError(E.HOST_OFFLINE, 'VM {0} ({1}) is on PVE host {2}, which is offline: replace the '
                                                     'node (replace_node) or bring the host back'.format(
                                                         w['name'], vm['vmid'], vm['node']))
        in_ha = e['vmid'] is not None and e['vmid'] in cluster['ha']
        if w['ha'] and not in_ha:
            e['actions'].append('ha_add')
        if e['status'] != 'running':
            # For an HA VM PVE forks hastart (ha-manager set --state started): the start does not wait for the CRM.
            e['actions'].append('start')
        entries.append(e)
    return entries


# ------------------------------------------------------------------------------------------ execute

def _wait_task(client, upid, timeout):
    if isinstance(upid, str) and upid.startswith('UPID:'):
        client.wait_task(upid, timeout=timeout)


def execute(client, wants, entries, timeout=300, on_step=None):
    """Carry out the plan; returns the entries with vmid and done steps. Each write is sent once."""
    by_name = dict((w['name'], w) for w in wants)
    for e in entries:
        w = by_name[e['name']]
        e['done'] = []
        for action in e['actions']:
            if action == 'create':
                vmid = e['vmid'] or int(client.get('cluster/nextid'))
                e['vmid'] = vmid
                upid = client.post('nodes/{0}/qemu'.format(e['host']), **create_params(w, vmid))
                _wait_task(client, upid, timeout)
            elif action == 'clone':
                vmid = e['vmid'] or int(client.get('cluster/nextid'))
                e['vmid'] = vmid
                # The description names the wanted UUID at once: a clone interrupted before its smbios1 is set is
                # recognised as ours on the next run (and a foreign VM with the name never is).
                data = dict(newid=vmid, name=w['name'], full=1 if w['full_clone'] else 0, description=_description(w))
                if e['source']['node'] != e['host']:
                    data['target'] = e['host']
                if w['full_clone'] and w.get('storage'):
                    data['storage'] = w['storage']
                upid = client.post('nodes/{0}/qemu/{1}/clone'.format(e['source']['node'], e['source']['template']),
                                   **data)
                _wait_task(client, upid, timeout)
            elif action == 'configure':
                client.put('nodes/{0}/qemu/{1}/config'.format(e['host'], e['vmid']), **clone_config(w))
            elif action == 'ha_add':
                client.post('cluster/ha/resources', sid='vm:{0}'.format(e['vmid']), state='started',
                            comment='tazlab.resilience provision ({0})'.format(w['role']))
            elif action == 'start':
                upid = client.post('nodes/{0}/qemu/{1}/status/start'.format(e['host'], e['vmid']))
                _wait_task(client, upid, timeout)
            e['done'].append(action)
            if on_step is not None:
                on_step(e, action)
        if 'ha_add' in e['actions'] or 'start' in e['actions']:
            client.wait_power(e['host'], e['vmid'], 'running', timeout=timeout)
            e['status'] = 'running'
    return entries


# ------------------------------------------------------------------------------------------ address

def agent_ipv4(reply, mac=None, exclude=()):
    """The first usable IPv4 of network-get-interfaces' result (pure), or None.

    The interface whose hardware-address equals net0's MAC wins; without a MAC the first non-loopback one.
    The loopback interface, link-local addresses and `exclude` (the VIP, which a control plane carries too) are
    skipped.
    """
    result = reply.get('result') if isinstance(reply, dict) and 'result' in reply else reply
    skip = set(str(a) for a in exclude or ())
    ifaces = [i for i in (result or []) if isinstance(i, dict)]
    if mac:
        ifaces = [i for i in ifaces if str(i.get('hardware-address', '')).upper() == mac.upper()]
    for iface in ifaces:
        if iface.get('name') == 'lo':
            continue
        for a in iface.get('ip-addresses') or []:
            if a.get('ip-address-type') != 'ipv4':
                continue
            try:
                ip = ipaddress.ip_address(a.get('ip-address'))
            except ValueError:
                continue
            # The loopback interface is skipped by name; an address on the NIC itself is taken as it is.
            if ip.is_link_local or str(ip) in skip:
                continue
            return str(ip)
    return None


def read_address(client, host, vmid, exclude=(), timeout=300, interval=2.0):
    """Poll the guest agent until it reports net0's IPv4; raise ProxmoxError TIMEOUT with the last answer."""
    mac = net0_mac(client.vm_config(host, vmid))
    path = 'nodes/{0}/qemu/{1}/agent/network-get-interfaces'.format(host, vmid)
    last = {}

    def probe():
        try:
            reply = client.get(path)
        except E.ProxmoxError as exc:
            # 500 "QEMU guest agent is not running" / "VM is not running" while it boots: not yet.
            if exc.kind in (E.API, E.NETWORK, E.TIMEOUT):
                last['error'] = exc.message
                return None
            raise
        last['error'] = None
        return agent_ipv4(reply, mac, exclude)

    try:
        return wait_until(probe, lambda ip: ip is not None, timeout=timeout, interval=interval,
                          max_interval=max(interval, 5.0), is_transient=E.is_transient, sleep=client.sleep,
                          clock=client.clock, what='guest agent address of VM {0}'.format(vmid))
    except WaitTimeout as exc:
        raise E.ProxmoxError(E.TIMEOUT, '{0}: the guest agent of VM {1} on {2} reported no IPv4 for net0 ({3}); '
                                        'the Talos image needs the siderolabs/qemu-guest-agent extension'.format(
                                            exc, vmid, host, last.get('error') or 'no usable address')) from exc


# ------------------------------------------------------------------------------------------- entry

def _public(e):
    keys = ('name', 'role', 'uuid', 'host', 'vmid', 'status', 'ha', 'exists', 'actions', 'drift', 'source',
            'address', 'address_source', 'done')
    return dict((k, e.get(k)) for k in keys if k in e)


def ensure_vms(client, params, check_mode=False):
    """The module's whole run: normalise, read, plan, (execute), read addresses. Returns the result dict."""
    wants = normalise_vms(params.get('vms'), params.get('defaults'))
    cluster = read_cluster(client)
    entries = plan(wants, cluster, allow_colocation=bool(params.get('allow_colocation')))
    before = dict((e['name'], dict(exists=e['exists'], host=e['host'] if e['exists'] else None, vmid=e['vmid'],
                                   status=e['status'])) for e in entries)
    changed = any(e['actions'] for e in entries)
    timeout = int(params.get('timeout') or 300)
    if changed and not check_mode:
        execute(client, wants, entries, timeout=timeout)
    by_name = dict((w['name'], w) for w in wants)
    exclude = list(params.get('exclude_addresses') or [])
    for e in entries:
        w = by_name[e['name']]
        if w.get('address'):
            e['address'], e['address_source'] = w['address'], 'static'
        elif params.get('read_addresses', True) and e['status'] == 'running' and e['vmid'] is not None:
            e['address'] = read_address(client, e['host'], e['vmid'], exclude=exclude,
                                        timeout=int(params.get('address_timeout') or 300))
            e['address_source'] = 'guest_agent'
        else:
            e['address'], e['address_source'] = None, None
    after = dict((e['name'], dict(exists=True, host=e['host'], vmid=e['vmid'],
                                  status='running' if (e['actions'] and ('start' in e['actions']
                                                                         or 'ha_add' in e['actions']))
                                  else e['status'])) for e in entries)
    vms = [_public(e) for e in entries]
    return dict(changed=changed, vms=vms, plan=[dict(name=e['name'], host=e['host'], actions=e['actions'])
                                                for e in entries if e['actions']],
                hosts=sorted(h for h, up in cluster['hosts'].items() if up),
                by_name=dict((v['name'], v) for v in vms),
                diff=dict(before=before, after=after), requests=len(client.calls),
                writes=[list(c) for c in client.writes])


def run_provision_vms(run):
    """proxmox_talos_vms: the module runner's one call."""
    from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.client import ProxmoxClient

    client = ProxmoxClient(ConnectionSettings.from_params(run.params))
    run.changed = lambda: bool(client.writes)
    try:
        result = ensure_vms(client, run.params, check_mode=run.check_mode)
    except E.ProxmoxError as exc:
        run.context.update(error_kind=exc.kind, requests=len(client.calls), writes=[list(c) for c in client.writes])
        raise
    diff = result.pop('diff')
    if run.diff:
        result['diff'] = diff
    return result
