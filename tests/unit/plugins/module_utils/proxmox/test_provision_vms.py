"""Talos VMs on Proxmox: placement, plan, create/clone, idempotence, HA, guest-agent address (scripted PVE)."""

import pytest

from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox import errors as E
from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.auth import ConnectionSettings
from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.client import ProxmoxClient, parse_smbios_uuid
from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.provision import (
    MARKER, agent_ipv4, create_params, ensure_vms, net0_mac, normalise_vms, place)

from fake_clock import FakeClock
from pve_cluster_fake import PveCluster

UUIDS = ['4c4c4544-00{0:02d}-4d10-8051-b4c04f4e37{0:02d}'.format(i) for i in range(1, 10)]


def client_for(api):
    clock = FakeClock()
    return ProxmoxClient(ConnectionSettings(api_host='h', api_token_id='p', api_token_secret='s'), api=api,
                         sleep=clock.sleep, clock=clock)


def cluster_vms(cps=3, workers=4, **extra):
    out = [dict(name='cp-{0:02d}'.format(i + 1), role='controlplane', uuid=UUIDS[i]) for i in range(cps)]
    out += [dict(name='worker-{0:02d}'.format(i + 1), role='worker', uuid=UUIDS[cps + i]) for i in range(workers)]
    for vm in out:
        vm.update(extra)
    return out


def params(vms, **kw):
    p = dict(vms=vms, defaults=dict(iso='local:iso/talos.iso'), allow_colocation=False, read_addresses=True,
             exclude_addresses=['10.9.0.250'], timeout=60, address_timeout=60)
    p.update(kw)
    return p


# ------------------------------------------------------------------------------------- validation

@pytest.mark.parametrize('vm, words', [
    (dict(name='cp_1', role='controlplane', uuid=UUIDS[0]), 'DNS label'),
    (dict(name='cp-1', role='master', uuid=UUIDS[0]), 'role must be'),
    (dict(name='cp-1', role='worker'), 'uuid'),
    (dict(name='cp-1', role='worker', uuid='nope'), 'not a UUID'),
    (dict(name='cp-1', role='worker', uuid=UUIDS[0], memory=1024), '2048'),
    (dict(name='cp-1', role='worker', uuid=UUIDS[0], scsihw='virtio-scsi-single'), '11173'),
    (dict(name='cp-1', role='worker', uuid=UUIDS[0], template='talos', iso='local:iso/t.iso'), 'exactly one of'),
])
def test_bad_input_is_refused_before_any_request(vm, words):
    api = PveCluster()
    with pytest.raises(E.ProxmoxError) as err:
        ensure_vms(client_for(api), params([vm]))
    assert words in err.value.message
    assert api.log == []


def test_own_template_wins_over_default_iso_and_duplicates_are_refused():
    vms = normalise_vms([dict(name='w1', role='worker', uuid=UUIDS[0], template='talos')],
                        defaults=dict(iso='local:iso/t.iso'))
    assert vms[0]['template'] == 'talos' and vms[0]['iso'] is None
    with pytest.raises(E.ProxmoxError, match='given twice'):
        normalise_vms([dict(name='a', role='worker', uuid=UUIDS[0], iso='x'),
                       dict(name='b', role='worker', uuid=UUIDS[0].upper(), iso='x')])


# -------------------------------------------------------------------------------------- placement

def test_control_planes_on_distinct_hosts_workers_spread():
    wants = normalise_vms(cluster_vms(), defaults=dict(iso='x'))
    out = place(wants, {}, {'pve1': True, 'pve2': True, 'pve3': True})
    assert sorted(out[n] for n in ('cp-01', 'cp-02', 'cp-03')) == ['pve1', 'pve2', 'pve3']
    per_host = {}
    for n in ('worker-01', 'worker-02', 'worker-03', 'worker-04'):
        per_host[out[n]] = per_host.get(out[n], 0) + 1
    assert sorted(per_host.values()) == [1, 1, 2]


