"""Issue 14: the collection's Talos handling against upstream Talos (talos.md; merge.go, delete.go, CanApplyImmediate).

Point 1 (reboot rule and the node's dry run), point 2 (merge semantics, YAML 1.2), point 3 (JSON6902 through
jsonpatch), point 7 (role messages, reboot_mode force from v1.12).
"""

from __future__ import annotations

import asyncio

import pytest

from ansible_collections.tazlab.resilience.plugins.module_utils.talos import client as tc
from ansible_collections.tazlab.resilience.plugins.module_utils.talos import node
from ansible_collections.tazlab.resilience.plugins.module_utils.talos import patch as tp
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.errors import (
    TalosApiError, TalosError, TalosPatchError)
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.pb import machine_pb2

BASE = """\
version: v1alpha1
debug: false
machine:
  type: controlplane
  token: abc.def
  certSANs: [10.0.0.10]
  network:
    hostname: cp1
    interfaces:
      - interface: eth0
        addresses: [10.0.0.11/24]
  kubelet:
    extraArgs: {rotate-server-certificates: 'true'}
  features:
    rbac: true
    kubePrism: {enabled: true, port: 7445}
cluster:
  clusterName: c
  apiServer:
    extraArgs:
      feature-gates: [A=true]
      v: '2'
    admissionControl:
      - name: PodSecurity
        configuration:
          apiVersion: pod-security.admission.config.k8s.io/v1alpha1
          defaults: {enforce: baseline, audit: restricted}
    auditPolicy:
      apiVersion: audit.k8s.io/v1
      kind: Policy
      rules: [{level: Metadata}]
  network:
    podSubnets: [10.244.0.0/16]
"""


def base():
    return tp.load_documents(BASE)


def patched(*patches):
    return tp.apply_patches(base(), list(patches))


# -- point 1: CanApplyImmediate -----------------------------------------------------------------------
@pytest.mark.parametrize('patch', [
    {'machine': {'ca': {'crt': 'Q1JU'}}},
    {'machine': {'acceptedCAs': [{'crt': 'Q1JU'}]}},
    {'machine': {'controlPlane': {'scheduler': {'disabled': True}}}},
    {'machine': {'kernel': {'modules': [{'name': 'drbd'}]}}},
    {'machine': {'pods': [{'apiVersion': 'v1', 'kind': 'Pod'}]}},
    {'machine': {'seccompProfiles': [{'name': 'a.json', 'value': {'defaultAction': 'SCMP_ACT_LOG'}}]}},
    {'machine': {'features': {'hostDNS': {'enabled': True}}}},
    {'machine': {'features': {'kubernetesTalosAPIAccess': {'enabled': True}}}},
    {'machine': {'features': {'imageCache': {'localEnabled': True}}}},
    {'machine': {'features': {'nodeAddressSortAlgorithm': 'v2'}}},
    {'machine': {'time': {'servers': ['pool.ntp.org']}}},
    {'machine': {'logging': {'destinations': [{'endpoint': 'udp://1.2.3.4:514', 'format': 'json_lines'}]}}},
    {'machine': {'nodeTaints': {'a': 'b:NoSchedule'}}},
])
def test_upstream_immediate_fields_need_no_reboot(patch):
    assert tp.needs_reboot(base(), patched(patch)) is False


@pytest.mark.parametrize('patch', [
    {'machine': {'env': {'A': '1'}}},
    {'machine': {'files': [{'path': '/var/f', 'content': 'x', 'op': 'create'}]}},
    {'machine': {'features': {'stableHostname': True}}},
    {'machine': {'features': {'diskQuotaSupport': True}}},
    {'machine': {'udev': {'rules': ['x']}}},
    {'persist': False},
])
def test_other_fields_need_a_reboot(patch):
    assert tp.needs_reboot(base(), patched(patch)) is True


def test_adding_the_features_block_is_a_reboot_change_and_1_14_has_no_rule():
    docs = base()
    del docs[0]['machine']['features']
    new = tp.apply_patches(docs, [{'machine': {'features': {'hostDNS': {'enabled': True}}}}])
    assert tp.needs_reboot(docs, new) is True          # only with a features block on both sides
    assert tp.needs_reboot(docs, new, version='v1.13.9') is True
    assert tp.needs_reboot(docs, new, version='v1.14.0') is False   # CanApplyImmediate is gone in 1.14


