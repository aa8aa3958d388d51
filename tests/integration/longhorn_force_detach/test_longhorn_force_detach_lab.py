"""csi_force_detach (formerly longhorn_force_detach, still routed to it) against the lab world: the seed incident end to end.

The world (Kubernetes twin + fakepve + Talos twins on one clock) runs in real time at TIME_SCALE real
seconds per simulated second. A worker is fenced with the real proxmox_fence module (its registered
result is the proof), the cluster is fast-forwarded into the seed incident (zombie pod Terminating,
replacement stuck ContainerCreating on a Multi-Attach error), then csi_force_detach runs for real
(in-process: AnsibleModule, the kubernetes client over HTTPS to the twin, TLS verified). Bounds given to
the module are real seconds; the assertions are in simulated seconds.
"""

from __future__ import annotations

import json
import time

import pytest

from ansible_collections.tazlab.resilience.plugins.modules import csi_force_detach

from k8s_lab import TRAEFIK, Lab, TIME_SCALE, ansible_adhoc, is_running, ready_since, real, run_module, sim

pytestmark = pytest.mark.lab_world(time_scale=TIME_SCALE)

OOS = 'node.kubernetes.io/out-of-service'


@pytest.fixture
def lab(lab_world):
    return Lab(lab_world)


def fence(lab, node, action='off'):
    """proxmox_fence by Kubernetes node name: the VM is matched by the node's systemUUID before any write."""
    failed, result = lab.fence(node, action=action)
    assert not failed, result
    assert result['identity_verified'] is True
    return result


def into_the_seed_incident(lab, node):
    """Power is gone (fenced); fast-forward past NotReady and the 300 s eviction: the zombie pod is
    Terminating on the dead node, its replacement ContainerCreating with the Multi-Attach error."""
    lab.wait(lambda: lab.node_ready(node) != 'True', 120, 'node NotReady')
    lab.handle.advance(330)
    pods = lab.pods('traefik', TRAEFIK)
    zombie = [p for p in pods if p['spec'].get('nodeName') == node]
    assert zombie and zombie[0]['metadata'].get('deletionTimestamp'), 'the seed zombie pod is not Terminating'
    stuck = [p for p in pods if p['spec'].get('nodeName') not in (None, node)]
    assert stuck and not is_running(stuck[0])
    multi = [e for e in lab.list('events', 'traefik') if e['reason'] == 'FailedAttachVolume'
             and e['involvedObject']['name'] == stuck[0]['metadata']['name']]
    assert multi and 'Multi-Attach error' in multi[0]['message']
    return zombie[0], stuck[0]


