"""Unit tests of the proxmox_fence module entry (argument spec, check mode, failure mapping), no network."""

from __future__ import annotations

import importlib.util
import json
import os

import pytest

from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox import fence
from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.client import ProxmoxClient
from ansible_collections.tazlab.resilience.plugins.modules import proxmox_fence
from module_harness import run_main

_HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location(
    'proxmox_fakeapi', os.path.join(_HERE, '..', 'module_utils', 'proxmox', 'proxmox_fakeapi.py'))
fakeapi = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fakeapi)

AUTH = dict(api_host='pve.example', api_password='pw')


@pytest.fixture
def api(monkeypatch):
    fake = fakeapi.FakeApi()
    made = []

    def factory(settings):
        client = ProxmoxClient(settings, api=fake, sleep=lambda s: None)
        made.append(client)
        return client
    monkeypatch.setattr(fence, 'ProxmoxClient', factory)
    for var in ('PROXMOX_HOST', 'PROXMOX_USER', 'PROXMOX_PASSWORD', 'PROXMOX_TOKEN_ID', 'PROXMOX_TOKEN_SECRET'):
        monkeypatch.delenv(var, raising=False)
    fake.clients = made
    return fake


def call(args, check_mode=False, diff=False):
    return run_main(proxmox_fence, args, check_mode=check_mode, diff=diff)


def test_fence_off(api):
    code, out = call(dict(AUTH, vmid=100, poll_interval=0.01), diff=True)
    assert code == 0, out
    assert out['changed'] is True and out['fenced'] is True
    assert out['power_state_before'] == 'running' and out['power_state_after'] == 'stopped'
    assert out['diff']['after']['power_state'] == 'stopped'
    assert out['upid'].startswith('UPID:pve1:')
    assert api.vm.status == 'stopped'


def test_second_run_unchanged(api):
    call(dict(AUTH, vmid=100, poll_interval=0.01))
    code, out = call(dict(AUTH, vmid=100, poll_interval=0.01))
    assert code == 0 and out['changed'] is False and out['fenced'] is True


def test_check_mode_no_write(api):
    code, out = call(dict(AUTH, name='w1'), check_mode=True)
    assert code == 0
    assert out['changed'] is True and out['fenced'] is False
    assert [s['op'] for s in out['plan']['steps']] == ['stop', 'confirm_stopped']
    assert api.writes() == []
    assert api.vm.status == 'running'
    assert 'diff' not in out


def test_check_mode_gives_a_predicted_proof_and_a_real_run_never_does(api):
    """The check-mode contract with csi_force_detach: a VM a real run would stop gives predicted: true (with the
    identity read for real); a VM read stopped is fenced by that read, not predicted; a real run has no
    predicted key at all."""
    code, out = call(dict(AUTH, vmid=100, expected_system_uuid=fakeapi.FakeVmState().smbios[5:]),
                     check_mode=True)
    assert code == 0, out
    assert out['predicted'] is True and out['would_fence'] is True and out['fenced'] is False
    assert out['power_state_before'] == 'running' and out['power_state_after'] == 'stopped'
    assert out['smbios_uuid'] == fakeapi.FakeVmState().smbios[5:] and api.writes() == []
    code, out = call(dict(AUTH, vmid=100, poll_interval=0.01))
    assert code == 0 and out['fenced'] is True and 'predicted' not in out
    code, out = call(dict(AUTH, vmid=100), check_mode=True)
    assert code == 0 and out['fenced'] is True and out['predicted'] is False
    code, out = call(dict(AUTH, vmid=100, state='on'), check_mode=True)
    assert code == 0 and out['fenced'] is False and out['predicted'] is False and out['would_fence'] is False


def test_failure_is_failed_and_never_fenced(api):
    api.vm.lock = 'backup'
    code, out = call(dict(AUTH, vmid=100, poll_interval=0.01))
    assert code == 1
    assert out['failed'] is True and out['fenced'] is False
    assert out['error']['kind'] == 'locked'
    assert 'VM is locked (backup)' in out['msg']


def test_identity_mismatch_no_write(api):
    code, out = call(dict(AUTH, vmid=100, expected_system_uuid='11111111-2222-3333-4444-555555555555'))
    assert code == 1 and out['error']['kind'] == 'identity_mismatch' and out['fenced'] is False
    assert api.writes() == []


def test_skiplock_with_token_rejected_before_any_call(api):
    code, out = call(dict(api_host='h', api_token_id='fence', api_token_secret='0e2c-secret-uuid', vmid=100, skiplock=True))
    assert code == 1 and out['error']['kind'] == 'invalid' and 'skiplock' in out['msg']
    assert api.log == []


@pytest.mark.parametrize('args, needle', [
    (dict(AUTH), 'one of the following is required: vmid, name'),
    (dict(api_host='h', vmid=100), 'api_password, api_token_id'),
    (dict(api_host='h', api_token_id='x', vmid=100), 'api_token_id|api_token_secret'),
    (dict(AUTH, vmid=100, action='reset'), 'state'),  # action is an alias of state
    (dict(AUTH, vmid=100, ha_state='started'), 'ha_state'),
])
def test_bad_arguments_fail_before_any_call(api, args, needle):
    code, out = call(args)
    assert code == 1
    assert needle.split('|')[0] in out['msg']
    assert api.log == []


def test_env_fallbacks_and_secret_not_logged(api, monkeypatch):
    monkeypatch.setenv('PROXMOX_HOST', 'pve.env')
    monkeypatch.setenv('PROXMOX_TOKEN_ID', 'root@pam!fence')
    monkeypatch.setenv('PROXMOX_TOKEN_SECRET', 'very-secret-value')
    code, out = call(dict(vmid=100, action='status'))
    assert code == 0 and out['power_state_after'] == 'running'
    client = api.clients[0]
    assert client.settings.host == 'pve.env' and client.settings.token_id == 'root@pam!fence'
    assert 'very-secret-value' not in json.dumps(out)


def test_argument_spec_matches_community_proxmox_names():
    spec = proxmox_fence.argument_spec()
    expected = {
        'api_host': ('PROXMOX_HOST', None), 'api_port': ('PROXMOX_PORT', None), 'api_user': ('PROXMOX_USER', 'root@pam'),
        'api_password': ('PROXMOX_PASSWORD', None), 'api_token_id': ('PROXMOX_TOKEN_ID', None),
        'api_token_secret': ('PROXMOX_TOKEN_SECRET', None), 'validate_certs': ('PROXMOX_VALIDATE_CERTS', True),
        'ca_path': ('PROXMOX_CA_PATH', None), 'api_timeout': ('PROXMOX_API_TIMEOUT', 5),
    }
    for name, (env, default) in expected.items():
        assert spec[name]['fallback'][1] == [env], name
        assert spec[name].get('default') == default, name
    assert spec['api_password']['no_log'] and spec['api_token_secret']['no_log']
    assert 'api_otp' in spec
