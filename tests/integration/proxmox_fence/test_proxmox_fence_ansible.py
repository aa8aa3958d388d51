"""proxmox_fence packaged and run by Ansible itself (`ansible localhost -m`, AnsiballZ) against fakepve."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from k8s_lab import ROOT, adhoc
from proxmox_fence_helpers import PASSWORD, TOKEN_SECRET, uuid_of, writes

pytestmark = pytest.mark.fakepve(time_scale=0.01)


def ansible(tmp_path, args, env=None, extra=()):
    """(exit code, status word, result, stdout) of `ansible localhost -m tazlab.resilience.proxmox_fence`, in an
    environment without PROXMOX_* variables but `env`."""
    return adhoc(tmp_path, 'proxmox_fence', args, options=extra, env=env, clear='PROXMOX_', timeout=120)


def ansible_result(tmp_path, args, env=None):
    """(exit code, status word, result) of an ad-hoc run."""
    return ansible(tmp_path, args, env=env)[:3]


def test_token_fence_of_ha_vm_through_ansible(pve, auth, tmp_path):
    args = dict(auth('token'), vmid=101, poll_interval=0.05, expected_system_uuid=uuid_of(101))
    rc, status, res = ansible_result(tmp_path, args)
    assert rc == 0 and status == 'CHANGED', res
    assert res['fenced'] is True and res['power_state_after'] == 'stopped'
    assert ':hastop:101:' in res['upid'] and res['exitstatus'] == 'OK'
    assert pve.vm(101).status == 'stopped'
    assert TOKEN_SECRET not in json.dumps(res)
    rc, status, res = ansible_result(tmp_path, dict(auth('token'), vmid=101))
    assert rc == 0 and status == 'SUCCESS' and res['changed'] is False and res['fenced'] is True


def test_check_and_diff_through_ansible_no_write(pve, auth, tmp_path):
    mark = len(pve.requests)
    rc, status, res, out = ansible(tmp_path, dict(auth('password'), name='vm-100'), extra=['--check', '--diff'])
    assert rc == 0 and status == 'CHANGED'
    assert res['fenced'] is False and [s['op'] for s in res['plan']['steps']] == ['stop', 'confirm_stopped']
    assert '-    "power_state": "running"' in out and '+    "power_state": "stopped"' in out
    assert writes(pve, mark) == []
    assert pve.vm(100).status == 'running'


def test_env_fallbacks_and_offline_host_fails_unknown(pve, auth, fakepve_cafile, tmp_path):
    pve.set_node_offline('pve2')
    a = auth('password')
    env = {'PROXMOX_HOST': a['api_host'], 'PROXMOX_PORT': str(a['api_port']), 'PROXMOX_USER': 'root@pam',
           'PROXMOX_PASSWORD': PASSWORD, 'PROXMOX_CA_PATH': fakepve_cafile, 'PROXMOX_VALIDATE_CERTS': 'true'}
    rc, status, res = ansible_result(tmp_path, dict(vmid=101), env=env)
    assert rc != 0 and status == 'FAILED!'
    assert res['fenced'] is False and res['power_state_after'] == 'unknown'
    assert res['error']['kind'] == 'host_offline'
    assert PASSWORD not in json.dumps(res)


def test_tls_verification_is_on_by_default(pve, auth, tmp_path):
    a = auth('token')
    del a['ca_path']  # the fake's self-signed certificate is not in the system store
    rc, status, res = ansible_result(tmp_path, dict(a, vmid=100))
    assert rc != 0 and res['error']['kind'] == 'network' and 'TLS' in res['msg']
    assert res['fenced'] is False
    assert pve.vm(100).status == 'running'


def test_register_keeps_the_warnings_under_warnings(pve, auth, tmp_path):
    """The collection's one key for warnings: what the module warns of (here the lock a planned stop would meet)
    is an Ansible warning and stays in the registered result under `warnings`; `notes` is gone."""
    pve.snapshot_lock(100, 'backup')
    args = dict(auth('password'), vmid=100, expected_system_uuid=uuid_of(100))
    out = tmp_path / 'registered.json'
    (tmp_path / 'play.yml').write_text(json.dumps([{
        'hosts': 'localhost', 'gather_facts': False,
        'tasks': [{'tazlab.resilience.proxmox_fence': args, 'check_mode': True, 'register': 'fence'},
                  {'ansible.builtin.copy': {'content': '{{ fence | to_json }}', 'dest': str(out)}}]}]))
    cfg = tmp_path / 'ansible.cfg'
    cfg.write_text('[defaults]\nnocolor = true\n')
    environ = dict(os.environ, ANSIBLE_CONFIG=str(cfg), ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, 'collections'),
                   ANSIBLE_NOCOLOR='1')
    for var in list(environ):
        if var.startswith('PROXMOX_'):
            del environ[var]
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), '-i', 'localhost,',
                           '-c', 'local', '-e', 'ansible_python_interpreter={0}'.format(sys.executable), 'play.yml'],
                          capture_output=True, text=True, timeout=120, cwd=str(tmp_path), env=environ, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    res = json.loads(out.read_text())
    assert res['predicted'] is True and res['fenced'] is False
    assert any('is locked (backup)' in w for w in res['warnings']), res
    assert 'notes' not in res and 'deprecations' not in res
    assert '[WARNING]: VM 100 is locked (backup)' in proc.stdout + proc.stderr
    assert writes(pve) == []