@pytest.mark.parametrize('strategy', ['out_of_service', 'direct'])
def test_seed_incident_traefik_back_within_60_simulated_seconds(lab, strategy):
    node = lab.traefik_node()
    proof = fence(lab, node)
    assert proof['fenced'] is True
    zombie, stuck = into_the_seed_incident(lab, node)
    pv = lab.get('persistentvolumeclaims', 'traefik', 'traefik')['spec']['volumeName']

    # check mode first: the exact plan, and not one write request
    before = lab.requests()
    failed, plan = run_module(csi_force_detach, lab.force_detach_args(node, proof, strategy=strategy), check_mode=True)
    assert not failed, plan
    assert lab.writes_since(before) == {}
    assert plan['changed'] is True and plan['fence']['verified'] is True
    assert zombie['metadata']['name'] in [p['name'] for p in plan['plan']['pods']]
    assert pv in [v['pv'] for v in plan['plan']['volume_attachments']]
    assert pv in [t['volume'] for t in plan['plan']['longhorn_tickets']]
    if strategy == 'out_of_service':
        assert [a['action'] for a in plan['plan']['actions']] == ['taint_node']
    else:
        actions = list(plan['plan']['actions'])
        assert {'force_delete_pod', 'clear_volumes_in_use', 'delete_volume_attachment'} == \
            set(a['action'] for a in actions)
        cleared = [a for a in actions if a['action'] == 'clear_volumes_in_use'][0]['remove']
        assert any(entry.endswith('^' + pv) for entry in cleared)
        assert zombie['metadata']['name'] in [a.get('name') for a in actions if a['action'] == 'force_delete_pod']
        # the ticket's VolumeAttachment exists: the driver releases the ticket with it (not stale)
        assert [t['stale'] for t in plan['plan']['longhorn_tickets'] if t['volume'] == pv] == [False]

    t0 = lab.now()
    started = time.monotonic()
    failed, result = run_module(csi_force_detach, lab.force_detach_args(node, proof, strategy=strategy))
    took_real = time.monotonic() - started
    assert not failed, result
    assert result['changed'] is True and result['assumed_fenced'] is False
    ver = result['verification']
    assert ver['ok'] is True
    volume = [v for v in ver['volumes'] if v['pv'] == pv][0]
    assert volume['ok'] and volume['node'] not in (None, node) and volume['robustness'] != 'faulted'
    workload = [w for w in ver['workloads'] if w['name'] == 'traefik'][0]
    assert workload['ok'] and workload['ready'] == 1

    running = lab.running_pods('traefik', TRAEFIK)
    assert len(running) == 1 and running[0]['spec']['nodeName'] not in (None, node)
    assert running[0]['spec']['nodeName'] == volume['node']
    came_back = ready_since(running[0]) - t0
    assert 0 < came_back <= 60, 'Traefik Running {0:.1f} simulated seconds after the module started'.format(came_back)
    assert sim(workload['ok_at']) <= 60
    lhva = lab.get('volumeattachments.longhorn.io', 'longhorn-system', pv)
    assert all(t['nodeID'] != node for t in lhva['spec']['attachmentTickets'].values())
    assert not [v for v in lab.list('volumeattachments.storage.k8s.io') if v['spec']['nodeName'] == node]
    assert result['finalizers_stripped'] == []
    if strategy == 'out_of_service':
        assert OOS in lab.taints(node)
        assert lab.get('nodes', None, node)['metadata']['annotations'][
            'node.kubernetes.io/out-of-service-applied-by'] == 'tazlab.resilience.longhorn_force_detach'
        assert [a['action'] for a in result['actions_done']] == ['taint_node']
        assert result['fallback'] == {'used': False}
    else:
        assert OOS not in lab.taints(node)
    for event in result['events']:
        print('   {0:6.1f} sim s  {1} {2}'.format(sim(event['t']), event['event'], event.get('target', '')))
    print('   checks', dict((k, v['at'] and round(sim(v['at']), 1)) for k, v in ver['checks'].items()))
    print('   volume', volume['pv'], 'ok at', round(sim(volume['ok_at']), 1))
    print('\n{0}: Traefik Running {1:.1f} simulated s after the module started (module {2:.2f} real s, '
          'verified {3:.1f} sim s)'.format(strategy, came_back, took_real, sim(ver['elapsed_s'])))

    # a second run changes nothing and writes nothing
    before = lab.requests()
    failed, again = run_module(csi_force_detach, lab.force_detach_args(node, proof, strategy=strategy))
    assert not failed and again['changed'] is False, again
    assert lab.writes_since(before) == {}

    if strategy == 'out_of_service':
        # cleanup complete: the taint goes before the VM comes back
        failed, untaint = run_module(csi_force_detach, dict(lab.k8s_auth(), node=node, state='absent'))
        assert not failed and untaint['changed'] is True
        assert OOS not in lab.taints(node)


