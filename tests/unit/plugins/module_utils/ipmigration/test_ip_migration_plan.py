"""The pure planning of ip_migration: preflight refusals, patches for both config shapes, reverse patches."""

from __future__ import annotations

import copy

import pytest
import yaml

from ansible_collections.tazlab.resilience.plugins.module_utils.ipmigration import plan as ip
from ansible_collections.tazlab.resilience.plugins.module_utils.talos import patch as tp


def legacy_config(name, address, vip=None, routes=True, sans=None):
    iface = {'interface': 'eth0', 'addresses': [address], 'dhcp': False}
    if routes:
        iface['routes'] = [{'network': '0.0.0.0/0', 'gateway': '192.168.1.1'},
                           {'network': '10.10.0.0/16', 'gateway': '192.168.1.2'}]
    if vip:
        iface['vip'] = {'ip': vip}
    network = {'hostname': name, 'interfaces': [iface]}
    v1 = {'version': 'v1alpha1', 'machine': {'type': 'controlplane', 'network': network},
          'cluster': {'controlPlane': {'endpoint': 'https://192.168.1.250:6443'}}}
    if sans is not None:
        v1['machine']['certSANs'] = list(sans)
    return [v1, {'apiVersion': 'v1alpha1', 'kind': 'ResolverConfig', 'nameservers': [{'address': '1.1.1.1'}]}]


def link_config(name, address, vip=None):
    docs = [{'version': 'v1alpha1', 'machine': {'type': 'controlplane', 'network': {'hostname': name}},
             'cluster': {'apiServer': {'certSANs': ['api.example.org']}}},
            {'apiVersion': 'v1alpha1', 'kind': 'LinkConfig', 'name': 'enp1s0', 'up': True,
             'addresses': [{'address': address}],
             'routes': [{'destination': '0.0.0.0/0', 'gateway': '192.168.1.1'}]}]
    if vip:
        docs.append({'apiVersion': 'v1alpha1', 'kind': 'Layer2VIPConfig', 'name': vip, 'link': 'enp1s0'})
    return docs


def facts(configs, quorum=True, healthy=None, ready=None, extra_nodes=()):
    cps = []
    nodes = []
    for name, (address, docs) in configs.items():
        cps.append({'name': name, 'address': address, 'docs': docs,
                    'etcd_healthy': (healthy or {}).get(name, True), 'is_learner': False})
        nodes.append({'name': name, 'control_plane': True, 'ready': (ready or {}).get(name, True),
                      'internal_ip': address})
    nodes.extend(extra_nodes)
    return {'control_planes': cps, 'etcd_quorum': quorum, 'kubernetes': {'nodes': nodes}}


def three(shape=legacy_config, vip=None):
    return dict((n, ('192.168.1.%d' % i, shape(n, '192.168.1.%d/24' % i, vip=vip)))
                for n, i in (('cp-01', 71), ('cp-02', 72), ('cp-03', 73)))


def test_parse_moves_needs_a_prefix_and_names_every_bad_input():
    with pytest.raises(ip.PlanInputError) as err:
        ip.parse_moves([{'name': 'cp-01', 'address': '192.168.1.253'},
                        {'name': 'cp-02', 'address': '192.168.1.252/24', 'gateway': 'nope'},
                        {'address': '192.168.1.9/24'}])
    msg = str(err.value)
    assert 'with its prefix length' in msg and "gateway 'nope'" in msg and 'needs name and address' in msg
    moves = ip.parse_moves([{'name': 'cp-01', 'address': '192.168.1.253/24'}])
    assert moves[0]['ip'] == '192.168.1.253' and moves[0]['kubernetes_address'] == '192.168.1.253'


