"""plan_force_detach and check_fence as pure functions on fixture objects."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.force_detach import (
    APPLIED_AT, APPLIED_BY, OOS_TAINT_KEY, check_fence, cleanup_remaining, plan_force_detach, stale_ready_threshold,
)
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.force_detach.plan import PREDICTED_NOT_A_PROOF

from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.objects import parse_time

import k8s_fixtures as fx


def params(**kw):
    out = {'node': fx.DEAD, 'state': 'present', 'strategy': 'out_of_service', 'fence': fx.fence(),
           'assume_fenced': False, 'actor': 'tester', 'now': '2026-01-25T21:00:00Z'}
    out.update(kw)
    return out


def seed(**kw):
    return fx.observed_from(fx.seed_objects(**kw))


# -- the fence proof ---------------------------------------------------------------------------------

def test_fence_matching_uuid_case_insensitive():
    node = fx.node(fx.DEAD, ready='Unknown', uuid=fx.UUID_DEAD)
    ok, info, reasons = check_fence(node, fx.fence(uuid=fx.UUID_DEAD.lower()), False)
    assert ok and info['verified'] and not info['assumed'] and reasons == []


@pytest.mark.parametrize('proof, needle', [
    (fx.fence(uuid=fx.UUID_ALIVE), 'but node worker-new-03 has systemUUID'),
    (fx.fence(fenced=False), 'fenced=true'),
    (fx.fence(power_state_after='running'), 'power_state_after'),
    (fx.fence(failed=True, msg='task failed'), 'the fence task failed'),
    (fx.fence(uuid=None), 'no smbios_uuid'),
    ('yes', 'must be the registered result'),
])
def test_fence_contradicting_proof_refused(proof, needle):
    node = fx.node(fx.DEAD, ready='Unknown', uuid=fx.UUID_DEAD)
    ok, info, reasons = check_fence(node, proof, False)
    assert not ok and not info['verified']
    assert any(needle in r for r in reasons), reasons
    # assume_fenced never overrides a proof that contradicts
    ok2 = check_fence(node, proof, True)[0]
    assert not ok2


def test_fence_missing_refused_unless_assumed():
    node = fx.node(fx.DEAD, ready='Unknown', uuid=fx.UUID_DEAD)
    ok, info, reasons = check_fence(node, None, False)
    assert not ok and 'no fence proof' in reasons[0]
    ok, info, reasons = check_fence(node, None, True)
    assert ok and info['assumed'] and not info['verified']


def test_fence_node_without_system_uuid_refused():
    node = fx.node(fx.DEAD, ready='Unknown', uuid='')
    ok, dummy, reasons = check_fence(node, fx.fence(), False)
    assert not ok and any('systemUUID' in r for r in reasons)


def predicted(**kw):
    """What proxmox_fence returns in check mode for the running VM a real run would stop."""
    return fx.fence(fenced=False, predicted=True, would_fence=True, power_state_after='stopped', **kw)


def test_predicted_proof_is_refused_outside_check_mode_even_with_assume_fenced():
    node = fx.node(fx.DEAD, ready='Unknown', uuid=fx.UUID_DEAD)
    for assume in (False, True):
        ok, info, reasons = check_fence(node, predicted(), assume)
        assert not ok and not info['verified'] and info['predicted'] is True
        assert reasons[0] == PREDICTED_NOT_A_PROOF
    plan = plan_force_detach(seed(), params(fence=predicted()))
    assert PREDICTED_NOT_A_PROOF in plan['refused'] and not plan['changed']
    plan = plan_force_detach(seed(), params(fence=predicted(), assume_fenced=True))
    assert PREDICTED_NOT_A_PROOF in plan['refused'] and not plan['changed']


def test_predicted_proof_plans_in_check_mode():
    node = fx.node(fx.DEAD, ready='Unknown', uuid=fx.UUID_DEAD)
    ok, info, reasons = check_fence(node, predicted(), False, check_mode=True)
    assert ok and reasons == []
    assert info['predicted'] is True and info['verified'] is False and info['assumed'] is False
    plan = plan_force_detach(seed(), params(fence=predicted(), check_mode=True))
    assert plan['refused'] == [] and plan['changed'] and plan['actions']
    assert plan['fence']['predicted'] is True and plan['fence']['assumed'] is False
    assert any('is predicted' in w and 'real proof' in w for w in plan['warnings']), plan['warnings']
    assert not any('ASSUMED FENCED' in w for w in plan['warnings'])
    # It is judged like the real proof it stands for: what a real run would refuse is a check-mode warning.
    plan = plan_force_detach(seed(), params(fence=predicted(uuid=fx.UUID_ALIVE), check_mode=True))
    assert plan['refused'] == []
    assert any(w.startswith('check mode: the fence proof is for SMBIOS UUID') for w in plan['warnings'])


def test_predicted_proof_never_proves_a_stale_ready():
    """Only a verified proof (a real reading of the VM stopped) corroborates a silent lease; a predicted one does
    not, in check mode either."""
    obs = ready_observed('2026-01-25T20:41:00Z')
    plan = plan_force_detach(obs, params(fence=predicted(), check_mode=True))
    assert any('is Ready' in r for r in plan['refused']) and plan.get('ready_stale') is None


def test_a_real_proof_is_judged_the_same_in_and_out_of_check_mode():
    node = fx.node(fx.DEAD, ready='Unknown', uuid=fx.UUID_DEAD)
    for proof in (fx.fence(), fx.fence(predicted=False)):
        for check_mode in (False, True):
            ok, info, reasons = check_fence(node, proof, False, check_mode=check_mode)
            assert ok and info['verified'] is True and info['predicted'] is False and reasons == []
    # a real proof that says fenced=false stays refused in check mode (only a predicted one stands in)
    ok, info, reasons = check_fence(node, fx.fence(fenced=False), False, check_mode=True)
    assert not ok and any('fenced=true' in r for r in reasons)
    plan = plan_force_detach(seed(), params(check_mode=True))
    assert plan['refused'] == [] and plan['fence']['verified'] is True
    assert not any('predicted' in w for w in plan['warnings'])


# -- the ONE RULE in the plan --------------------------------------------------------------------------

def test_ready_node_refused_even_with_proof():
    plan = plan_force_detach(seed(dead_ready='True'), params())
    assert plan['actions'] == [] and not plan['changed']
    assert any('is Ready' in r for r in plan['refused'])


def ready_observed(now):
    """worker-new-03 still reads Ready; its kubelet last renewed its lease at 20:40:00 (cluster clock)."""
    obs = seed(dead_ready='True')
    obs['now'] = None if now is None else parse_time(now)
    return obs


def test_stale_ready_with_verified_proof_and_silent_lease_is_freed_directly():
    plan = plan_force_detach(ready_observed('2026-01-25T20:40:30Z'), params())
    assert plan['refused'] == [] and plan['actions']
    assert plan['ready_stale'] == {'lease_silent_seconds': 29.9, 'threshold_seconds': 12.4}
    # Pod GC only acts on NotReady nodes: the out-of-service path would wait, so the direct steps are used.
    assert plan['strategy'] == 'direct' and plan['strategy_requested'] == 'out_of_service'
    assert any('Ready condition is stale' in w for w in plan['warnings'])


@pytest.mark.parametrize('strategy', ['out_of_service', 'direct'])
def test_stale_ready_taints_then_takes_the_direct_steps(strategy):
    """A node that still reads Ready is still schedulable: the taint comes first, then the direct steps, whichever
    strategy was asked for; a taint already there is kept (not added twice)."""
    plan = plan_force_detach(ready_observed('2026-01-25T20:40:30Z'), params(strategy=strategy))
    direct = plan_force_detach(seed(), params(strategy='direct'))['actions']
    assert [a['action'] for a in plan['actions']] == ['taint_node'] + [a['action'] for a in direct]
    assert plan['actions'][1:] == direct and plan['taint_action'] == 'add' and plan['changed']
    assert plan['annotations'] == {APPLIED_BY: 'tester', APPLIED_AT: '2026-01-25T21:00:00Z'}
    obs = ready_observed('2026-01-25T20:40:30Z')
    obs['node']['spec']['taints'].append({'key': OOS_TAINT_KEY, 'value': 'nodeshutdown', 'effect': 'NoExecute'})
    kept = plan_force_detach(obs, params(strategy=strategy))
    assert kept['taint_action'] == 'keep' and kept['annotations'] == {}
    assert [a['action'] for a in kept['actions']] == [a['action'] for a in direct]


def test_out_of_service_only_taints_and_direct_never_does():
    oos = plan_force_detach(seed(), params())
    assert [a['action'] for a in oos['actions']] == ['taint_node'] and oos['taint_action'] == 'add'
    direct = plan_force_detach(seed(), params(strategy='direct'))
    assert 'taint_node' not in [a['action'] for a in direct['actions']] and direct['taint_action'] == 'none'
    assert direct['taint']['key'] == OOS_TAINT_KEY


@pytest.mark.parametrize('now, kw, needle', [
    ('2026-01-25T20:40:10Z', {}, 'renewed its lease 10s ago'),               # kubelet still heartbeating
    (None, {}, 'is Ready: it is running'),                                  # the server's time is unknown
    ('2026-01-25T20:50:00Z', {'fence': None, 'assume_fenced': True}, 'is Ready'),   # no proof at all
    ('2026-01-25T20:50:00Z', {'fence': fx.fence(uuid=fx.UUID_ALIVE)}, 'is Ready'),  # proof of another VM
])
def test_ready_node_refused_without_proof_and_silence(now, kw, needle):
    plan = plan_force_detach(ready_observed(now), params(**kw))
    assert plan['actions'] == [] and any(needle in r for r in plan['refused']), plan['refused']
    assert 'ready_stale' not in plan


def test_stale_ready_threshold_is_a_parameter():
    assert plan_force_detach(ready_observed('2026-01-25T20:40:30Z'), params(stale_ready_after=60))['refused']


def test_stale_ready_threshold_derives_from_the_nodes_lease():
    # one renew interval of a 40 s lease (10 s, +4 % jitter) plus 2 s for a renewal in flight
    assert stale_ready_threshold({'spec': {'leaseDurationSeconds': 40}}) == 12.4
    assert stale_ready_threshold({'spec': {'leaseDurationSeconds': 80}}) == 22.8
    assert stale_ready_threshold(None) == 12.4 and stale_ready_threshold({'spec': {}}) == 12.4
    assert stale_ready_threshold({'spec': {'leaseDurationSeconds': 40}}, 30) == 30.0
    # a missed renewal (13 s silent) with the verified proof: freed; 11 s silent: a renewal may still come
    plan = plan_force_detach(ready_observed('2026-01-25T20:40:13.2Z'), params())
    assert plan['refused'] == [] and plan['ready_stale']['threshold_seconds'] == 12.4
    assert plan_force_detach(ready_observed('2026-01-25T20:40:11Z'), params())['refused']
    # a node whose kubelet runs a longer lease gets a longer threshold
    obs = ready_observed('2026-01-25T20:40:13.2Z')
    obs['lease']['spec']['leaseDurationSeconds'] = 80
    assert plan_force_detach(obs, params())['refused']
    # without the verified proof, silence alone never frees a Ready node
    assert plan_force_detach(ready_observed('2026-01-25T20:45:00Z'), params(fence=None, assume_fenced=True))['refused']


def test_ready_node_refused_with_assume_fenced():
    plan = plan_force_detach(seed(dead_ready='True'), params(fence=None, assume_fenced=True))
    assert plan['actions'] == [] and plan['refused']
    # Nothing is freed, so nothing is assumed fenced: no ASSUMED FENCED warning for a refused node.
    assert not any('ASSUMED FENCED' in w for w in plan['warnings'])


def test_kubelet_renewing_again_refused_whatever_the_proof():
    # fenced, but the VM was started again (an HA manager, a human): the kubelet renewed its lease after
    # the node went NotReady, before the node controller noticed
    objs = fx.seed_objects()
    objs[1] = ('leases', fx.lease(fx.DEAD, '2026-01-25T20:41:30.000001Z'))
    plan = plan_force_detach(fx.observed_from(objs), params())
    assert plan['actions'] == []
    assert any('renewed its lease (2026-01-25T20:41:30Z) after the node went Unknown' in r for r in plan['refused'])
    plan = plan_force_detach(fx.observed_from(objs), params(fence=None, assume_fenced=True, strategy='direct'))
    assert plan['actions'] == [] and plan['refused']


def test_stale_lease_or_no_lease_is_fine():
    objs = [o for o in fx.seed_objects() if o[0] != 'leases']
    assert plan_force_detach(fx.observed_from(objs), params())['refused'] == []
    assert plan_force_detach(seed(), params())['refused'] == []


def test_missing_node_refused():
    plan = plan_force_detach(fx.observed_from(fx.seed_objects(), node_name='nope'), params(node='nope'))
    assert plan['refused'] == ['node nope does not exist']


def test_mismatched_proof_no_actions():
    plan = plan_force_detach(seed(), params(fence=fx.fence(uuid=fx.UUID_ALIVE)))
    assert plan['refused'] and plan['actions'] == []


def test_assumed_fenced_is_loud():
    plan = plan_force_detach(seed(), params(fence=None, assume_fenced=True))
    assert not plan['refused']
    assert plan['fence']['assumed'] is True
    assert any('ASSUMED FENCED' in w for w in plan['warnings'])


# -- out_of_service --------------------------------------------------------------------------------------

def test_out_of_service_plan_adds_taint_with_annotations():
    plan = plan_force_detach(seed(), params())
    assert plan['refused'] == []
    assert plan['taint_action'] == 'add'
    assert plan['actions'] == [{'action': 'taint_node', 'node': fx.DEAD,
                                'taint': {'key': OOS_TAINT_KEY, 'value': 'nodeshutdown', 'effect': 'NoExecute'},
                                'annotations': {APPLIED_BY: 'tester', APPLIED_AT: '2026-01-25T21:00:00Z'}}]
    assert plan['changed'] is True
    # the objects Kubernetes is expected to clean up are listed in the plan
    assert [p['name'] for p in plan['pods']] == ['db-0', 'traefik-79fcb6d7fd-pwp9v']
    assert [v['name'] for v in plan['volume_attachments']] == ['csi-aaa', 'csi-bbb']
    assert [(t['volume'], t['ticket']) for t in plan['longhorn_tickets']] == [('pvc-db', 'csi-bbb'),
                                                                              ('pvc-traefik', 'csi-aaa')]


def test_out_of_service_plan_leaves_volumes_in_use_to_kubernetes():
    plan = plan_force_detach(seed(), params())
    assert 'clear_volumes_in_use' not in [a['action'] for a in plan['actions']]


def test_out_of_service_already_tainted_no_action():
    objs = fx.seed_objects()
    node = objs[0][1]
    node['spec']['taints'].append({'key': OOS_TAINT_KEY, 'value': 'nodeshutdown', 'effect': 'NoExecute'})
    plan = plan_force_detach(fx.observed_from(objs), params())
    assert plan['taint_action'] == 'keep' and plan['actions'] == [] and plan['changed'] is False


# -- direct ----------------------------------------------------------------------------------------------

def test_direct_plan_order_and_filters():
    plan = plan_force_detach(seed(), params(strategy='direct'))
    kinds = [a['action'] for a in plan['actions']]
    # the tickets' VolumeAttachments still exist: the driver removes those tickets when it releases them
    # Longhorn's order (handlePodDeletionIfNodeDown): VolumeAttachments first, the pods last
    assert kinds == ['delete_volume_attachment', 'delete_volume_attachment', 'clear_volumes_in_use',
                     'force_delete_pod', 'force_delete_pod']
    assert plan['actions'][2] == {'action': 'clear_volumes_in_use', 'node': fx.DEAD,
                                  'remove': ['kubernetes.io/csi/driver.longhorn.io^pvc-db',
                                             'kubernetes.io/csi/driver.longhorn.io^pvc-traefik']}
    assert [t['stale'] for t in plan['longhorn_tickets']] == [False, False]
    # the live DaemonSet pod stays (it would only come back on the same node); VA on the live node untouched
    assert 'kube-proxy-abcde' not in [a.get('name') for a in plan['actions']]
    assert 'csi-ccc' not in [a.get('name') for a in plan['actions']]
    assert plan['taint_action'] == 'none'


def test_direct_plan_removes_only_stale_tickets():
    objs = [o for o in fx.seed_objects() if not (o[0] == 'volumeattachments' and o[1]['metadata']['name'] == 'csi-bbb')]
    plan = plan_force_detach(fx.observed_from(objs), params(strategy='direct'))
    removals = [(a['volume'], a['ticket']) for a in plan['actions'] if a['action'] == 'remove_longhorn_ticket']
    # csi-bbb's VA is gone: its ticket is stale; the longhorn-api ticket of the other node is never touched
    assert removals == [('pvc-db', 'csi-bbb')]
    assert {'action': 'remove_longhorn_ticket', 'attachment': 'pvc-db', 'volume': 'pvc-db',
            'ticket': 'csi-bbb'} in plan['actions']
    assert plan['actions'][-1]['action'] == 'force_delete_pod'   # the pods come last


def test_direct_plan_skips_deleting_va_but_lists_it():
    objs = fx.seed_objects()
    for res, obj in objs:
        if res == 'volumeattachments' and obj['metadata']['name'] == 'csi-aaa':
            obj['metadata']['deletionTimestamp'] = '2026-01-25T20:50:00Z'
    plan = plan_force_detach(fx.observed_from(objs), params(strategy='direct'))
    assert [v['name'] for v in plan['volume_attachments'] if v['deleting']] == ['csi-aaa']
    assert [a['name'] for a in plan['actions'] if a['action'] == 'delete_volume_attachment'] == ['csi-bbb']


def test_scope_by_pvc_limits_everything():
    plan = plan_force_detach(seed(), params(strategy='direct', pvcs=['traefik/traefik-data']))
    assert [p['name'] for p in plan['pods']] == ['traefik-79fcb6d7fd-pwp9v']
    assert [v['name'] for v in plan['volume_attachments']] == ['csi-aaa']
    assert [t['ticket'] for t in plan['longhorn_tickets']] == ['csi-aaa']
    assert [v['pv'] for v in plan['volumes']] == ['pvc-traefik']
    assert plan['workloads'] == [{'kind': 'Deployment', 'namespace': 'traefik', 'name': 'traefik'}]
    # only the in-scope volume is cleared from the node's volumesInUse
    assert plan['volumes_in_use'] == ['kubernetes.io/csi/driver.longhorn.io^pvc-traefik']


def test_scope_by_volume_handle_and_unknown_warns():
    plan = plan_force_detach(seed(), params(strategy='direct', volumes=['pvc-db', 'ghost']))
    assert [v['pv'] for v in plan['volumes']] == ['pvc-db']
    assert any('volume ghost matches no PersistentVolume' in w for w in plan['warnings'])


def test_workloads_resolved_through_replicaset():
    plan = plan_force_detach(seed(), params())
    assert plan['workloads'] == [{'kind': 'Deployment', 'namespace': 'traefik', 'name': 'traefik'},
                                 {'kind': 'StatefulSet', 'namespace': 'db', 'name': 'db'}]
    vols = dict((v['pv'], v) for v in plan['volumes'])
    assert vols['pvc-traefik']['pvc'] == 'traefik/traefik-data'
    assert vols['pvc-traefik']['longhorn_volume'] == 'pvc-traefik'


def test_without_longhorn_no_ticket_steps():
    plan = plan_force_detach(fx.observed_from(fx.seed_objects(longhorn=False), longhorn=False),
                             params(strategy='direct'))
    assert plan['longhorn'] is False
    assert plan['longhorn_tickets'] == []
    assert 'remove_longhorn_ticket' not in [a['action'] for a in plan['actions']]
    assert [v['longhorn_volume'] for v in plan['volumes']] == [None, None]


def test_unmanaged_pod_warned():
    objs = fx.seed_objects() + [('pods', fx.pod('default', 'bare', fx.DEAD))]
    plan = plan_force_detach(fx.observed_from(objs), params(strategy='direct'))
    assert 'default/bare' in plan['unmanaged_pods']
    assert any('default/bare has no controller' in w for w in plan['warnings'])


def test_plan_is_pure():
    observed = seed()
    before = copy.deepcopy(observed)
    p1 = plan_force_detach(observed, params(strategy='direct'))
    p2 = plan_force_detach(observed, params(strategy='direct'))
    assert observed == before and p1 == p2


def test_nothing_left_second_run_unchanged():
    objs = [o for o in fx.seed_objects() if o[0] not in ('volumeattachments', 'lh.volumeattachments')
            and not (o[0] == 'pods' and o[1]['spec']['nodeName'] == fx.DEAD and 'kube-proxy' not in
                     o[1]['metadata']['name'])]
    objs[0][1]['status']['volumesInUse'] = []
    plan = plan_force_detach(fx.observed_from(objs), params(strategy='direct'))
    assert plan['actions'] == [] and plan['changed'] is False


# -- absent ----------------------------------------------------------------------------------------------

def _tainted(objs):
    objs = copy.deepcopy(objs)
    objs[0][1]['spec']['taints'].append({'key': OOS_TAINT_KEY, 'value': 'nodeshutdown', 'effect': 'NoExecute'})
    return objs


def test_absent_refused_while_cleanup_pending_and_node_down():
    plan = plan_force_detach(fx.observed_from(_tainted(fx.seed_objects())), params(state='absent', fence=None))
    assert plan['refused'] and 'terminating pod' in plan['refused'][0] and 'csi-aaa' in plan['refused'][0]


def test_absent_removes_taint_when_node_ready_again():
    objs = _tainted(fx.seed_objects(dead_ready='True'))
    plan = plan_force_detach(fx.observed_from(objs), params(state='absent', fence=None))
    assert plan['refused'] == []
    assert [a['action'] for a in plan['actions']] == ['remove_taint'] and plan['changed']


def test_absent_no_taint_no_change():
    plan = plan_force_detach(seed(), params(state='absent', fence=None))
    assert plan['actions'] == [] and not plan['changed'] and not plan['refused']


def test_cleanup_remaining_counts():
    observed = seed()
    plan = plan_force_detach(observed, params())
    remaining = cleanup_remaining(observed, plan)
    assert remaining['pods'] == ['db/db-0', 'traefik/traefik-79fcb6d7fd-pwp9v']
    assert remaining['terminating_pods'] == ['db/db-0', 'traefik/traefik-79fcb6d7fd-pwp9v']
    assert remaining['volume_attachments'] == ['csi-aaa', 'csi-bbb']
    assert remaining['longhorn_tickets'] == ['pvc-db:csi-bbb', 'pvc-traefik:csi-aaa']


def test_check_mode_assume_fenced_shows_plan_for_a_planned_fence():
    planned = fx.fence(fenced=False, power_state_after='running')   # proxmox_fence in check mode
    plan = plan_force_detach(seed(), params(fence=planned, assume_fenced=True, check_mode=True))
    assert plan['refused'] == [] and plan['actions'] and plan['fence']['assumed'] is True
    assert any('a real run refuses this proof' in w for w in plan['warnings'])
    # outside check mode the same proof is refused, assume_fenced or not
    assert plan_force_detach(seed(), params(fence=planned, assume_fenced=True))['refused']
    # and check mode never overrides the node's own state
    assert plan_force_detach(seed(dead_ready='True'), params(fence=planned, assume_fenced=True,
                                                             check_mode=True))['refused']
