"""A scripted multi-host PVE cluster behind proxmoxer's interface, for the provisioning tests (no network).

Hosts, VMs, templates, HA resources, tasks and the guest agent, with PVE's behaviours that matter here:
create and clone are tasks; a clone writes a fresh random smbios1 and MAC; HA add with state started starts
the VM; the guest agent answers 500 until the VM has run for `agent_delay` polls.
"""

from __future__ import annotations

import itertools
import uuid

from proxmoxer.core import ResourceException

from proxmox_fakeapi import Resource


class PveCluster(object):
    def __init__(self, hosts=('pve1', 'pve2', 'pve3'), online=None, quorate=True, agent_delay=1):
        self.hosts = dict((h, True) for h in hosts)
        self.hosts.update(online or {})
        self.quorate = quorate
        self.vms = {}
        self.ha = {}
        self.tasks = {}
        self.log = []
        self.agent_delay = agent_delay
        self._seq = itertools.count(1)
        self._ip = itertools.count(101)
        self.fail = {}  # (method, path suffix) -> exception to raise once

    # -- set-up helpers
    def add_vm(self, vmid, node, name, status='stopped', template=False, smbios=None, description='', **cfg):
        mac = 'BC:24:11:00:{0:02X}:{1:02X}'.format(vmid // 256 % 256, vmid % 256)
        config = dict(name=name, smbios1=smbios or 'uuid={0}'.format(uuid.uuid4()),
                      net0='virtio={0},bridge=vmbr0'.format(mac), memory=4096, cores=2, sockets=1, cpu='host',
                      agent='enabled=1', description=description, scsi0='local-lvm:vm-{0}-disk-0,size=20G'.format(vmid))
        config.update(cfg)
        if template:
            config['template'] = 1
        self.vms[vmid] = dict(vmid=vmid, node=node, name=name, status=status, template=template, config=config,
                              agent_polls=0, ip=None)
        return self.vms[vmid]

    def writes(self):
        return [(m, p) for m, p, dummy in self.log if m != 'GET']

    def __call__(self, path):
        return Resource(self, path)

    # -- internals
    def _http(self, status, message):
        raise ResourceException(status, 'x', message)

    def _task(self, node, ttype, vmid, ok=True):
        upid = 'UPID:{0}:{1:08X}:00000001:00000001:{2}:{3}:root@pam:'.format(node, next(self._seq), ttype, vmid)
        self.tasks[upid] = dict(status='stopped', exitstatus='OK' if ok else 'clone failed', log=['TASK OK'])
        return upid

    def _start(self, vm):
        vm['status'] = 'running'
        vm['agent_polls'] = 0
        if vm['ip'] is None:
            vm['ip'] = '10.9.0.{0}'.format(next(self._ip))

    def handle(self, method, path, data):
        self.log.append((method, path, dict(data)))
        key = (method, path)
        if key in self.fail:
            raise self.fail.pop(key)
        parts = path.split('/')
        if path == 'cluster/status':
            out = [dict(type='cluster', quorate=1 if self.quorate else 0)]
            out += [dict(type='node', name=h, online=1 if up else 0) for h, up in self.hosts.items()]
            return out
        if path == 'cluster/resources':
            out = []
            for vm in self.vms.values():
                item = dict(type='qemu', vmid=vm['vmid'], node=vm['node'], name=vm['name'],
                            status=vm['status'] if self.hosts[vm['node']] else 'unknown')
                if vm['template']:
                    item['template'] = 1
                out.append(item)
            return out
        if path == 'cluster/nextid':
            return str(max([100] + list(self.vms)) + 1)
        if path == 'cluster/ha/resources':
            if method == 'GET':
                return [dict(sid='vm:{0}'.format(v), state=s, type='vm') for v, s in self.ha.items()]
            vmid = int(data['sid'][3:])
            if vmid in self.ha:
                self._http(500, "resource ID 'vm:{0}' already defined".format(vmid))
            self.ha[vmid] = data.get('state', 'started')
            if self.ha[vmid] == 'started':
                self._start(self.vms[vmid])
            return None
        if parts[0] == 'nodes' and len(parts) >= 2:
            node = parts[1]
            if not self.hosts.get(node):
                self._http(595, 'No route to host')
            if '/tasks/' in path:
                upid = path.split('/tasks/')[1].rsplit('/', 1)[0]
                task = self.tasks[upid]
                if path.endswith('/log'):
                    return [dict(n=1, t=t) for t in task['log']]
                return dict(status=task['status'], exitstatus=task['exitstatus'], upid=upid)
            if path == 'nodes/{0}/qemu'.format(node) and method == 'POST':
                vmid = int(data['vmid'])
                if vmid in self.vms:
                    self._http(500, 'VM {0} already exists'.format(vmid))
                cfg = dict((k, v) for k, v in data.items() if k != 'vmid')
                cfg['net0'] = cfg['net0'].replace('virtio,', 'virtio=BC:24:11:AA:00:{0:02X},'.format(vmid % 256))
                self.vms[vmid] = dict(vmid=vmid, node=node, name=data['name'], status='stopped', template=False,
                                      config=cfg, agent_polls=0, ip=None)
                return self._task(node, 'qmcreate', vmid)
            vmid = int(parts[3])
            vm = self.vms.get(vmid)
            if vm is None or vm['node'] != node:
                self._http(500, "Configuration file 'nodes/{0}/qemu-server/{1}.conf' does not exist".format(node, vmid))
            rest = '/'.join(parts[4:])
            if rest == 'config' and method == 'GET':
                return dict(vm['config'])
            if rest == 'config' and method == 'PUT':
                vm['config'].update(data)
                if 'net0' in data and '=' not in data['net0'].split(',')[0]:
                    vm['config']['net0'] = data['net0'].replace('virtio,', 'virtio=BC:24:11:BB:00:{0:02X},'.format(
                        vmid % 256))
                return None
            if rest == 'clone' and method == 'POST':
                newid = int(data['newid'])
                target = data.get('target', node)
                cfg = dict(vm['config'])
                cfg.pop('template', None)
                cfg['name'] = data.get('name', 'Copy-of-VM-' + vm['name'])
                cfg['smbios1'] = 'uuid={0}'.format(uuid.uuid4())
                cfg['net0'] = 'virtio=BC:24:11:CC:00:{0:02X},bridge=vmbr0'.format(newid % 256)
                self.vms[newid] = dict(vmid=newid, node=target, name=cfg['name'], status='stopped', template=False,
                                       config=cfg, agent_polls=0, ip=None)
                return self._task(node, 'qmclone', vmid)
            if rest == 'status/current':
                return dict(status=vm['status'], vmid=vmid,
                            ha=dict(managed=1, state=self.ha[vmid]) if vmid in self.ha else dict(managed=0))
            if rest == 'status/start' and method == 'POST':
                self._start(vm)
                return self._task(node, 'qmstart', vmid)
            if rest == 'agent/network-get-interfaces':
                if vm['status'] != 'running':
                    self._http(500, 'VM {0} is not running'.format(vmid))
                vm['agent_polls'] += 1
                if vm['agent_polls'] <= self.agent_delay:
                    self._http(500, 'QEMU guest agent is not running')
                mac = vm['config']['net0'].split(',')[0].split('=')[1]
                return dict(result=[
                    {'name': 'lo', 'hardware-address': '00:00:00:00:00:00',
                     'ip-addresses': [{'ip-address-type': 'ipv4', 'ip-address': '127.0.0.1', 'prefix': 8}]},
                    {'name': 'eth0', 'hardware-address': mac.lower(),
                     'ip-addresses': [{'ip-address-type': 'ipv4', 'ip-address': '169.254.3.3', 'prefix': 16},
                                      {'ip-address-type': 'ipv4', 'ip-address': vm['ip'], 'prefix': 24},
                                      {'ip-address-type': 'ipv6', 'ip-address': 'fe80::1', 'prefix': 64}]}])
        self._http(501, 'not implemented in PveCluster: {0} {1}'.format(method, path))