def test_fewer_hosts_than_control_planes_is_refused_unless_allowed():
    wants = normalise_vms(cluster_vms(), defaults=dict(iso='x'))
    with pytest.raises(E.ProxmoxError, match='3 control planes but only 2 online'):
        place(wants, {}, {'pve1': True, 'pve2': True, 'pve3': False})
    out = place(wants, {}, {'pve1': True, 'pve2': True}, allow_colocation=True)
    assert set(out[n] for n in ('cp-01', 'cp-02', 'cp-03')) == {'pve1', 'pve2'}


def test_pinned_control_planes_on_one_host_are_refused():
    wants = normalise_vms([dict(name='cp-01', role='controlplane', uuid=UUIDS[0], host='pve1'),
                           dict(name='cp-02', role='controlplane', uuid=UUIDS[1], host='pve1')],
                          defaults=dict(iso='x'))
    with pytest.raises(E.ProxmoxError, match='would share a PVE host'):
        place(wants, {}, {'pve1': True, 'pve2': True})


def test_existing_vms_keep_their_host_and_new_cp_takes_the_free_one():
    wants = normalise_vms(cluster_vms(workers=0), defaults=dict(iso='x'))
    out = place(wants, {'cp-01': 'pve2', 'cp-02': 'pve3'}, {'pve1': True, 'pve2': True, 'pve3': True})
    assert out == {'cp-01': 'pve2', 'cp-02': 'pve3', 'cp-03': 'pve1'}


# ---------------------------------------------------------------------------------- create, rerun

def test_check_mode_is_the_plan_and_sends_only_gets():
    api = PveCluster()
    result = ensure_vms(client_for(api), params(cluster_vms()), check_mode=True)
    assert result['changed'] is True
    assert api.writes() == []
    assert [p['actions'] for p in result['plan']][:3] == [['create', 'ha_add', 'start']] * 3
    assert [p['actions'] for p in result['plan']][3:] == [['create', 'start']] * 4
    assert all(v['address'] is None for v in result['vms'])


def test_create_from_iso_then_rerun_changes_nothing():
    api = PveCluster()
    first = ensure_vms(client_for(api), params(cluster_vms()))
    assert first['changed'] is True
    assert len(api.vms) == 7
    for v in first['vms']:
        vm = api.vms[v['vmid']]
        assert vm['status'] == 'running'
        assert parse_smbios_uuid(vm['config']['smbios1']) == v['uuid']
        assert vm['config']['agent'] == 'enabled=1'
        assert vm['config']['scsihw'] == 'virtio-scsi-pci'
        assert vm['config']['boot'] == 'order=scsi0;ide2;net0'
        assert MARKER in vm['config']['description']
        assert v['address'] == vm['ip'] and v['address_source'] == 'guest_agent'
    assert sorted(api.ha) == sorted(v['vmid'] for v in first['vms'] if v['role'] == 'controlplane')
    assert len(set(v['host'] for v in first['vms'] if v['role'] == 'controlplane')) == 3

    api.log = []
    second = ensure_vms(client_for(api), params(cluster_vms()))
    assert second['changed'] is False
    assert api.writes() == []
    assert [v['address'] for v in second['vms']] == [v['address'] for v in first['vms']]


def test_scale_out_adds_only_the_new_worker():
    api = PveCluster()
    ensure_vms(client_for(api), params(cluster_vms(workers=4)))
    api.log = []
    out = ensure_vms(client_for(api), params(cluster_vms(workers=5)))
    assert [p['name'] for p in out['plan']] == ['worker-05']
    assert [m for m, p in api.writes()] == ['POST', 'POST']  # create, start
    assert len(api.vms) == 8