def test_seed_move_legacy_shape_patches_address_routes_vip_and_certsans_then_nothing_on_rerun():
    configs = three()
    moves = ip.parse_moves([{'name': 'cp-01', 'address': '192.168.1.253/24'}])
    plan = ip.plan_migration(facts(configs), moves, vip='192.168.1.250')
    assert plan['refused'] == []
    # VIP/certSAN-only steps first, the move last
    assert [s['name'] for s in plan['steps']] == ['cp-02', 'cp-03', 'cp-01']
    step = plan['steps'][-1]
    assert step['moves'] and step['address_after'] == '192.168.1.253' and step['peer_url_after'] == \
        'https://192.168.1.253:2380'
    after = tp.apply_patches(configs['cp-01'][1], step['patches'])
    iface = after[0]['machine']['network']['interfaces'][0]
    assert iface['addresses'] == ['192.168.1.253/24'] and iface['vip'] == {'ip': '192.168.1.250'}
    assert iface['routes'] == configs['cp-01'][1][0]['machine']['network']['interfaces'][0]['routes']
    assert iface['dhcp'] is False
    assert after[0]['machine']['certSANs'] == ['192.168.1.253', '192.168.1.250']
    assert after[0]['cluster']['apiServer']['certSANs'] == ['192.168.1.253', '192.168.1.250']
    assert after[0]['cluster']['controlPlane'] == {'endpoint': 'https://192.168.1.250:6443'}   # never touched
    assert after[1] == configs['cp-01'][1][1]
    # the reverse patch gives the original back
    assert tp.apply_patches(after, step['reverse_patches']) == configs['cp-01'][1]
    assert plan['endpoints_after'] == ['192.168.1.253', '192.168.1.72', '192.168.1.73']

    # the rerun: every node where it should be
    moved = {}
    for s in plan['steps']:
        moved[s['name']] = (s['address_after'], tp.apply_patches(configs[s['name']][1], s['patches']))
    again = ip.plan_migration(facts(moved), moves, vip='192.168.1.250')
    assert again['refused'] == [] and again['pending'] == [] and not again['changed']
    assert all(s['patches'] == [] for s in again['steps'])


def test_moving_back_drops_the_released_address_from_the_certsans():
    configs = {
        'cp-01': ('192.168.1.253', legacy_config('cp-01', '192.168.1.253/24', vip='192.168.1.250',
                                                 sans=['192.168.1.71', '192.168.1.253', '192.168.1.250'])),
        'cp-02': ('192.168.1.72', legacy_config('cp-02', '192.168.1.72/24', vip='192.168.1.250')),
        'cp-03': ('192.168.1.73', legacy_config('cp-03', '192.168.1.73/24', vip='192.168.1.250'))}
    plan = ip.plan_migration(facts(configs), ip.parse_moves([{'name': 'cp-01', 'address': '192.168.1.71/24'}]))
    assert plan['refused'] == []
    step = next(s for s in plan['steps'] if s['name'] == 'cp-01')
    after = tp.apply_patches(configs['cp-01'][1], step['patches'])
    assert after[0]['machine']['certSANs'] == ['192.168.1.71', '192.168.1.250']
    assert tp.apply_patches(after, step['reverse_patches']) == configs['cp-01'][1]


def test_link_config_shape_uses_linkconfig_and_layer2vipconfig_and_moves_the_vip():
    configs = three(link_config, vip='192.168.1.250')
    moves = ip.parse_moves([{'name': 'cp-02', 'address': '192.168.1.250/24'}])   # takes the old VIP
    plan = ip.plan_migration(facts(configs), moves, vip='192.168.1.240')
    assert plan['refused'] == [] and plan['vip']['move'] is True
    assert [s['name'] for s in plan['steps']][-1] == 'cp-02' and plan['steps'][-1]['takes_old_vip']
    step = plan['steps'][-1]
    after = tp.apply_patches(configs['cp-02'][1], step['patches'])
    link = next(d for d in after if d.get('kind') == 'LinkConfig')
    assert link['addresses'] == [{'address': '192.168.1.250/24'}] and link['up'] is True
    assert link['routes'] == [{'destination': '0.0.0.0/0', 'gateway': '192.168.1.1'}]
    vips = [d['name'] for d in after if d.get('kind') == 'Layer2VIPConfig']
    assert vips == ['192.168.1.240']
    assert after[0]['cluster']['apiServer']['certSANs'] == ['api.example.org', '192.168.1.250', '192.168.1.240']
    assert 'interfaces' not in after[0]['machine']['network']
    assert tp.apply_patches(after, step['reverse_patches']) == configs['cp-02'][1]


