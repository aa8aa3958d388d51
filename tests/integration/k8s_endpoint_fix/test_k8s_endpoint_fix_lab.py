"""k8s_endpoint_fix against the lab world: Phase 2 of the seed story.

The control plane moves (cp-01 .71 -> .253) while the other control planes are down and etcd has no
quorum, so the lease reconciler cannot rewrite default/kubernetes: the endpoints keep the old
addresses, CoreDNS and kube-proxy crash-loop (they captured only dead addresses). The module runs for
real (in-process, over HTTPS to the twin; also packaged by Ansible) with real-second bounds while the
world's clock runs at TIME_SCALE real seconds per simulated second.
"""

from __future__ import annotations

import time

import pytest

from ansible_collections.tazlab.resilience.plugins.modules import k8s_endpoint_fix

from k8s_lab import Lab, TIME_SCALE, ansible_adhoc, is_running, real, run_module, sim

pytestmark = pytest.mark.lab_world(time_scale=TIME_SCALE)

OLD, NEW = '192.168.1.71', '192.168.1.253'
LEASE_PERIOD = 15.0           # master lease TTL (refreshed every 10 s)
RESTARTED_AT = 'kubectl.kubernetes.io/restartedAt'


@pytest.fixture
def lab(lab_world):
    return Lab(lab_world)


def endpoint_ips(lab):
    ep = lab.get('endpoints', 'default', 'kubernetes')
    return [a['ip'] for s in ep.get('subsets') or [] for a in s.get('addresses') or []]


def slice_ips(lab):
    slices = lab.list('endpointslices.discovery.k8s.io', 'default', label_selector='kubernetes.io/service-name=kubernetes')
    return dict((s['metadata']['name'], [a for e in s.get('endpoints') or [] for a in e['addresses']]) for s in slices)


def dns_and_proxy(lab, ready_nodes=None):
    pods = [p for p in lab.pods('kube-system') if p['metadata']['labels'].get('k8s-app') in ('kube-dns', 'kube-proxy')]
    if ready_nodes is not None:
        pods = [p for p in pods if p['spec'].get('nodeName') in ready_nodes]
    return pods


def ready_nodes(lab):
    return set(n['metadata']['name'] for n in lab.list('nodes')
               if any(c['type'] == 'Ready' and c['status'] == 'True' for c in n['status'].get('conditions') or []))


def args(lab, **kw):
    out = dict(lab.k8s_auth(), poll_interval=0.05, stickiness_period=real(2 * LEASE_PERIOD + 5),
               rollout_timeout=real(300))
    out.update(kw)
    return out


def move_control_plane_without_quorum(lab):
    """cp-02 and cp-03 lose power (etcd loses quorum: the reconciler freezes), cp-01 moves to .253 and
    its apiserver advertises .253; ten minutes later CoreDNS and kube-proxy crash-loop."""
    lab.handle.fault('power-loss', 'cp-02')
    lab.handle.fault('power-loss', 'cp-03')
    lab.on_loop(lab.kube.set_node_address, 'cp-01', NEW)
    lab.on_loop(lab.kube.set_advertise_address, 'cp-01', NEW)
    lab.handle.advance(600)
    assert lab.on_loop(lab.kube.control_plane.etcd_quorum) is False
    assert endpoint_ips(lab) == [OLD, '192.168.1.72', '192.168.1.73']
    broken = [p for p in dns_and_proxy(lab, ready_nodes(lab)) if not is_running(p)]
    assert broken, 'CoreDNS / kube-proxy should be crash-looping'
    coredns = lab.get('deployments.apps', 'kube-system', 'coredns')
    assert (coredns.get('status') or {}).get('readyReplicas', 0) == 0