def test_clone_from_template_per_host_pins_the_uuid():
    api = PveCluster()
    for i, host in enumerate(('pve1', 'pve2', 'pve3')):
        api.add_vm(9000 + i, host, 'talos-template', template=True)
    vms = cluster_vms(template='talos-template')
    result = ensure_vms(client_for(api), params(vms, defaults={}))
    clones = [(m, p, d) for m, p, d in api.log if p.endswith('/clone')]
    assert len(clones) == 7
    for m, p, d in clones:
        assert 'target' not in d  # the template on the VM's own host is used
    for v in result['vms']:
        cfg = api.vms[v['vmid']]['config']
        assert parse_smbios_uuid(cfg['smbios1']) == v['uuid']  # the clone's random one replaced
        assert 'template' not in cfg
    api.log = []
    assert ensure_vms(client_for(api), params(vms, defaults={}))['changed'] is False


def test_interrupted_create_is_finished_not_duplicated():
    api = PveCluster()
    # A clone that completed but whose smbios1 was never set (the run died): ours by the marker, stopped.
    api.add_vm(120, 'pve2', 'worker-01', status='stopped',
               description=MARKER + '\nrole: worker\nsmbios uuid: ' + UUIDS[5])
    out = ensure_vms(client_for(api), params([dict(name='worker-01', role='worker', uuid=UUIDS[5])]))
    assert out['vms'][0]['vmid'] == 120
    assert out['vms'][0]['actions'] == ['configure', 'start']
    assert parse_smbios_uuid(api.vms[120]['config']['smbios1']) == UUIDS[5]
    assert len(api.vms) == 1


def test_foreign_vm_with_the_name_is_refused():
    api = PveCluster()
    api.add_vm(150, 'pve1', 'worker-01', status='running')
    with pytest.raises(E.ProxmoxError, match='bear the name but not its SMBIOS UUID'):
        ensure_vms(client_for(api), params([dict(name='worker-01', role='worker', uuid=UUIDS[5])]))
    assert api.writes() == []


def test_vm_on_offline_host_refuses_creation_of_a_namesake():
    api = PveCluster(online={'pve3': False})
    api.add_vm(150, 'pve3', 'worker-01', status='running', smbios='uuid=' + UUIDS[5])
    with pytest.raises(E.ProxmoxError, match='cannot be read'):
        ensure_vms(client_for(api), params([dict(name='worker-01', role='worker', uuid=UUIDS[5])]))
    assert api.writes() == []


def test_no_quorum_refuses():
    api = PveCluster(quorate=False)
    with pytest.raises(E.ProxmoxError) as err:
        ensure_vms(client_for(api), params(cluster_vms(workers=0)))
    assert err.value.kind == E.NO_QUORUM
    assert api.writes() == []


def test_stopped_vm_is_started_and_drift_reported():
    api = PveCluster()
    api.add_vm(130, 'pve1', 'worker-01', status='stopped', smbios='uuid=' + UUIDS[5], memory=2048)
    out = ensure_vms(client_for(api), params([dict(name='worker-01', role='worker', uuid=UUIDS[5])]))
    assert out['vms'][0]['actions'] == ['start']
    assert out['vms'][0]['drift'] == {'memory': {'have': 2048, 'want': 4096}}
    assert api.vms[130]['status'] == 'running'


def test_static_address_skips_the_agent():
    api = PveCluster()
    vms = [dict(name='worker-01', role='worker', uuid=UUIDS[5], address='192.168.1.81')]
    out = ensure_vms(client_for(api), params(vms))
    assert out['vms'][0]['address'] == '192.168.1.81' and out['vms'][0]['address_source'] == 'static'
    assert not [p for m, p, d in api.log if 'agent' in p]


# ------------------------------------------------------------------------------------- guest agent

