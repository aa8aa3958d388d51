"""Helpers for the proxmox_fence tests against fakepve (loopback, TLS verified with fakepve's CA).

The module runs for real: its main() in-process (AnsibleModule reading patched arguments, the real
ProxmoxClient over HTTPS), or packaged by Ansible in a subprocess (`ansible localhost -m`). fence_pve
(Debian fence-agents) runs as a subprocess against the same fake for the verdict comparison.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import k8s_lab

FENCE_PVE = shutil.which('fence_pve') or '/usr/sbin/fence_pve'
TOKEN_ID = 'root@pam!fence'
TOKEN_SECRET = '6f0a4c2e-1b3d-4e5f-8a9b-0c1d2e3f4a5b'
PASSWORD = 'secret'


def uuid_of(vmid):
    return '5B0D3F1E-8A64-4B8E-9A53-{0:012d}'.format(vmid)


def add_vm(pve, vmid, node='pve1', status='running', ha=False, **attrs):
    if node not in pve.nodes:
        pve.add_node(node)
    vm = pve.add_vm(vmid, 'vm-{0}'.format(vmid), node=node, status=status,
                    config={'smbios1': 'uuid={0}'.format(uuid_of(vmid)), 'memory': 2048})
    if ha:
        vm.ha_state = 'started' if status == 'running' else 'stopped'
    for key, value in attrs.items():
        setattr(vm, key, value)
    return vm


def run_module(args, check_mode=False, diff=False):
    """Run proxmox_fence's main() in-process (polling every 0.05 s unless told); returns (failed, result)."""
    from ansible_collections.tazlab.resilience.plugins.modules import proxmox_fence
    return k8s_lab.run_module(proxmox_fence, dict({'poll_interval': 0.05}, **args), check_mode=check_mode, diff=diff)


def writes(pve, since=0):
    """Write requests in fakepve's log from `since` on (the password login excluded)."""
    return [(m, p) for m, p, dummy in pve.requests[since:]
            if m not in ('GET', 'HEAD') and not p.endswith('/access/ticket')]


def fence_pve(pve, action, vmid, node, password=PASSWORD, power_timeout=3):
    """Run the real fence_pve agent; returns (exit code, output). It has no token support; --ssl-insecure
    because pycurl offers no CA option on its command line (our module verifies TLS)."""
    host, port = pve.url.split('://')[1].rsplit(':', 1)
    cmd = [FENCE_PVE, '--ip', host, '--ipport', port, '--username', 'root@pam', '--password', password,
           '--plug', str(vmid), '--pve-node', node, '--ssl-insecure', '--action', action,
           '--power-timeout', str(power_timeout), '--shell-timeout', '3', '--login-timeout', '3']
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=dict(os.environ, LC_ALL='C.UTF-8'),
                          check=False)
    return proc.returncode, proc.stdout + proc.stderr