def test_moved_control_plane_fixed_dns_and_proxy_back_and_it_sticks(lab):
    move_control_plane_without_quorum(lab)

    before = lab.requests()
    failed, plan = run_module(k8s_endpoint_fix, args(lab, addresses=[NEW]), check_mode=True, diff=True)
    assert not failed and plan['changed'] is True
    assert lab.writes_since(before) == {}
    assert plan['diff']['before'] == {'endpoints': [OLD, '192.168.1.72', '192.168.1.73'],
                                      'slices': {'kubernetes': [OLD, '192.168.1.72', '192.168.1.73']}}
    assert plan['diff']['after'] == {'endpoints': [NEW], 'slices': {'kubernetes': [NEW]}}
    assert [r['name'] for r in plan['plan']['restarts']] == ['coredns', 'kube-proxy']

    t0 = lab.now()
    started = time.monotonic()
    failed, result = run_module(k8s_endpoint_fix, args(lab, addresses=[NEW]))
    took = time.monotonic() - started
    assert not failed, result
    assert result['changed'] is True
    assert endpoint_ips(lab) == [NEW] and slice_ips(lab) == {'kubernetes': [NEW]}
    ep = lab.get('endpoints', 'default', 'kubernetes')
    assert ep['metadata']['labels']['endpointslice.kubernetes.io/skip-mirror'] == 'true'
    assert ep['subsets'][0]['ports'] == [{'name': 'https', 'port': 6443, 'protocol': 'TCP'}]
    assert result['stickiness']['ok'] is True and sim(result['stickiness']['watched_s']) >= 2 * LEASE_PERIOD
    assert [r['name'] for r in result['restarted']] == ['coredns', 'kube-proxy']
    assert all(r['done'] for r in result['rollout'])
    # CoreDNS and kube-proxy are back: every pod on a Ready node runs and is ready, started after the fix
    live = dns_and_proxy(lab, ready_nodes(lab))
    assert len([p for p in live if p['metadata']['labels']['k8s-app'] == 'kube-dns']) == 2
    assert live and all(is_running(p) for p in live), [(p['metadata']['name'], p['status']) for p in live
                                                       if not is_running(p)]
    assert all(p['metadata']['annotations'].get(RESTARTED_AT) for p in live)
    coredns = lab.get('deployments.apps', 'kube-system', 'coredns')
    assert coredns['spec']['template']['metadata']['annotations'][RESTARTED_AT] == result['restarted'][0]['restarted_at']
    print('\nendpoint fix: CoreDNS + kube-proxy rolled out {0:.1f} simulated s after the module started '
          '(module {1:.2f} real s, {2:.1f} sim s)'.format(
              max(sim(r['rolled_out_at']) for r in result['rollout']), took, lab.now() - t0))

    # etcd quorum comes back: the reconciler (cp-01 advertising .253) agrees; it stays right for two periods
    lab.on_loop(lab.kube.restore_etcd_quorum)
    deadline = lab.now() + 2 * LEASE_PERIOD + 5
    while lab.now() < deadline:
        assert endpoint_ips(lab) == [NEW] and slice_ips(lab) == {'kubernetes': [NEW]}
        time.sleep(real(1))

    # second run: already right, no write, no restart
    before = lab.requests()
    failed, again = run_module(k8s_endpoint_fix, args(lab, addresses=[NEW]))
    assert not failed and again['changed'] is False and again['restarted'] == []
    assert lab.writes_since(before) == {}


def test_stale_advertiser_detected_and_reported(lab):
    # cp-01 moved to .253 but its apiserver still advertises .71 (its advertise address was not updated)
    lab.on_loop(lab.kube.set_node_address, 'cp-01', NEW)
    lab.handle.advance(30)
    assert OLD in endpoint_ips(lab)
    want = [NEW, '192.168.1.72', '192.168.1.73']
    failed, result = run_module(k8s_endpoint_fix, args(lab, addresses=want))
    assert failed
    assert result['stale_addresses'] == [OLD]
    assert '192.168.1.71 keeps coming back' in result['msg'] and 'advertise' in result['msg']
    # the cure on Talos is the kube-apiserver static pod ($(POD_IP) is read when its container starts),
    # not the machine config; the control plane whose own address is not advertised is named
    assert 'talosctl -n 192.168.1.253 restart -k' in result['msg'] and "node's machine config" not in result['msg']
    assert result['stickiness']['suspects'] == [{'node': 'cp-01', 'address': NEW}]
    assert sim(result['stickiness']['watched_s']) <= LEASE_PERIOD + 5
    # it failed before restarting anything
    coredns = lab.get('deployments.apps', 'kube-system', 'coredns')
    assert RESTARTED_AT not in (coredns['spec']['template']['metadata'].get('annotations') or {})
    assert OLD in endpoint_ips(lab)