def test_agent_ipv4_picks_net0_and_skips_vip_and_link_local():
    reply = {'result': [
        {'name': 'lo', 'hardware-address': '00:00:00:00:00:00',
         'ip-addresses': [{'ip-address-type': 'ipv4', 'ip-address': '127.0.0.1'}]},
        {'name': 'cni0', 'hardware-address': 'aa:aa:aa:aa:aa:aa',
         'ip-addresses': [{'ip-address-type': 'ipv4', 'ip-address': '10.244.0.1'}]},
        {'name': 'eth0', 'hardware-address': 'bc:24:11:00:00:01',
         'ip-addresses': [{'ip-address-type': 'ipv4', 'ip-address': '169.254.1.1'},
                          {'ip-address-type': 'ipv4', 'ip-address': '192.168.1.250'},
                          {'ip-address-type': 'ipv4', 'ip-address': '192.168.1.71'}]}]}
    assert agent_ipv4(reply, 'BC:24:11:00:00:01', exclude=['192.168.1.250']) == '192.168.1.71'
    assert agent_ipv4(reply, None) == '10.244.0.1'
    assert agent_ipv4({'result': []}, 'BC:24:11:00:00:01') is None


def test_agent_that_never_answers_times_out_with_the_reason():
    api = PveCluster(agent_delay=10 ** 6)
    with pytest.raises(E.ProxmoxError) as err:
        ensure_vms(client_for(api), params([dict(name='worker-01', role='worker', uuid=UUIDS[5])],
                                           address_timeout=10))
    assert err.value.kind == E.TIMEOUT
    assert 'qemu-guest-agent' in err.value.message and 'QEMU guest agent is not running' in err.value.message


def test_create_params_and_mac():
    want = normalise_vms([dict(name='w1', role='worker', uuid=UUIDS[0], iso='local:iso/t.iso', vlan=20,
                               mac='bc:24:11:00:00:09', tags=['talos', 'worker'])])[0]
    p = create_params(want, 105)
    assert p['net0'] == 'virtio=BC:24:11:00:00:09,bridge=vmbr0,tag=20'
    assert p['smbios1'] == 'uuid=' + UUIDS[0] and p['balloon'] == 0 and p['tags'] == 'talos;worker'
    assert net0_mac({'net0': p['net0']}) == 'BC:24:11:00:00:09'
    assert net0_mac({'net0': 'model=virtio,macaddr=bc:24:11:00:00:0a,bridge=vmbr0'}) == 'BC:24:11:00:00:0A'


def test_replacement_vm_next_to_the_dead_one_with_its_name():
    api = PveCluster()
    api.add_vm(120, 'pve2', 'worker-01', status='stopped', smbios='uuid=' + UUIDS[5],
               description=MARKER + '\nrole: worker\nsmbios uuid: ' + UUIDS[5])
    vm = dict(name='worker-01', role='worker', uuid=UUIDS[6], replaces=UUIDS[5])
    with pytest.raises(E.ProxmoxError, match='bear the name'):
        ensure_vms(client_for(api), params([dict(vm, replaces=None)]))
    out = ensure_vms(client_for(api), params([vm]))
    assert out['vms'][0]['vmid'] != 120 and out['vms'][0]['actions'] == ['create', 'start']
    assert api.vms[120]['status'] == 'stopped'  # the old VM is left alone
    with pytest.raises(E.ProxmoxError, match='needs a new SMBIOS UUID'):
        ensure_vms(client_for(api), params([dict(vm, uuid=UUIDS[7], replaces=UUIDS[7])]))


def test_a_stopped_namesake_from_another_uuid_plan_is_not_taken_over():
    api = PveCluster()
    api.add_vm(120, 'pve2', 'worker-01', status='stopped', description=MARKER + '\nrole: worker\nsmbios uuid: ' + UUIDS[1])
    with pytest.raises(E.ProxmoxError, match='bear the name'):
        ensure_vms(client_for(api), params([dict(name='worker-01', role='worker', uuid=UUIDS[5])]))


def test_a_retired_vm_is_never_started_again_from_an_old_inventory():
    api = PveCluster()
    api.add_vm(120, 'pve2', 'worker-01', status='stopped', smbios='uuid=' + UUIDS[5],
               description=MARKER + '\nretired: replaced by the VM with SMBIOS UUID ' + UUIDS[6])
    with pytest.raises(E.ProxmoxError, match='retired by replace_node'):
        ensure_vms(client_for(api), params([dict(name='worker-01', role='worker', uuid=UUIDS[5])]))
    assert api.writes() == []