def test_new_subnet_needs_a_gateway_inside_it():
    configs = three()
    moves = ip.parse_moves([{'name': 'cp-01', 'address': '10.20.0.11/24'}])
    plan = ip.plan_migration(facts(configs), moves, vip='10.20.0.250')
    assert any('gateway is outside the new subnet 10.20.0.0/24' in r for r in plan['refused'])
    moves = ip.parse_moves([{'name': 'cp-01', 'address': '10.20.0.11/24', 'gateway': '10.20.0.1'}])
    plan = ip.plan_migration(facts(configs), moves, vip='10.20.0.250')
    # the static route via 192.168.1.2 cannot stay either
    assert any('10.10.0.0/16 via 192.168.1.2' in r for r in plan['refused'])
    # and the VIP must share every control plane's subnet
    assert any('VIP 10.20.0.250 is outside the subnet 192.168.1.0/24' in r for r in plan['refused'])


@pytest.mark.parametrize('change, reason', [
    (dict(quorum=False), 'etcd has no quorum'),
    (dict(healthy={'cp-03': False}), 'etcd member(s) not healthy: cp-03'),
    (dict(ready={'cp-02': False}), 'control plane(s) not Ready: cp-02'),
])
def test_preflight_refuses_an_unhealthy_cluster(change, reason):
    plan = ip.plan_migration(facts(three(), **change),
                             ip.parse_moves([{'name': 'cp-01', 'address': '192.168.1.253/24'}]), vip='192.168.1.250')
    assert any(r.startswith(reason) for r in plan['refused']), plan['refused']


@pytest.mark.parametrize('moves, vip, reason', [
    ([{'name': 'cp-01', 'address': '192.168.1.72/24'}], '192.168.1.250', 'cp-01: 192.168.1.72 is in use by cp-02'),
    ([{'name': 'cp-01', 'address': '192.168.1.81/24'}], '192.168.1.250', 'in use by worker-new-01'),
    ([{'name': 'cp-01', 'address': '192.168.1.250/24'}], '192.168.1.250', 'cp-01: 192.168.1.250 is the VIP'),
    ([{'name': 'cp-01', 'address': '192.168.1.253/24'}, {'name': 'cp-02', 'address': '192.168.1.253/24'}],
     '192.168.1.250', 'also planned for cp-01'),
    ([{'name': 'cp-01', 'address': '192.168.1.255/24'}], '192.168.1.250', 'broadcast address'),
    ([{'name': 'cp-09', 'address': '192.168.1.253/24'}], '192.168.1.250', 'cp-09 is not a control plane'),
    ([{'name': 'cp-01', 'address': '192.168.1.253/24'}], None, 'no VIP configured'),
    ([{'name': 'cp-01', 'address': '192.168.1.253/24'}], '192.168.1.81', 'VIP 192.168.1.81 is in use by worker-new-01'),
])
def test_preflight_refuses_addresses_in_use_outside_the_subnet_or_without_a_vip(moves, vip, reason):
    worker = {'name': 'worker-new-01', 'control_plane': False, 'ready': True, 'internal_ip': '192.168.1.81'}
    plan = ip.plan_migration(facts(three(), extra_nodes=[worker]), ip.parse_moves(moves), vip=vip)
    assert any(reason in r for r in plan['refused']), plan['refused']


def test_the_current_vip_is_refused_as_a_node_address_unless_the_vip_moves():
    configs = three(vip='192.168.1.250')
    moves = ip.parse_moves([{'name': 'cp-01', 'address': '192.168.1.250/24'}])
    plan = ip.plan_migration(facts(configs), moves)
    assert any('is the current VIP' in r for r in plan['refused'])
    plan = ip.plan_migration(facts(configs), moves, vip='192.168.1.249')
    assert plan['refused'] == []