def test_discovered_addresses_after_a_control_plane_dies(lab):
    # without quorum a dead apiserver's address stays; the module discovers the Ready control planes
    lab.on_loop(lab.kube.lose_etcd_quorum)
    lab.handle.fault('power-loss', 'cp-03')
    lab.handle.advance(120)
    assert endpoint_ips(lab) == [OLD, '192.168.1.72', '192.168.1.73']
    failed, result = run_module(k8s_endpoint_fix, args(lab, restart_defaults=False))
    assert not failed, result
    assert result['source'] == 'discovered' and result['addresses'] == [OLD, '192.168.1.72']
    assert sorted(d['node'] for d in result['discovered_from']) == ['cp-01', 'cp-02']
    assert endpoint_ips(lab) == [OLD, '192.168.1.72'] and slice_ips(lab) == {'kubernetes': [OLD, '192.168.1.72']}
    assert result['restarted'] == []
    lab.on_loop(lab.kube.restore_etcd_quorum)
    lab.handle.advance(2 * LEASE_PERIOD + 5)
    assert endpoint_ips(lab) == [OLD, '192.168.1.72']


def test_through_ansible_check_mode_writes_nothing_then_fixes(lab, tmp_path):
    move_control_plane_without_quorum(lab)
    before = lab.requests()
    rc, status, result = ansible_adhoc(tmp_path, 'k8s_endpoint_fix', args(lab, addresses=[NEW]), check=True, diff=True)
    assert rc == 0 and status == 'CHANGED', result
    assert lab.writes_since(before) == {}
    rc, status, result = ansible_adhoc(tmp_path, 'k8s_endpoint_fix', args(lab, addresses=[NEW]))
    assert rc == 0 and status == 'CHANGED', result
    assert endpoint_ips(lab) == [NEW]
    rc, status, result = ansible_adhoc(tmp_path, 'k8s_endpoint_fix', args(lab, addresses=[NEW]))
    assert rc == 0 and status == 'SUCCESS' and result['changed'] is False


V6 = {'cp-01': 'fd00:192:168:1::71', 'cp-02': 'fd00:192:168:1::72', 'cp-03': 'fd00:192:168:1::73'}


def test_dual_stack_secondary_family_slice_is_left_alone(lab):
    """KEP-2438 dual-stack apiservers keep an IPv6 slice next to the IPv4 one. Fixing the IPv4 family must
    neither delete it nor take its addresses for a stale advertiser."""
    lab.on_loop(lab.kube.dual_stack, V6)
    lab.handle.advance(15)
    assert slice_ips(lab)['kubernetes-ipv6'] == sorted(V6.values())
    # someone left an IPv4 slice with the old address: it is the module's to delete (the apiserver ignores it)
    lab.on_loop(lab.kube.store.create, 'endpointslices.discovery.k8s.io', {
        'apiVersion': 'discovery.k8s.io/v1', 'kind': 'EndpointSlice',
        'metadata': {'name': 'kubernetes-old', 'namespace': 'default',
                     'labels': {'kubernetes.io/service-name': 'kubernetes'}},
        'addressType': 'IPv4', 'endpoints': [{'addresses': ['192.168.1.70'], 'conditions': {'ready': True}}],
        'ports': [{'name': 'https', 'port': 6443, 'protocol': 'TCP'}]})
    want = [OLD, '192.168.1.72', '192.168.1.73']
    failed, plan = run_module(k8s_endpoint_fix, args(lab, addresses=want, restart_defaults=False), check_mode=True,
                              diff=True)
    assert not failed and plan['plan']['delete_slices'] == ['kubernetes-old']
    assert plan['diff']['after']['slices'] == {'kubernetes': want, 'kubernetes-ipv6': sorted(V6.values())}

    uid = lab.get('endpointslices.discovery.k8s.io', 'default', 'kubernetes-ipv6')['metadata']['uid']
    failed, result = run_module(k8s_endpoint_fix, args(lab, addresses=want, restart_defaults=False))
    assert not failed, result
    assert result['changed'] is True and result['stickiness']['ok'] is True
    assert slice_ips(lab) == {'kubernetes': want, 'kubernetes-ipv6': sorted(V6.values())}
    # the same object: never deleted (the reconciler would have re-created it with a new uid)
    assert lab.get('endpointslices.discovery.k8s.io', 'default', 'kubernetes-ipv6')['metadata']['uid'] == uid


def test_dual_stack_move_without_quorum_keeps_the_ipv6_slice(lab):
    lab.on_loop(lab.kube.dual_stack, V6)
    lab.handle.advance(15)
    move_control_plane_without_quorum(lab)
    failed, result = run_module(k8s_endpoint_fix, args(lab, addresses=[NEW], restart_defaults=False))
    assert not failed, result
    # the reconciler cannot write without quorum: a deleted IPv6 slice would stay deleted
    assert slice_ips(lab) == {'kubernetes': [NEW], 'kubernetes-ipv6': sorted(V6.values())}
