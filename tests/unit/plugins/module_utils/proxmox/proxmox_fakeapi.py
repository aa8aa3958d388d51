"""A scripted stand-in for proxmoxer's ProxmoxAPI object, for unit tests (no network).

It models one VM just enough to drive the client and the executor through PVE's behaviours:
a qmstop task that ends when QEMU is gone, an hastop task that ends at once while the VM goes down
some polls later, a task that fails (as real PVE does for a locked VM), a stop that never finishes,
and injected exceptions per request.
"""

from __future__ import annotations

import re

import requests
from proxmoxer.core import ResourceException


class FakeVmState(object):
    def __init__(self, vmid=100, node='pve1', name='w1', status='running', ha_state=None, lock=None,
                 smbios='uuid=5B0D3F1E-8A64-4B8E-9A53-0F4A8D1B7C21', node_online=True, quorate=True):
        self.vmid = vmid
        self.node = node
        self.name = name
        self.status = status
        self.ha_state = ha_state
        self.lock = lock
        self.smbios = smbios
        self.node_online = node_online
        self.quorate = quorate
        # How a stop behaves: 'ok' | 'fail:<exitstatus>' | 'hang'
        self.stop_mode = 'ok'
        # Polls of status/current before an HA stop/start takes effect.
        self.ha_delay_polls = 2
        self.pending = None  # (status, polls left)


class FakeApi(object):
    """api(path).get/post/put(**data) like proxmoxer; records every request in .log."""

    def __init__(self, vm=None):
        self.vm = vm or FakeVmState()
        self.log = []
        self.tasks = {}
        self.inject = []  # list of (method, path regex, exception, times)
        # What GET /access/permissions answers: root-like by default.
        self.permissions = {'/': {'VM.Audit': 1, 'VM.PowerMgmt': 1, 'Sys.Console': 1, 'Sys.Audit': 1}}
        self._n = 0

    def __call__(self, path):
        return Resource(self, path)

    # -------------------------------------------------------------- helpers

    def fail_next(self, method, pattern, exc, times=1):
        self.inject.append([method, re.compile(pattern), exc, times])

    def writes(self):
        return [(m, p) for m, p, dummy in self.log if m != 'GET']

    def _task(self, ttype, exitstatus='OK', running=False, log=()):
        self._n += 1
        upid = 'UPID:{0}:{1:08X}:00000001:00000001:{2}:{3}:root@pam:'.format(self.vm.node, self._n, ttype, self.vm.vmid)
        end = [] if running else ['TASK OK' if exitstatus == 'OK' else 'TASK ERROR: ' + exitstatus]
        self.tasks[upid] = {'status': 'running' if running else 'stopped',
                            'exitstatus': None if running else exitstatus, 'log': list(log) + end}
        return upid

    def _http(self, status, message):
        raise ResourceException(status, 'x', message)

    def handle(self, method, path, data):
        self.log.append((method, path, dict(data)))
        for rule in self.inject:
            if rule[0] == method and rule[1].search(path) and rule[3] > 0:
                rule[3] -= 1
                raise rule[2]
        vm = self.vm
        base = 'nodes/{0}/qemu/{1}/'.format(vm.node, vm.vmid)
        if path == 'cluster/status':
            return [{'type': 'cluster', 'quorate': 1 if vm.quorate else 0},
                    {'type': 'node', 'name': vm.node, 'online': 1 if vm.node_online else 0},
                    {'type': 'node', 'name': 'pve9', 'online': 1}]
        if path == 'cluster/resources':
            item = {'type': 'qemu', 'vmid': vm.vmid, 'node': vm.node, 'name': vm.name,
                    'status': vm.status if vm.node_online else 'unknown'}
            if vm.ha_state:
                item['hastate'] = vm.ha_state
            return [item, {'type': 'qemu', 'vmid': 200, 'node': 'pve9', 'name': 'other', 'status': 'running'}]
        if path.startswith('nodes/{0}/'.format(vm.node)) and not vm.node_online:
            self._http(595, 'No route to host')
        if path == base + 'status/current' and method == 'GET':
            if vm.pending:
                status, left = vm.pending
                if left <= 0:
                    vm.status, vm.pending = status, None
                    vm.ha_state = 'stopped' if status == 'stopped' else 'started'
                else:
                    vm.pending = (status, left - 1)
            # As PVE::HA::Config::get_service_status: `ignored` is {managed: 0}; `disabled` reads `stopped`.
            managed = vm.ha_state and vm.ha_state != 'ignored'
            crm = 'stopped' if vm.ha_state == 'disabled' else vm.ha_state
            out = {'status': vm.status, 'qmpstatus': vm.status, 'vmid': vm.vmid,
                   'ha': {'managed': 1, 'state': crm} if managed else {'managed': 0}}
            if vm.lock:
                out['lock'] = vm.lock
            return out
        if path == base + 'config':
            return {'name': vm.name, 'smbios1': vm.smbios}
        if path.startswith('nodes/') and '/tasks/' in path:
            upid = path.split('/tasks/')[1].rsplit('/', 1)[0]
            task = self.tasks[upid]
            if path.endswith('/log'):
                return [{'n': i + 1, 't': t} for i, t in enumerate(task['log'])]
            return {'status': task['status'], 'exitstatus': task['exitstatus'], 'upid': upid}
        if path == 'access/permissions' and method == 'GET':
            return self.permissions
        if path.startswith('cluster/ha/resources/') and method == 'GET':
            if not vm.ha_state:
                self._http(500, "no such resource 'vm:{0}'".format(vm.vmid))
            return {'sid': 'vm:{0}'.format(vm.vmid), 'type': 'vm', 'state': vm.ha_state}
        if path.startswith('cluster/ha/resources/') and method == 'PUT':
            vm.ha_state = data['state']
            return None
        if path == base + 'status/stop' and method == 'POST':
            if vm.ha_state and vm.ha_state != 'ignored':
                vm.pending = ('stopped', vm.ha_delay_polls)
                return self._task('hastop', log=['Requesting HA stop for VM {0}'.format(vm.vmid)])
            if vm.stop_mode == 'hang':
                return self._task('qmstop', running=True)
            if vm.stop_mode.startswith('fail:'):
                return self._task('qmstop', vm.stop_mode[5:], log=['trying to stop VM'])
            if vm.lock and not data.get('skiplock'):
                # real PVE: a UPID whose task fails
                return self._task('qmstop', 'VM is locked ({0})'.format(vm.lock))
            vm.status = 'stopped'
            return self._task('qmstop')
        if path == base + 'status/shutdown' and method == 'POST':
            return self._task('qmshutdown', running=True)
        if path == base + 'status/start' and method == 'POST':
            if vm.ha_state and vm.ha_state != 'ignored':
                vm.pending = ('running', vm.ha_delay_polls)
                return self._task('hastart')
            vm.status = 'running'
            return self._task('qmstart')
        self._http(501, 'not implemented in FakeApi: {0} {1}'.format(method, path))


class Resource(object):
    """``api(path)`` of a proxmoxer-like fake: get/post/put go to ``api.handle(method, path, params)``."""

    def __init__(self, api, path):
        self.api = api
        self.path = path

    def get(self, **params):
        return self.api.handle('GET', self.path, params)

    def post(self, **data):
        return self.api.handle('POST', self.path, data)

    def put(self, **data):
        return self.api.handle('PUT', self.path, data)


def connection_reset():
    return requests.exceptions.ConnectionError('Connection aborted: ConnectionResetError(104)')
