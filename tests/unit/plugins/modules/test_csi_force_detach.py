"""The csi_force_detach module entry (longhorn_force_detach redirects to it): argument handling, refusals before any API call, check mode."""

from __future__ import annotations

import json
import os
import sys

import pytest

from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.force_detach import module as fd_module
from ansible_collections.tazlab.resilience.plugins.modules import csi_force_detach as mod

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'module_utils', 'k8s'))
import k8s_fixtures as fx  # noqa: E402
from fake_k8s import FakeK8s  # noqa: E402
from module_harness import run_main

AUTH = dict(host='https://127.0.0.1:6443', api_key='secret-token')


@pytest.fixture
def cluster(monkeypatch):
    for var in list(os.environ):
        if var.startswith('K8S_AUTH_'):
            monkeypatch.delenv(var)
    state = {'fake': FakeK8s(fx.seed_objects()), 'params': []}

    def factory(params, sleep=None):
        state['params'].append(dict(params))
        return state['fake']
    monkeypatch.setattr(fd_module, 'connect', factory)
    return state


def call(args, check_mode=False):
    return run_main(mod, args, check_mode=check_mode)


def test_no_fence_refused_before_any_api_call(cluster):
    code, out = call(dict(AUTH, node=fx.DEAD))
    assert code == 1 and out['failed']
    assert 'no fence proof' in out['msg'] and out['changed'] is False
    assert cluster['params'] == []          # the client was never even built


def test_bad_input_rejected_before_api(cluster):
    code, out = call(dict(AUTH, node=fx.DEAD, assume_fenced=True, wait_timeout=-1, pvcs=['a/b/c']))
    assert code == 1 and 'wait_timeout must be positive' in out['msg'] and 'namespace/name' in out['msg']
    assert cluster['params'] == []


def test_check_mode_plan_no_write(cluster):
    code, out = call(dict(AUTH, node=fx.DEAD, fence=fx.fence(), strategy='direct'), check_mode=True)
    assert code == 0, out
    assert out['changed'] is True
    assert out['fence']['verified'] is True
    # Longhorn's order: VolumeAttachments first, pods last
    assert [a['action'] for a in out['plan']['actions']] == ['delete_volume_attachment', 'delete_volume_attachment',
                                                             'clear_volumes_in_use', 'force_delete_pod',
                                                             'force_delete_pod']
    assert [t['ticket'] for t in out['plan']['longhorn_tickets']] == ['csi-bbb', 'csi-aaa']
    assert cluster['fake'].log == []
    assert 'secret-token' not in json.dumps(out)


def test_mismatched_proof_refused(cluster):
    code, out = call(dict(AUTH, node=fx.DEAD, fence=fx.fence(uuid=fx.UUID_ALIVE)))
    assert code == 1 and out['refused'] and 'systemUUID' in out['msg']
    assert cluster['fake'].log == []


def test_ready_node_refused(cluster):
    node = cluster['fake'].obj('nodes', None, fx.DEAD)
    node['status']['conditions'][0]['status'] = 'True'
    # The lease never goes silent here: the stale-Ready wait (real seconds) ends at stale_wait, then the refusal.
    code, out = call(dict(AUTH, node=fx.DEAD, fence=fx.fence(), stale_wait=0.5))
    assert code == 1 and 'is Ready' in out['msg']
    assert cluster['fake'].log == []


def test_assume_fenced_is_loud(cluster):
    code, out = call(dict(AUTH, node=fx.DEAD, assume_fenced=True, wait=False))
    assert code == 0, out
    assert out['assumed_fenced'] is True and out['fence']['assumed'] is True
    assert any('ASSUMED FENCED' in w for w in out['warnings'])
    assert 'safety_warnings' not in out and 'deprecations' not in out
    assert out['changed'] is True and [e[:2] for e in cluster['fake'].write_log()] == [('patch', 'nodes')]


def check_mode_fence(monkeypatch):
    """The registered result of tazlab.resilience.proxmox_fence run in check mode on the dead node's VM (running)."""
    import importlib.util

    from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox import fence
    from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.client import ProxmoxClient
    from ansible_collections.tazlab.resilience.plugins.modules import proxmox_fence

    spec = importlib.util.spec_from_file_location('proxmox_fakeapi', os.path.join(
        os.path.dirname(os.path.abspath(__file__)), '..', 'module_utils', 'proxmox', 'proxmox_fakeapi.py'))
    fakeapi = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fakeapi)
    api = fakeapi.FakeApi(fakeapi.FakeVmState(vmid=103, name=fx.DEAD, smbios='uuid=' + fx.UUID_DEAD))
    monkeypatch.setattr(fence, 'ProxmoxClient', lambda settings: ProxmoxClient(settings, api=api,
                                                                               sleep=lambda s: None))
    code, out = run_main(proxmox_fence, dict(api_host='pve.example', api_password='pw', vmid=103,
                                             expected_system_uuid=fx.UUID_DEAD), check_mode=True)
    assert code == 0 and out['predicted'] is True and api.writes() == [], out
    return out