@pytest.mark.parametrize('strategy', ['out_of_service', 'direct'])
def test_statefulset_pod_recovers(lab, strategy):
    pg = lab.get('pods', 'data', 'postgres-0')
    node = pg['spec']['nodeName']
    proof = fence(lab, node)
    lab.wait(lambda: lab.node_ready(node) != 'True', 120, 'node NotReady')
    lab.handle.advance(330)
    old = lab.get('pods', 'data', 'postgres-0')
    assert old['metadata']['uid'] == pg['metadata']['uid'] and old['metadata'].get('deletionTimestamp')
    # run once in check mode to have the client warm, as in the Traefik test
    run_module(csi_force_detach, lab.force_detach_args(node, proof, strategy=strategy), check_mode=True)
    t0 = lab.now()
    failed, result = run_module(csi_force_detach, lab.force_detach_args(node, proof, strategy=strategy))
    assert not failed, result
    sts = [w for w in result['verification']['workloads'] if w['kind'] == 'StatefulSet']
    assert sts and sts[0]['name'] == 'postgres' and sts[0]['ok'] and sts[0]['ready'] == 1
    new = lab.get('pods', 'data', 'postgres-0')
    assert new['metadata']['uid'] != pg['metadata']['uid']
    assert is_running(new) and new['spec']['nodeName'] != node
    assert ready_since(new) - t0 <= 60
    pvc = new['spec']['volumes'][0]['persistentVolumeClaim']['claimName']
    assert pvc == 'data-postgres-0'


def test_partitioned_but_running_node_is_refused(lab):
    node = lab.traefik_node()
    lab.handle.fault('partition', node)
    lab.wait(lambda: lab.node_ready(node) != 'True', 120, 'node NotReady')
    # Proxmox says the VM runs: proxmox_fence(action=status) is no proof
    proof = fence(lab, node, action='status')
    assert proof['fenced'] is False and proof['power_state_after'] == 'running'
    before = lab.requests()
    failed, result = run_module(csi_force_detach, lab.force_detach_args(node, proof))
    assert failed and result['changed'] is False
    assert any('fenced=true' in r for r in result['refused'])
    assert lab.writes_since(before) == {}
    assert OOS not in lab.taints(node)
    assert lab.running_pods('traefik', TRAEFIK) or lab.pods('traefik', TRAEFIK)[0]['spec']['nodeName'] == node


def test_ready_node_is_refused_even_with_a_proof(lab):
    node = lab.traefik_node()
    other = [n for n in ('worker-new-01', 'worker-new-02', 'worker-new-03', 'worker-new-04') if n != node][0]
    # a proof copied from another node's fence, pointed at a node that is up
    proof = dict(fence(lab, other), smbios_uuid=lab.get('nodes', None, node)['status']['nodeInfo']['systemUUID'])
    before = lab.requests()
    failed, result = run_module(csi_force_detach, lab.force_detach_args(node, proof, assume_fenced=True))
    assert failed and any('is Ready' in r for r in result['refused'])
    assert lab.writes_since(before) == {}


def test_missing_and_mismatched_proof_refused(lab):
    node = lab.traefik_node()
    others = [n for n in ('worker-new-01', 'worker-new-02', 'worker-new-03', 'worker-new-04') if n != node]
    proof = fence(lab, node)
    lab.wait(lambda: lab.node_ready(node) != 'True', 120, 'node NotReady')
    before = lab.requests()
    # no proof at all: refused before any API request
    failed, result = run_module(csi_force_detach, dict(lab.k8s_auth(), node=node))
    assert failed and 'no fence proof' in result['msg']
    # the proof of another VM (fenced, but a different SMBIOS UUID)
    other_proof = fence(lab, others[0])
    failed, result = run_module(csi_force_detach, lab.force_detach_args(node, other_proof))
    assert failed and any('systemUUID' in r for r in result['refused'])
    # a proof that says the VM is not off
    failed, result = run_module(csi_force_detach, lab.force_detach_args(node, dict(proof, fenced=False)))
    assert failed and result['refused']
    assert lab.writes_since(before) == {}
    assert OOS not in lab.taints(node)


