"""The drill's pure parts: the recorder's milestones on the cluster's clock, refusals, the pre-drill
comparison, target choice, the NIC link string and the report."""

from __future__ import annotations

from ansible_collections.tazlab.resilience.plugins.module_utils.drill import observe, report, run

T0 = 1_800_000_000.0


def ts(offset):
    return observe.iso(T0 + offset)


def node(ready=True, since=0, taints=()):
    return {'metadata': {'name': 'w3'}, 'spec': {'taints': list(taints)},
            'status': {'conditions': [{'type': 'Ready', 'status': 'True' if ready else 'Unknown',
                                       'lastTransitionTime': ts(since), 'reason': 'NodeStatusUnknown'}]}}


def pod(name, on, created=-100, ready_at=None, deleting_at=None, grace=60, waiting=None, init_waiting=None):
    p = {'metadata': {'name': name, 'namespace': 'traefik', 'labels': {'app': 'traefik'},
                      'creationTimestamp': ts(created)},
         'spec': {'nodeName': on}, 'status': {'phase': 'Pending'}}
    if ready_at is not None:
        p['status'] = {'phase': 'Running', 'conditions': [{'type': 'Ready', 'status': 'True',
                                                           'lastTransitionTime': ts(ready_at)}]}
    if deleting_at is not None:
        p['metadata']['deletionTimestamp'] = ts(deleting_at + grace)
        p['metadata']['deletionGracePeriodSeconds'] = grace
    if waiting:
        p['status']['containerStatuses'] = [{'state': {'waiting': {'reason': waiting}}}]
    if init_waiting:
        p['status']['initContainerStatuses'] = [{'state': {'waiting': {'reason': init_waiting}}}]
    return p


WORKLOAD = [{'namespace': 'traefik', 'kind': 'Deployment', 'name': 'traefik', 'selector': {'app': 'traefik'},
             'ready': 1}]
VA = {'metadata': {'name': 'csi-1'}, 'spec': {'nodeName': 'w3'}}


def recorder():
    initial = {'time': T0, 'node': node(), 'pods': [pod('old', 'w3', ready_at=-50)], 'events': [], 'vas': [VA]}
    return observe.Recorder('w3', T0, WORKLOAD, initial)


def kinds(rec):
    return [(e['kind'], e['t']) for e in rec.events]


def test_the_seed_timeline_without_recovery_is_blocked():
    rec = recorder()
    unreachable = {'key': 'node.kubernetes.io/unreachable', 'effect': 'NoExecute', 'timeAdded': ts(50)}
    rec.observe({'time': T0 + 60, 'node': node(False, 50, [unreachable]),
                 'pods': [pod('old', 'w3', ready_at=-50)], 'events': [], 'vas': [VA]})
    new = pod('new', 'w1', created=350, init_waiting='PodInitializing')
    event = {'involvedObject': {'namespace': 'traefik', 'name': 'new'}, 'reason': 'FailedAttachVolume',
             'message': 'Multi-Attach error for volume "pvc-1"', 'lastTimestamp': ts(352)}
    rec.observe({'time': T0 + 360, 'node': node(False, 50),
                 'pods': [pod('old', 'w3', ready_at=-50, deleting_at=350), new], 'events': [event], 'vas': [VA]})
    rec.observe({'time': T0 + 480, 'node': node(False, 50), 'pods': [new], 'events': [event], 'vas': [VA]})
    assert not rec.done()
    result = rec.result(timeout=480)
    assert result['outcome'] == 'blocked' and result['mttr'] == {'Deployment/traefik/traefik': None}
    assert kinds(rec) == [('node_not_ready', 50.0), ('taint', 50.0), ('pod_terminating', 350.0),
                          ('replacement_created', 350.0), ('multi_attach', 352.0), ('replacement_init', 360.0),
                          ('blocked', 480.0)]
    assert result['blocked']['Deployment/traefik/traefik'] == 'ContainerCreating (Multi-Attach error)'
    rows = report.seed_comparison(result['events'])
    assert [(r['seed_t'], r['drill_t']) for r in rows] == [(0, None), (60, 50.0), (300, 350.0), (480, 480.0)]


def test_the_recovery_timeline_fence_detach_running_and_mttr():
    rec = recorder()
    oos = {'key': 'node.kubernetes.io/out-of-service', 'effect': 'NoExecute', 'timeAdded': ts(10 ** 7)}
    rec.observe({'time': T0 + 20, 'node': node(True, -500, [oos]), 'pods': [pod('old', 'w3', ready_at=-50)],
                 'events': [], 'vas': [VA]})
    rec.observe({'time': T0 + 40, 'node': node(True, -500, [oos]),
                 'pods': [pod('new', 'w1', created=25, ready_at=38)], 'events': [], 'vas': []})
    assert not rec.done(), 'the node has not read NotReady yet'
    rec.observe({'time': T0 + 55, 'node': node(False, 50, [oos]),
                 'pods': [pod('new', 'w1', created=25, ready_at=38)], 'events': [], 'vas': []})
    assert rec.done()
    result = rec.result()
    assert result['outcome'] == 'recovered' and result['mttr'] == {'Deployment/traefik/traefik': 38.0}
    # a taint stamped on another clock (10**7 s later) is placed where it was seen, not in the future
    assert ('fenced', 20.0) in kinds(rec) and ('detached', 40.0) in kinds(rec) and ('running_again', 38.0) in kinds(rec)


