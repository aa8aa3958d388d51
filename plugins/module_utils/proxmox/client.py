# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small Proxmox VE client on proxmoxer: classified errors, bounded retries and bounded waits.

* Reads (GET) are retried on transient errors (network faults, request timeouts, 502/503/504) with
  retry.retry_call; writes are sent once unless the caller marks them idempotent (a hard stop is:
  stopping a stopped VM is a no-op task), so a dropped connection never duplicates a start.
* Every failure is a ProxmoxError (errors.py) with a kind.
* Waits (a task to finish, a VM to reach a power state) are bounded by a timeout and poll at a pace.
* Every request is recorded in `calls` as (method, path), so a caller can prove what it did (check mode
  must record no write).
"""

from __future__ import annotations

import time
import traceback

from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox import errors as E
from ansible_collections.tazlab.resilience.plugins.module_utils.retry import RetryPolicy, WaitTimeout, retry_call, wait_until

PROXMOXER_IMPORT_ERROR = None
try:
    from proxmoxer import ProxmoxAPI
    HAS_PROXMOXER = True
except ImportError:  # pragma: no cover - depends on the environment
    ProxmoxAPI = None
    HAS_PROXMOXER = False
    PROXMOXER_IMPORT_ERROR = traceback.format_exc()

__all__ = ['HAS_PROXMOXER', 'PROXMOXER_IMPORT_ERROR', 'ProxmoxClient', 'upid_node', 'parse_smbios_uuid']

DEFAULT_READ_POLICY = RetryPolicy(attempts=5, base_delay=0.25, factor=2.0, max_delay=4.0, jitter=0.5, deadline=30)
TASK_LOG_LINES = 20


def upid_node(upid):
    """The node a task runs on, from its UPID (UPID:node:pid:pstart:starttime:type:id:user:)."""
    parts = str(upid or '').split(':')
    if len(parts) < 3 or parts[0] != 'UPID' or not parts[1]:
        raise E.ProxmoxError(E.API, 'not a task id (UPID): {0!r}'.format(upid))
    return parts[1]


def parse_smbios_uuid(smbios1):
    """The uuid= value of a VM's smbios1 config string, or None."""
    for part in str(smbios1 or '').split(','):
        key, sep, value = part.partition('=')
        if sep and key.strip() == 'uuid' and value.strip():
            return value.strip()
    return None