def test_through_ansible_check_mode_and_run(lab, tmp_path):
    """Packaged by Ansible (AnsiballZ): check mode writes nothing, the run frees the volume. Check mode goes by the
    former name, longhorn_force_detach: meta/runtime.yml routes it to csi_force_detach."""
    node = lab.traefik_node()
    proof = fence(lab, node)
    into_the_seed_incident(lab, node)
    args = lab.force_detach_args(node, proof, wait_timeout=real(400))
    before = lab.requests()
    rc, status, result = ansible_adhoc(tmp_path, 'longhorn_force_detach', args, check=True, diff=True)
    assert rc == 0 and status == 'CHANGED', result
    assert lab.writes_since(before) == {}
    # --diff: the taint goes on, and Kubernetes then removes the node's pods and VolumeAttachments.
    dummy, checked = run_module(csi_force_detach, args, check_mode=True, diff=True)
    assert lab.writes_since(before) == {}
    diff = checked['diff']
    assert diff['before']['taints'] == [] and diff['after']['taints'] == ['node.kubernetes.io/out-of-service=nodeshutdown:NoExecute']
    assert any(p.startswith('traefik/') for p in diff['before']['pods']) and diff['after']['pods'] == []
    assert diff['before']['volume_attachments'] and diff['after']['volume_attachments'] == []
    rc, status, result = ansible_adhoc(tmp_path, 'csi_force_detach', args)
    assert rc == 0 and status == 'CHANGED', result
    assert result['verification']['ok'] is True
    assert len(lab.running_pods('traefik', TRAEFIK)) == 1
    assert 'client-key-data' not in json.dumps(result)


def test_out_of_service_stall_falls_back_to_direct_steps(lab):
    """A Traefik pod that tolerates the out-of-service taint (a toleration may be added to a running pod):
    the taint does not evict it and pod GC only removes pods already terminating, so Kubernetes makes no
    progress; the module notices the stall after stall_timeout and carries out the direct steps itself."""
    tolerations = [{'key': OOS, 'operator': 'Exists'}]

    def tolerate_node_taints():
        pod = [p for p in lab.store.list('pods', 'traefik') if not p['metadata'].get('deletionTimestamp')][0]
        pod['spec']['tolerations'] = list(pod['spec'].get('tolerations') or []) + tolerations
        lab.store.update('pods', pod)
    lab.on_loop(tolerate_node_taints)
    node = lab.traefik_node()
    proof = fence(lab, node)
    lab.wait(lambda: lab.node_ready(node) != 'True', 120, 'node NotReady')
    stuck = [p for p in lab.pods('traefik', TRAEFIK) if p['spec'].get('nodeName') == node]
    assert stuck and not stuck[0]['metadata'].get('deletionTimestamp')
    assert {'key': OOS, 'operator': 'Exists'} in stuck[0]['spec']['tolerations']
    run_module(csi_force_detach, lab.force_detach_args(node, proof), check_mode=True)
    t0 = lab.now()
    failed, result = run_module(csi_force_detach, lab.force_detach_args(node, proof, stall_timeout=real(20)))
    assert not failed, result
    assert result['fallback']['used'] is True
    assert sim(result['fallback']['after_s']) >= 20
    assert stuck[0]['metadata']['name'] in [a.get('name') for a in result['fallback']['actions']
                                            if a['action'] == 'force_delete_pod']
    assert result['verification']['ok'] is True
    running = lab.running_pods('traefik', TRAEFIK)
    assert len(running) == 1 and running[0]['spec']['nodeName'] != node
    print('\nfallback after {0:.1f} simulated s; Traefik Running {1:.1f} simulated s after the module started'.format(
        sim(result['fallback']['at']), ready_since(running[0]) - t0))


