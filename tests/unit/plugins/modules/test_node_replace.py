"""Unit tests of the node_replace module entry (through the module runner), no network."""

from __future__ import annotations

import pytest

from ansible_collections.tazlab.resilience.plugins.module_utils.k8s import client as k8s_client
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.errors import NOT_FOUND, K8sError
from ansible_collections.tazlab.resilience.plugins.modules import node_replace
from module_harness import run_main

OLD = '4c4c4544-0082-4d10-8051-b4c04f4e3832'
NEW = '7e0c51b2-51f6-4e0b-a2d4-54f0f6a3d101'


class K8s(object):
    def __init__(self, nodes):
        self.nodes = nodes

    def get_node(self, name):
        if name not in self.nodes:
            raise K8sError(NOT_FOUND, 'nodes "%s" not found' % name, status=404)
        return self.nodes[name]

    def list_custom(self, plural, namespace=None):
        return []


def node(uuid, ready=True):
    return {'metadata': {'name': 'x'}, 'status': {'nodeInfo': {'systemUUID': uuid},
                                                  'conditions': [{'type': 'Ready', 'status': 'True' if ready else 'False'}]}}


@pytest.fixture
def k8s(monkeypatch):
    fake = K8s({'worker-new-02': node(NEW)})
    monkeypatch.setattr(k8s_client, 'client_from_params', lambda params: fake)
    return fake


def test_prepare_without_proxmox_is_refused(k8s):
    code, out = run_main(node_replace, dict(node='worker-new-02', role='worker', old_uuid=OLD))
    assert code == 1 and out['failed'] is True
    assert out['msg'] == 'proxmox_auth.api_host is required: the old VM must be proven powered off'
    assert out['refused'] == ['no Proxmox access'] and out['changed'] is False
    assert out['error']['kind'] == 'refused'


def test_verify_check_mode_reads_once(k8s):
    code, out = run_main(node_replace, dict(node='worker-new-02', role='worker', step='verify', new_uuid=NEW),
                         check_mode=True)
    assert code == 0, out
    assert out['changed'] is False
    assert out['state']['done'] is True and out['state']['node_ready'] is True


def test_verify_not_complete_is_refused_with_the_reasons(k8s):
    k8s.nodes['worker-new-02'] = node(OLD, ready=False)
    code, out = run_main(node_replace, dict(node='worker-new-02', role='worker', step='verify', new_uuid=NEW,
                                            timeout=0.05, poll_interval=0.01))
    assert code == 1
    assert out['msg'].startswith('replacement of worker-new-02 not complete within')
    assert out['refused'] == [out['msg']] and out['error']['kind'] == 'refused'


def test_a_missing_node_is_not_ready(k8s):
    code, out = run_main(node_replace, dict(node='gone', role='worker', step='verify', new_uuid=NEW,
                                            longhorn=False), check_mode=True)
    # a missing Node is "not ready", not an error: one read in check mode
    assert code == 0 and out['state']['node_ready'] is False and out['state']['done'] is False


def test_a_kubernetes_error_fails_with_its_message(k8s, monkeypatch):
    def broken(name):
        raise K8sError('auth', 'nodes "worker-new-02" is forbidden', status=403)
    monkeypatch.setattr(k8s, 'get_node', broken)
    code, out = run_main(node_replace, dict(node='worker-new-02', role='worker', step='verify', new_uuid=NEW),
                         check_mode=True)
    assert code == 1 and out['msg'] == str(K8sError('auth', 'nodes "worker-new-02" is forbidden', status=403))
    assert out['error']['kind'] == 'auth'


def test_bad_proxmox_settings_fail_as_invalid(k8s):
    code, out = run_main(node_replace, dict(node='worker-new-02', role='worker', old_uuid=OLD,
                                            proxmox_auth=dict(api_host='pve.example')))
    assert code == 1 and out['msg'] == 'one of api_password or api_token_id is required'
    assert out['error']['kind'] == 'invalid' and out['changed'] is False