def test_a_configured_vip_is_enough_and_talos_endpoints_keep_a_non_default_port():
    configs = three(vip='192.168.1.250')
    plan = ip.plan_migration(facts(configs), ip.parse_moves([{'name': 'cp-03', 'address': '192.168.1.243/24'}]),
                             port=51000)
    assert plan['refused'] == [] and plan['vip']['after'] == '192.168.1.250'
    assert plan['endpoints_after'] == ['192.168.1.71:51000', '192.168.1.72:51000', '192.168.1.243:51000']
    assert '192.168.1.250' not in ''.join(plan['endpoints_after'])


def test_verify_names_what_is_left():
    configs = three()
    moves = ip.parse_moves([{'name': 'cp-01', 'address': '192.168.1.253/24'}])
    plan = ip.plan_migration(facts(configs), moves, vip='192.168.1.250')
    f = facts(configs)
    f['kubernetes'].update(endpoints=['192.168.1.71', '192.168.1.72', '192.168.1.73'],
                           slice_addresses=['192.168.1.253', '192.168.1.72', '192.168.1.73'],
                           coredns={'ready': False, 'ready_pods': 0, 'want': 2}, kube_proxy={'ready': True})
    problems = ip.verify_migration(f, plan, ['192.168.1.253', '192.168.1.72', '192.168.1.73'])
    assert any('not migrated yet' in p for p in problems)
    assert any(p.startswith('Endpoints default/kubernetes') for p in problems)
    assert not any(p.startswith('EndpointSlice') for p in problems)
    assert any(p.startswith('coredns is not ready') for p in problems)


def test_planning_never_mutates_the_facts():
    configs = three()
    f = facts(configs)
    before = copy.deepcopy(f)
    ip.plan_migration(f, ip.parse_moves([{'name': 'cp-01', 'address': '192.168.1.253/24'}]), vip='192.168.1.250')
    assert yaml.safe_dump(f) == yaml.safe_dump(before)


def test_a_control_plane_whose_config_cannot_be_read_is_refused_not_planned():
    f = facts(three(), healthy={'cp-03': False})
    f['control_planes'][2]['docs'] = None
    plan = ip.plan_migration(f, ip.parse_moves([{'name': 'cp-01', 'address': '192.168.1.253/24'}]),
                             vip='192.168.1.250')
    assert 'cannot read the machine config of cp-03 through the Talos API' in plan['refused']
    assert [s['name'] for s in plan['steps']] == ['cp-02', 'cp-01'] and plan['positions']['cp-03'] == '192.168.1.73'


def _inner_deletes(value, path=(), in_item=False):
    """Paths of `$patch: delete` on a key inside a list item (Talos rejects those)."""
    found = []
    if isinstance(value, dict):
        if value.get('$patch') == 'delete' and in_item and path and not path[-1].startswith('['):
            found.append('.'.join(path))
        for k, v in value.items():
            found += _inner_deletes(v, path + (str(k),), in_item)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += _inner_deletes(v, path + ('[%d]' % i,), True)
    return found


def test_legacy_patches_are_ones_talos_accepts_no_inner_key_delete_in_a_list_item():
    """Issue 14 point 2: the plan used `interfaces: [{interface: eth0, addresses: {$patch: delete}}]`."""
    configs = three(vip='192.168.1.250')
    moves = ip.parse_moves([{'name': 'cp-01', 'address': '192.168.1.253/24'}])
    plan = ip.plan_migration(facts(configs), moves, vip='192.168.1.250')
    step = plan['steps'][-1]
    for patch in step['patches'] + step['reverse_patches']:
        assert _inner_deletes(patch) == [], patch
    with pytest.raises(Exception, match='cannot delete an inner key'):
        tp.apply_patches(configs['cp-01'][1], [{'machine': {'network': {'interfaces': [
            {'interface': 'eth0', 'addresses': {'$patch': 'delete'}}]}}}])
    after = tp.apply_patches(configs['cp-01'][1], step['patches'])
    assert after[0]['machine']['network']['interfaces'] == [
        {'interface': 'eth0', 'dhcp': False, 'addresses': ['192.168.1.253/24'],
         'routes': configs['cp-01'][1][0]['machine']['network']['interfaces'][0]['routes'],
         'vip': {'ip': '192.168.1.250'}}]
    assert tp.apply_patches(after, step['reverse_patches']) == configs['cp-01'][1]