def test_waiting_reasons_and_workload_owner():
    assert observe._waiting_reason(pod('p', 'w1', waiting='ContainerCreating')) == 'ContainerCreating'
    assert observe._waiting_reason(pod('p', 'w1', init_waiting='PodInitializing')) == 'Init:0/1'
    assert observe._waiting_reason(pod('p', 'w1')) == 'Pending'
    p = {'metadata': {'namespace': 'a', 'ownerReferences': [{'kind': 'ReplicaSet', 'name': 'web-1'}]}}
    rs = {'metadata': {'namespace': 'a', 'name': 'web-1', 'ownerReferences': [{'kind': 'Deployment', 'name': 'web'}]}}
    assert observe.workload_of(p, [rs]) == ('Deployment', 'web')
    assert observe.workload_of({'metadata': {'ownerReferences': [{'kind': 'StatefulSet', 'name': 'pg'}]}}, []) == \
        ('StatefulSet', 'pg')


def state(**over):
    base = {'nodes': {'cp1': {'ready': True, 'role': 'control-plane', 'unschedulable': False, 'taints': []},
                      'cp2': {'ready': True, 'role': 'control-plane', 'unschedulable': False, 'taints': []},
                      'cp3': {'ready': True, 'role': 'control-plane', 'unschedulable': False, 'taints': []},
                      'w1': {'ready': True, 'role': 'worker', 'unschedulable': False, 'taints': []},
                      'w3': {'ready': True, 'role': 'worker', 'unschedulable': False, 'taints': []}},
            'workloads': {'Deployment/traefik/traefik': {'replicas': 1, 'ready': 1}},
            'volumes': {'pvc-1': 'healthy'}, 'leases': {}}
    base.update(over)
    return base


def test_refusals():
    assert run.preflight_refusals(state(), ['w3']) == []
    assert 'a control plane' in run.preflight_refusals(state(), ['cp1'])[0]
    assert run.preflight_refusals(state(), ['cp1'], allow_control_plane=True) == []
    held = run.preflight_refusals(state(leases={'w3': 'tazlab-dr_recover'}), ['w3'])
    assert held == ['w3: another remediation holds its lease (tazlab-dr_recover)']
    assert 'remediation in progress on w1' in run.preflight_refusals(state(leases={'w1': 'x'}), ['w3'])[0]
    s = state()
    s['nodes']['w1']['ready'] = False
    assert 'already NotReady: w1' in run.preflight_refusals(s, ['w3'])[0]
    assert 'not healthy: pvc-1' in run.preflight_refusals(state(volumes={'pvc-1': 'degraded'}), ['w3'])[0]
    assert 'no such node' in run.preflight_refusals(state(), ['nope'])[0]
    two = state()
    del two['nodes']['cp3']
    assert any('quorum' in r for r in run.preflight_refusals(two, ['cp1'], allow_control_plane=True))


def test_compare_state_and_targets():
    before = state()
    assert run.compare_state(before, state()) == []
    after = state()
    after['nodes']['w3'] = {'ready': False, 'role': 'worker', 'unschedulable': True,
                            'taints': ['node.kubernetes.io/out-of-service']}
    after['workloads']['Deployment/traefik/traefik'] = {'replicas': 1, 'ready': 0}
    after['volumes']['pvc-1'] = 'degraded'
    after['leases'] = {'w3': 'tazlab-dr_drill'}
    assert run.compare_state(before, after) == [
        'node w3 is not Ready', 'node w3 is still cordoned',
        "node w3 still has taints ['node.kubernetes.io/out-of-service']",
        'Deployment/traefik/traefik: 0 ready replica(s), 1 before', 'Longhorn volume pvc-1 is degraded',
        'lease of w3 still held by tazlab-dr_drill']
    assert run.choose_targets(state(), ['w3'], all_workers=True) == ['w3', 'w1']
    assert run.link_down_config('virtio=AA:BB,bridge=vmbr0', True) == 'virtio=AA:BB,bridge=vmbr0,link_down=1'
    assert run.link_down_config('virtio=AA:BB,bridge=vmbr0,link_down=1', False) == 'virtio=AA:BB,bridge=vmbr0'


def test_report_markdown_and_a_deterministic_svg_side_by_side():
    rec = recorder()
    rec.observe({'time': T0 + 60, 'node': node(False, 50), 'pods': [pod('old', 'w3', ready_at=-50)],
                 'events': [], 'vas': [VA]})
    result = dict(rec.result(timeout=60), fault='power_off', mode='kubernetes', restore='back to the pre-drill state')
    md = report.render_markdown([result])
    assert '| T+0:50 | node NotReady |' in md and 'not back' in md and 'Next to the seed story' in md
    svg = report.render_svg(result)
    assert svg.startswith('<?xml') and 'Seed story, Phase 5' in svg and 'node NotReady' in svg
    assert report.render_svg(result) == svg