def test_stale_proof_after_the_vm_was_started_again_is_refused(lab):
    """The proof is genuine (fenced, UUID matches) but the VM was started again afterwards (an HA
    manager, a human): as soon as its kubelet renews its lease the node is not confirmed off any more."""
    from tazlab_lab.k8s.controllers.util import parse_ts
    node = lab.traefik_node()
    proof = fence(lab, node)
    lab.wait(lambda: lab.node_ready(node) != 'True', 120, 'node NotReady')
    lab.handle.fault('power-on', node)

    def kubelet_back():
        lease = lab.get('leases.coordination.k8s.io', 'kube-node-lease', node)
        ready = [c for c in lab.get('nodes', None, node)['status']['conditions'] if c['type'] == 'Ready'][0]
        return parse_ts(lease['spec']['renewTime']) > parse_ts(ready['lastTransitionTime'])
    lab.wait(kubelet_back, 300, 'kubelet renewing again')
    before = lab.requests()
    failed, result = run_module(csi_force_detach, lab.force_detach_args(node, proof))
    assert failed and result['changed'] is False
    assert any('renewed its lease' in r or 'is Ready' in r for r in result['refused']), result['refused']
    assert lab.writes_since(before) == {}
    assert OOS not in lab.taints(node)
    print('\nstale proof refused: {0}'.format(result['refused'][0]))


SLOW = 0.2  # real seconds per simulated second: the 50 s grace period lasts 10 real seconds, whatever the load


@pytest.mark.lab_world(time_scale=SLOW)
def test_freed_right_after_the_power_loss_while_the_node_still_reads_ready(lab):
    """The runbook case: the VM is seen stopped at once, before Kubernetes marks the node NotReady.

    A verified fence proof plus a kubelet lease that stopped renewing prove the Ready condition stale; the
    module waits for that silence (on the API server's clock), frees the volume with the direct steps and
    Traefik runs on another worker well within 60 simulated seconds of the power loss.
    """
    node = lab.traefik_node()
    lost_at = lab.now()
    lab.handle.fault('power-loss', node)
    proof = fence(lab, node)
    assert proof['fenced'] is True and proof['changed'] is False  # already off: the fence only proves it
    assert lab.node_ready(node) == 'True'  # Kubernetes has not noticed yet
    args = dict(lab.force_detach_args(node, proof), stale_wait=60 * SLOW, wait_timeout=240 * SLOW,
                stall_timeout=60 * SLOW, finalizer_timeout=60 * SLOW)
    failed, result = run_module(csi_force_detach, args)
    assert not failed, result
    assert result['strategy'] == 'direct' and result['plan']['strategy_requested'] == 'out_of_service'
    # one missed renewal of the node's 40 s lease (renewed every 10 s): the threshold derives from it
    assert result['plan']['ready_stale']['threshold_seconds'] == 12.4
    assert result['plan']['ready_stale']['lease_silent_seconds'] >= 12.4
    # still Ready means still schedulable: the out-of-service taint keeps replacements off the dead node
    assert OOS in lab.taints(node)
    assert [a['action'] for a in result['actions_done']][0] == 'taint_node'
    assert any('Ready condition is stale' in w for w in result['warnings'])
    running = lab.running_pods('traefik', TRAEFIK)
    assert len(running) == 1 and running[0]['spec']['nodeName'] != node
    came_back = ready_since(running[0]) - lost_at
    print('\nTraefik Running {0:.1f} simulated s after the power loss'.format(came_back))
    assert 0 < came_back <= 60


def test_a_ready_node_whose_kubelet_keeps_renewing_is_refused_with_a_genuine_proof(lab):
    """A partitioned node that is still running: the fence proof is genuine (its own UUID, as if taken of a
    stopped twin), but the kubelet keeps renewing its lease; after the bounded wait the module refuses."""
    node = lab.traefik_node()
    uuid = lab.get('nodes', None, node)['status']['nodeInfo']['systemUUID']
    proof = {'changed': True, 'fenced': True, 'power_state_after': 'stopped', 'smbios_uuid': uuid}
    before = lab.requests()
    failed, result = run_module(csi_force_detach, lab.force_detach_args(node, proof, stale_wait=real(30)))
    assert failed and any('is Ready' in r and 'renewed its lease' in r for r in result['refused']), result
    assert lab.writes_since(before) == {}
