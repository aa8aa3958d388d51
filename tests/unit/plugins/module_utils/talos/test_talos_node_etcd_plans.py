"""Plans of talos_node / talos_etcd: mode resolution, idempotence, address tracking, quorum arithmetic."""

from __future__ import annotations

import asyncio

import pytest

from ansible_collections.tazlab.resilience.plugins.module_utils.talos import etcd, node
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.errors import TalosApiError, TalosError
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.pb import machine_pb2

CONFIG = b"""\
version: v1alpha1
machine:
  type: worker
  network:
    interfaces:
      - interface: eth0
        addresses: [10.0.0.21/24]
cluster:
  clusterName: c
"""


class ConfigReader(object):
    """Stands in for the TalosClient calls the plan makes: the configs, the version and the dry run.

    ``dry_run_mode``: what the node's dry run in mode AUTO answers ('reboot' / 'no_reboot'), or None for a
    node that gives no answer (the client-side rule for ``version`` decides then)."""

    def __init__(self, current, persistent=None, dry_run_mode=None, version='v1.13.9'):
        self.configs = {'v1alpha1': current, 'persistent': persistent or current}
        self.dry_run_mode = dry_run_mode
        self.tag = version
        self.dry_runs = []

    async def machine_config(self, node=None, endpoint=None, rid='v1alpha1'):
        return self.configs[rid]

    async def apply_configuration(self, data, mode='auto', dry_run=False, try_timeout=None, node=None, endpoint=None):
        assert dry_run and mode == 'auto'
        self.dry_runs.append(data)
        if self.dry_run_mode is None:
            raise TalosApiError('ApplyConfiguration failed: UNIMPLEMENTED', status='UNIMPLEMENTED')
        return dict(mode=self.dry_run_mode, mode_details='Dry run summary:', warnings=[])

    async def version(self, node=None, nodes=None, endpoint=None, retries=None):
        return machine_pb2.VersionResponse(messages=[machine_pb2.Version(version=machine_pb2.VersionInfo(tag=self.tag))])


def plan(params, current=CONFIG, persistent=None, **reader):
    return asyncio.run(node.plan_apply(ConfigReader(current, persistent, **reader), params))


def test_modes_idempotence_and_addresses():
    p = plan(dict(node='n', apply_mode='auto', config_patches=[{'machine': {'nodeLabels': {'a': 'b'}}}]))
    assert p['changed'] and not p['reboot_required'] and not p['will_reboot'] and p['mode'] == 'auto'
    assert p['address_before'] == p['address_after'] == '10.0.0.21'
    same = plan(dict(node='n', apply_mode='auto', config_patches=[{'cluster': {'clusterName': 'c'}}]))
    assert same['changed'] is False
    kernel = [{'machine': {'env': {'http_proxy': 'http://proxy:3128'}}}]   # machine.env needs a reboot
    p = plan(dict(node='n', apply_mode='staged_if_needing_reboot', config_patches=kernel))
    assert p['mode'] == 'staged' and p['reboot_required'] and not p['will_reboot']
    assert plan(dict(node='n', apply_mode='auto', config_patches=kernel))['will_reboot'] is True
    with pytest.raises(TalosError, match='needs a reboot'):
        plan(dict(node='n', apply_mode='no_reboot', config_patches=kernel))
    # already staged: nothing to do for staged, but a change for auto (the running config differs)
    staged = plan(dict(node='n', apply_mode='staged', config_patches=kernel))
    again = plan(dict(node='n', apply_mode='staged', config_patches=kernel), persistent=staged['data'])
    assert again['changed'] is False
    move = [{'machine': {'network': {'interfaces': [{'interface': 'eth0', '$patch': 'delete'}]}}},
            {'machine': {'network': {'interfaces': [{'interface': 'eth0', 'addresses': ['10.0.1.21/24']}]}}}]
    p = plan(dict(node='n', apply_mode='auto', config_patches=move))
    assert (p['address_before'], p['address_after'], p['reboot_required']) == ('10.0.0.21', '10.0.1.21', False)


def test_validate_rejects_before_any_call():
    with pytest.raises(TalosError, match='needs config_patches or config'):
        node.validate(dict(apply_mode='auto', state='present'))
    with pytest.raises(TalosError):
        node.validate(dict(apply_mode='auto', state='present', config_patches=[42]))
    node.validate(dict(apply_mode='auto', state='rebooted'))


def members(*spec):
    return [dict(id=i + 1, hostname='cp%d' % (i + 1), is_learner=learner,
                 client_urls=['https://10.0.0.%d:2379' % (11 + i)], peer_urls=[]) for i, learner in enumerate(spec)]


def test_quorum_arithmetic():
    ms = members(False, False, False)
    all_ok = {1: {}, 2: {}, 3: {}}
    assert etcd.quorum_after_removal(ms, all_ok, 3)[0] is True
    assert etcd.quorum_after_removal(ms, {1: {}, 2: {}, 3: None}, 3)[0] is True      # remove the dead one
    ok, why = etcd.quorum_after_removal(ms, {1: {}, 2: {}, 3: None}, 2)             # remove a healthy one
    assert ok is False and 'quorum needs 2' in why
    assert etcd.quorum_after_removal(members(False, False, True), {1: {}, 2: None, 3: None}, 3)[0] is True
    assert etcd.quorum_after_removal(members(False), {1: {}}, 1)[0] is True


def test_find_member_by_name_id_hex_or_address():
    ms = members(False, False)
    assert etcd.find_member(ms, 'cp2')['id'] == 2
    assert etcd.find_member(ms, '1')['id'] == 1
    assert etcd.find_member(ms, '0000000000000002')['id'] == 2
    assert etcd.find_member(ms, '10.0.0.11')['id'] == 1
    assert etcd.find_member(ms, 'cp9') is None


def test_recover_checks_the_file_first(tmp_path):
    src = tmp_path / 'snap'
    src.write_bytes(b'abc')
    etcd.validate(dict(action='recover', src=str(src), checksum=etcd.sha256_file(str(src))))
    with pytest.raises(TalosError, match='does not match checksum'):
        etcd.validate(dict(action='recover', src=str(src), checksum='00'))
    with pytest.raises(TalosError, match='does not exist'):
        etcd.validate(dict(action='recover', src=str(tmp_path / 'nope')))