class ProxmoxClient(object):
    """Talks to one PVE cluster through one API endpoint.

    settings: auth.ConnectionSettings. api: an object with proxmoxer's interface (for tests); built
    from settings on first use otherwise. read_policy: RetryPolicy for reads and idempotent writes.
    """

    def __init__(self, settings, api=None, read_policy=None, sleep=time.sleep, clock=time.monotonic, on_retry=None,
                 connect=None):
        self.settings = settings
        self._api = api
        # How to (re)build the API object: proxmoxer from the settings, or a test's factory.
        self._connect_fn = connect or (self._connect if api is None else None)
        self.relogins = 0
        self.read_policy = read_policy or DEFAULT_READ_POLICY.replace(
            deadline=max(DEFAULT_READ_POLICY.deadline, 3 * (settings.timeout if settings else 5)))
        self.sleep = sleep
        self.clock = clock
        self.on_retry = on_retry
        self.calls = []
        self.retries = 0

    # ------------------------------------------------------------ plumbing

    def _connect(self):
        if not HAS_PROXMOXER:
            raise E.ProxmoxError(E.API, 'the proxmoxer Python library is required')
        s = self.settings
        kwargs = dict(user=s.user, verify_ssl=s.verify, timeout=s.timeout)
        if s.port:
            kwargs['port'] = s.port
        if s.uses_token:
            kwargs.update(token_name=s.token_name, token_value=s.token_secret)
        else:
            kwargs.update(password=s.password)
            if s.otp:
                kwargs['otp'] = s.otp
        self.calls.append(('POST', 'access/ticket') if not s.uses_token else ('AUTH', 'token'))
        return ProxmoxAPI(s.host, **kwargs)

    @property
    def api(self):
        """The proxmoxer API object; logging in (password) happens here, retried on transient faults."""
        if self._api is None:
            self._api = self._retry(self._connect_fn)
        return self._api

    def _note_retry(self, state):
        self.retries += 1
        if self.on_retry is not None:
            self.on_retry(state)

    def _retry(self, func):
        def call():
            try:
                return func()
            except E.ProxmoxError:
                raise
            except Exception as exc:  # noqa: BLE001 - classified here
                raise E.classify_exception(exc) from exc
        return retry_call(call, E.is_transient, policy=self.read_policy, on_retry=self._note_retry,
                          sleep=self.sleep, clock=self.clock)

    def _request(self, method, path, retry, **data):
        try:
            return self._request_once_logged_in(method, path, retry, data)
        except E.ProxmoxError as exc:
            # A ticket can die under us (expiry, pveproxy restart, revoked): one new login, then the same
            # request again. Safe for writes too: PVE checks the ticket before it does anything. A token
            # that is refused stays refused.
            if exc.kind != E.AUTH_REJECTED or self.settings.uses_token or self._connect_fn is None \
                    or self.relogins >= 1 or self._api is None:
                raise
            self.relogins += 1
            self._api = None
            return self._request_once_logged_in(method, path, retry, data)

    def _request_once_logged_in(self, method, path, retry, data):
        api = self.api  # logs in first (retried on its own)

        def once():
            self.calls.append((method, path))
            resource = api(path)
            try:
                if method == 'GET':
                    return resource.get(**data)
                if method == 'POST':
                    return resource.post(**data)
                if method == 'PUT':
                    return resource.put(**data)
                raise ValueError('unsupported method ' + method)
            except Exception as exc:  # noqa: BLE001 - classified here
                raise E.classify_exception(exc) from exc
        if retry:
            return self._retry(once)
        return once()

    def get(self, path, **params):
        """GET, retried on transient errors."""
        return self._request('GET', path, True, **params)

    def permissions(self, acl_path):
        """GET /access/permissions?path=<acl_path>: {path: {privilege: 1}} the caller holds there."""
        return self._request_once_logged_in('GET', 'access/permissions', True, {'path': acl_path}) or {}

    def post(self, path, idempotent=False, **data):
        """POST; retried only if idempotent."""
        return self._request('POST', path, idempotent, **data)

    def put(self, path, idempotent=False, **data):
        """PUT; retried only if idempotent."""
        return self._request('PUT', path, idempotent, **data)

    @property
    def writes(self):
        """The write requests made so far (the login excluded)."""
        return [c for c in self.calls if c[0] in ('POST', 'PUT', 'DELETE') and c[1] != 'access/ticket']

    # -------------------------------------------------------------- reads

    def cluster_status(self):
        """{'quorate': bool or None, 'nodes': {name: online bool}} from /cluster/status."""
        data = self.get('cluster/status') or []
        out = {'quorate': None, 'nodes': {}}
        for item in data:
            if item.get('type') == 'cluster':
                out['quorate'] = bool(int(item.get('quorate', 0)))
            elif item.get('type') == 'node':
                out['nodes'][item.get('name')] = bool(int(item.get('online', 0)))
        if out['quorate'] is None and len(out['nodes']) <= 1:
            # A stand-alone node has no cluster entry and is its own quorum.
            out['quorate'] = True
        return out

    def find_vm(self, vmid=None, name=None, node=None):
        """The /cluster/resources entry of a QEMU VM, by vmid or by name (optionally on `node`)."""
        if vmid is None and not name:
            raise E.ProxmoxError(E.INVALID, 'give a vmid or a name')
        vms = [r for r in (self.get('cluster/resources', type='vm') or []) if r.get('type') == 'qemu']
        if vmid is not None:
            found = [r for r in vms if int(r.get('vmid', -1)) == int(vmid)]
            if not found:
                raise E.ProxmoxError(E.NOT_FOUND, 'VM {0} not found in the cluster'.format(vmid))
            vm = found[0]
            if name and vm.get('name') not in (None, name):
                raise E.ProxmoxError(E.NOT_FOUND, 'VM {0} is named {1!r}, not {2!r}'.format(vmid, vm.get('name'), name))
            if node and vm.get('node') != node:
                raise E.ProxmoxError(E.NOT_FOUND, 'VM {0} is on node {1}, not on {2}'.format(vmid, vm.get('node'), node))
            return vm
        found = [r for r in vms if r.get('name') == name and (not node or r.get('node') == node)]
        if not found:
            nameless = [r.get('vmid') for r in vms if not r.get('name')]
            hint = (' (VMs {0} have no name in the listing: their node may be offline; use vmid)'.format(nameless)
                    if nameless else '')
            raise E.ProxmoxError(E.NOT_FOUND, 'no VM named {0!r}{1}{2}'.format(
                name, ' on node ' + node if node else '', hint))
        if len(found) > 1:
            raise E.ProxmoxError(E.INVALID, 'VM name {0!r} is ambiguous: vmids {1}; use vmid or node'.format(
                name, sorted(r.get('vmid') for r in found)))
        return found[0]

    def vm_status(self, node, vmid):
        return self.get('nodes/{0}/qemu/{1}/status/current'.format(node, vmid)) or {}

    def vm_config(self, node, vmid):
        return self.get('nodes/{0}/qemu/{1}/config'.format(node, vmid)) or {}

    def task_status(self, upid):
        return self.get('nodes/{0}/tasks/{1}/status'.format(upid_node(upid), upid)) or {}

    def task_log(self, upid, lines=TASK_LOG_LINES):
        """The last `lines` lines of a task's log (best effort: [] if it cannot be read)."""
        try:
            entries = self.get('nodes/{0}/tasks/{1}/log'.format(upid_node(upid), upid), start=0, limit=500) or []
        except E.ProxmoxError:
            return []
        return [str(e.get('t', '')) for e in entries][-lines:]

    # ------------------------------------------------------------- writes

    def stop(self, node, vmid, skiplock=False):
        """POST status/stop (hard stop); idempotent, so retried. Returns the UPID."""
        data = {}
        if skiplock:
            data['skiplock'] = 1
        return self.post('nodes/{0}/qemu/{1}/status/stop'.format(node, vmid), idempotent=True, **data)

    def shutdown(self, node, vmid, timeout):
        """POST status/shutdown without forceStop (the hard stop is our own next step). Returns the UPID."""
        return self.post('nodes/{0}/qemu/{1}/status/shutdown'.format(node, vmid), timeout=int(timeout))

    def start(self, node, vmid):
        """POST status/start; sent once. Returns the UPID."""
        return self.post('nodes/{0}/qemu/{1}/status/start'.format(node, vmid))

    def set_ha_state(self, vmid, state):
        """PUT /cluster/ha/resources/vm:<vmid> state=<state> (idempotent)."""
        return self.put('cluster/ha/resources/vm:{0}'.format(vmid), idempotent=True, state=state)

    # -------------------------------------------------------------- waits

    def wait_task(self, upid, timeout, interval=1.0):
        """Wait for a task to end; return its status dict if it ended OK (or with warnings).

        Raises ProxmoxError: the task's failure (kind from its exit status, with its last log lines), or
        TIMEOUT if it still runs after `timeout` seconds.
        """
        try:
            status = wait_until(lambda: self.task_status(upid), lambda s: s.get('status') == 'stopped',
                                timeout=timeout, interval=interval, max_interval=max(interval, 2.0),
                                is_transient=E.is_transient, sleep=self.sleep, clock=self.clock,
                                what='end of task {0}'.format(upid))
        except WaitTimeout as exc:
            raise E.ProxmoxError(E.TIMEOUT, str(exc), upid=upid, task_log=self.task_log(upid)) from exc
        exitstatus = str(status.get('exitstatus', ''))
        if exitstatus == 'OK' or exitstatus.startswith('WARNINGS'):
            return status
        raise E.classify_task_exit(exitstatus, upid=upid, log=self.task_log(upid))

    def wait_power(self, node, vmid, want, timeout, interval=1.0):
        """Poll status/current until `status` == want; return the last status dict.

        Raises ProxmoxError TIMEOUT (message names the last state seen) or the first definite error
        (host offline, auth, ...). Transient errors only count as "not yet".
        """
        try:
            return wait_until(lambda: self.vm_status(node, vmid), lambda s: s.get('status') == want,
                              timeout=timeout, interval=interval, max_interval=max(interval, 2.0),
                              is_transient=E.is_transient, sleep=self.sleep, clock=self.clock,
                              what='VM {0} {1}'.format(vmid, want))
        except WaitTimeout as exc:
            seen = (exc.last or {}).get('status', 'unknown')
            raise E.ProxmoxError(E.TIMEOUT, '{0} (last status: {1})'.format(exc, seen)) from exc