class Node(object):
    """The TalosClient calls plan_apply / run_node make, answered like a node of ``version`` would."""

    def __init__(self, config=BASE, dry_run_mode=None, version='v1.13.9'):
        self.config = config.encode()
        self.dry_run_mode = dry_run_mode
        self.tag = version
        self.calls = []
        self.auth = type('Auth', (), {'endpoints': [('10.0.0.11', 50000)]})()

    async def machine_config(self, node=None, endpoint=None, rid='v1alpha1'):
        return self.config

    async def apply_configuration(self, data, mode='auto', dry_run=False, try_timeout=None, node=None, endpoint=None):
        self.calls.append(('apply', mode, dry_run))
        if self.dry_run_mode is None:
            raise TalosApiError('UNIMPLEMENTED', status='UNIMPLEMENTED')
        return dict(mode=self.dry_run_mode, mode_details='Dry run summary:', warnings=[])

    async def version(self, node=None, nodes=None, endpoint=None, retries=None):
        self.calls.append(('version',))
        return machine_pb2.VersionResponse(messages=[machine_pb2.Version(version=machine_pb2.VersionInfo(tag=self.tag))])

    async def reboot(self, node=None, endpoint=None, mode='default'):
        self.calls.append(('reboot', mode))
        return 'actor'


def test_staged_if_needing_reboot_applies_an_immediate_change_at_once():
    kernel = [{'machine': {'kernel': {'modules': [{'name': 'drbd'}]}}}]
    p = asyncio.run(node.plan_apply(Node(), dict(node='n', apply_mode='staged_if_needing_reboot',
                                                 config_patches=kernel)))
    assert p['mode'] == 'no_reboot' and p['reboot_required'] is False and p['reboot_judged_by'] == 'rule'
    p = asyncio.run(node.plan_apply(Node(), dict(node='n', apply_mode='no_reboot', config_patches=kernel)))
    assert p['mode'] == 'no_reboot' and p['changed']


def test_the_nodes_dry_run_answer_wins_over_the_rule():
    env = [{'machine': {'env': {'A': '1'}}}]       # the rule says: reboot
    n = Node(dry_run_mode='no_reboot')             # the node says: no reboot
    p = asyncio.run(node.plan_apply(n, dict(node='n', apply_mode='staged_if_needing_reboot', config_patches=env)))
    assert (p['mode'], p['reboot_required'], p['reboot_judged_by']) == ('no_reboot', False, 'node')
    assert ('apply', 'auto', True) in n.calls
    n = Node(dry_run_mode='reboot')
    labels = [{'machine': {'nodeLabels': {'a': 'b'}}}]
    p = asyncio.run(node.plan_apply(n, dict(node='n', apply_mode='auto', config_patches=labels)))
    assert p['reboot_required'] is True and p['will_reboot'] is True and p['reboot_judged_by'] == 'node'


# -- point 2: merge as talosctl patch -----------------------------------------------------------------
def test_zero_values_in_the_patch_are_skipped_but_false_is_merged():
    out = patched({'machine': {'network': {'hostname': ''}, 'token': None, 'kubelet': {'extraArgs': {}}},
                   'cluster': {'clusterName': ''}, 'debug': True})
    assert out[0]['machine']['network']['hostname'] == 'cp1' and out[0]['machine']['token'] == 'abc.def'
    assert out[0]['cluster']['clusterName'] == 'c' and out[0]['debug'] is True
    out = patched({'machine': {'features': {'rbac': False}}})
    assert out[0]['machine']['features']['rbac'] is False


def test_extra_args_take_each_keys_value_from_the_patch():
    out = patched({'cluster': {'apiServer': {'extraArgs': {'feature-gates': ['B=true'], 'audit-log-maxage': '7'}}}})
    assert out[0]['cluster']['apiServer']['extraArgs'] == {'feature-gates': ['B=true'], 'v': '2',
                                                           'audit-log-maxage': '7'}


def test_admission_control_merges_on_name_audit_policy_is_replaced_whole():
    out = patched({'cluster': {'apiServer': {
        'admissionControl': [{'name': 'PodSecurity', 'configuration': {'defaults': {'enforce': 'restricted'}}},
                             {'name': 'EventRateLimit', 'configuration': {'kind': 'Configuration'}}],
        'auditPolicy': {'apiVersion': 'audit.k8s.io/v1', 'kind': 'Policy', 'omitStages': ['RequestReceived']}}}})
    api = out[0]['cluster']['apiServer']
    assert [a['name'] for a in api['admissionControl']] == ['PodSecurity', 'EventRateLimit']
    assert api['admissionControl'][0]['configuration']['defaults'] == {'enforce': 'restricted', 'audit': 'restricted'}
    assert api['auditPolicy'] == {'apiVersion': 'audit.k8s.io/v1', 'kind': 'Policy', 'omitStages': ['RequestReceived']}