def test_the_check_mode_fence_proof_plans_in_check_mode(cluster, monkeypatch):
    """The runbook in check mode, without assume_fenced: the fence's predicted proof is enough to show the plan."""
    proof = check_mode_fence(monkeypatch)
    code, out = call(dict(AUTH, node=fx.DEAD, fence=proof, strategy='direct'), check_mode=True)
    assert code == 0, out
    assert out['changed'] is True and out['fence']['predicted'] is True and out['assumed_fenced'] is False
    assert [a['action'] for a in out['plan']['actions']].count('force_delete_pod') == 2
    assert any('is predicted' in w for w in out['warnings'])
    assert cluster['fake'].log == []


@pytest.mark.parametrize('assume', [False, True])
def test_the_check_mode_fence_proof_is_refused_in_a_real_run_before_any_api_call(cluster, monkeypatch,
                                                                                 assume):
    proof = check_mode_fence(monkeypatch)
    code, out = call(dict(AUTH, node=fx.DEAD, fence=proof, assume_fenced=assume))
    assert code == 1 and out['failed'] and out['changed'] is False
    assert 'a predicted proof from a check-mode fence is not a proof' in out['msg']
    assert out['error']['kind'] == 'refused' and out['refused']
    assert cluster['params'] == []          # the client was never even built


def test_auth_options_and_defaults_reach_the_client(cluster, monkeypatch):
    monkeypatch.setenv('K8S_AUTH_HOST', 'https://10.0.0.1:6443')
    monkeypatch.setenv('K8S_AUTH_API_KEY', 'env-token')
    monkeypatch.setenv('K8S_AUTH_SSL_CA_CERT', '/tmp/ca.pem')
    code, out = call(dict(node=fx.DEAD, fence=fx.fence()), check_mode=True)
    assert code == 0, out
    params = cluster['params'][0]
    assert params['host'] == 'https://10.0.0.1:6443' and params['api_key'] == 'env-token'
    assert params['ca_cert'] == '/tmp/ca.pem'
    assert params['validate_certs'] is True
    assert 'env-token' not in json.dumps(out)


def test_verify_ssl_alias_and_env_false(cluster, monkeypatch):
    call(dict(AUTH, node=fx.DEAD, fence=fx.fence(), verify_ssl=False), check_mode=True)
    assert cluster['params'][-1]['validate_certs'] is False
    monkeypatch.setenv('K8S_AUTH_VERIFY_SSL', 'false')
    call(dict(AUTH, node=fx.DEAD, fence=fx.fence()), check_mode=True)
    assert cluster['params'][-1]['validate_certs'] is False


def test_state_absent_needs_no_fence(cluster):
    code, out = call(dict(AUTH, node=fx.DEAD, state='absent'))
    assert code == 0 and out['changed'] is False


def test_kubeconfig_and_context_env_fallbacks(cluster, monkeypatch):
    monkeypatch.setenv('K8S_AUTH_KUBECONFIG', '/tmp/kubeconfig-from-awx')
    monkeypatch.setenv('K8S_AUTH_CONTEXT', 'admin@tazlab')
    monkeypatch.setenv('K8S_AUTH_VALIDATE_CERTS', 'no')
    code, out = call(dict(node=fx.DEAD, fence=fx.fence()), check_mode=True)
    assert code == 0, out
    params = cluster['params'][-1]
    assert params['kubeconfig'] == '/tmp/kubeconfig-from-awx' and params['context'] == 'admin@tazlab'
    assert params['validate_certs'] is False
    # an explicit option wins over the environment
    call(dict(node=fx.DEAD, fence=fx.fence(), context='other'), check_mode=True)
    assert cluster['params'][-1]['context'] == 'other'


def test_failures_have_the_runner_shape(cluster):
    """A missing proof is a refusal (refused, error.kind refused); a bad value is invalid input; both before any
    API call."""
    code, out = call(dict(AUTH, node=fx.DEAD))
    assert out['error']['kind'] == 'refused' and out['refused'] and 'no fence proof' in out['refused'][0]
    assert out['assumed_fenced'] is False and out['changed'] is False
    code, out = call(dict(AUTH, node=fx.DEAD, assume_fenced=True, stale_wait=-1, api_retries=0))
    assert code == 1 and out['error']['kind'] == 'invalid' and out['changed'] is False
    assert 'stale_wait must not be negative' in out['msg'] and 'api_retries must be at least 1' in out['msg']
    assert cluster['params'] == []


def test_a_refused_run_reports_what_it_read(cluster):
    code, out = call(dict(AUTH, node=fx.DEAD, fence=fx.fence(uuid=fx.UUID_ALIVE)))
    assert code == 1 and out['error']['kind'] == 'refused' and out['changed'] is False
    assert out['actions_done'] == [] and isinstance(out['events'], list) and out['assumed_fenced'] is False


def test_proxmox_auth_without_credentials_is_refused_before_kubernetes(cluster):
    code, out = call(dict(AUTH, node=fx.DEAD, fence=fx.fence(), proxmox_auth=dict(api_host='127.0.0.1')))
    assert code == 1 and out['msg'].startswith('proxmox_auth: ') and out['error']['kind'] == 'invalid'
    assert out['changed'] is False and cluster['params'] == []