def test_list_items_are_deleted_by_their_first_key_and_inner_key_deletes_are_rejected():
    # the other keys of the item do not take part in the match (delete.go: the first key:value is the selector)
    item = {'interface': 'eth0', 'addresses': ['nope'], '$patch': 'delete'}
    out = patched({'machine': {'network': {'interfaces': [item]}}})
    assert out[0]['machine']['network']['interfaces'] == []
    with pytest.raises(TalosPatchError, match="cannot delete an inner key in 'machine.network.interfaces.\\[0\\].addresses'"):
        patched({'machine': {'network': {'interfaces': [{'interface': 'eth0', 'addresses': {'$patch': 'delete'}}]}}})
    with pytest.raises(TalosPatchError, match='lookup failed'):
        patched({'machine': {'network': {'interfaces': [{'interface': 'eth9', '$patch': 'delete'}]}}})
    with pytest.raises(TalosPatchError, match='lookup failed'):
        patched({'machine': {'registries': {'mirrors': {'$patch': 'delete'}}}})
    # the delete runs before the merge of the same document
    out = patched({'machine': {'certSANs': {'$patch': 'delete'}, 'nodeLabels': {'a': 'b'}}})
    assert 'certSANs' not in out[0]['machine'] and out[0]['machine']['nodeLabels'] == {'a': 'b'}


def test_yaml_is_read_as_yaml_1_2():
    docs = tp.load_documents("version: v1alpha1\nmachine:\n  nodeLabels: {power: on, ok: yes, off: no, t: true}\n")
    labels = docs[0]['machine']['nodeLabels']
    assert labels == {'power': 'on', 'ok': 'yes', 'off': 'no', 't': True}
    again = tp.load_documents(tp.dump_documents(docs))
    assert again == docs
    out = tp.apply_patches(BASE, ["machine:\n  nodeLabels:\n    feature: on\n"])
    assert out[0]['machine']['nodeLabels'] == {'feature': 'on'}


# -- point 3: JSON6902 through jsonpatch --------------------------------------------------------------
def test_json6902_rejects_invalid_indexes():
    single = tp.dump_documents(base()[:1])
    with pytest.raises(TalosPatchError, match='not a valid sequence index'):
        tp.apply_patches(single, [[{'op': 'remove', 'path': '/machine/certSANs/-1'}]])
    with pytest.raises(TalosPatchError, match='not a valid sequence index'):
        tp.apply_patches(single, [[{'op': 'add', 'path': '/machine/certSANs/01', 'value': 'x'}]])
    out = tp.apply_patches(single, [[{'op': 'add', 'path': '/machine/certSANs/-', 'value': '10.0.0.12'},
                                     {'op': 'move', 'from': '/machine/token', 'path': '/machine/tok'}]])
    assert out[0]['machine']['certSANs'] == ['10.0.0.10', '10.0.0.12'] and out[0]['machine']['tok'] == 'abc.def'
    assert tp.HAS_JSONPATCH is True


# -- point 7: messages and versions ------------------------------------------------------------------
def test_permission_messages_name_the_role_the_call_needs():
    assert 'os:admin' in tc.needed_role('/cosi.resource.State/Get')
    assert 'os:operator' not in tc.needed_role('/machine.MachineService/ApplyConfiguration')
    assert 'os:admin' in tc.needed_role('/machine.MachineService/ApplyConfiguration')
    assert 'os:operator' in tc.needed_role('/machine.MachineService/Reboot')


@pytest.mark.parametrize('version, ok', [('v1.11.6', False), ('v1.9.6', False), ('v1.12.0', True),
                                         ('v1.13.9', True)])
def test_reboot_mode_force_needs_talos_1_12(version, ok):
    n = Node(version=version)
    params = dict(node='n', state='rebooted', reboot_mode='force', wait=False)
    if ok:
        result = asyncio.run(node.run_node(n, params))
        assert result['talos_version'] == version and ('reboot', 'force') in n.calls
    else:
        with pytest.raises(TalosError, match='reboot_mode=force needs Talos v1.12'):
            asyncio.run(node.run_node(n, params))
        assert not any(c[0] == 'reboot' for c in n.calls)
        with pytest.raises(TalosError, match=version):
            asyncio.run(node.run_node(n, params, check_mode=True))
