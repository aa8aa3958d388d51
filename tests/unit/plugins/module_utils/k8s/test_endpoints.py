"""plan_endpoint_fix (pure) and EndpointFix (executor) on fixtures and FakeK8s."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.endpoints import (
    RESTARTED_AT, SERVICE_NAME_LABEL, SKIP_MIRROR, EndpointFix, RolloutTimeout, StaleAdvertiser, desired_endpoints,
    desired_slice, endpoints_right, plan_endpoint_fix, rollout_status, slice_right,
)
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.errors import RefusedError

import k8s_fixtures as fx
from fake_k8s import FakeK8s

CP = {'node-role.kubernetes.io/control-plane': ''}
OLD, NEW = '192.168.1.71', '192.168.1.253'


def ep(ips, label=True, port=6443):
    md = {'name': 'kubernetes', 'namespace': 'default', 'labels': {SKIP_MIRROR: 'true'} if label else {}}
    return {'apiVersion': 'v1', 'kind': 'Endpoints', 'metadata': md,
            'subsets': [{'addresses': [{'ip': i} for i in ips],
                         'ports': [{'name': 'https', 'port': port, 'protocol': 'TCP'}]}]}


def eps(ips, name='kubernetes'):
    return {'apiVersion': 'discovery.k8s.io/v1', 'kind': 'EndpointSlice',
            'metadata': {'name': name, 'namespace': 'default', 'labels': {SERVICE_NAME_LABEL: 'kubernetes'}},
            'addressType': 'IPv4',
            'endpoints': [{'addresses': [i], 'conditions': {'ready': True}} for i in ips],
            'ports': [{'name': 'https', 'port': 6443, 'protocol': 'TCP'}]}


def cluster(ep_ips=(OLD,), slice_ips=(OLD,), extra_slice=False, cp_ready='True'):
    objs = [('nodes', fx.node('cp-1', ready=cp_ready, labels=CP, ip=NEW)),
            ('nodes', fx.node('w1', ready='True', ip='192.168.1.81')),
            ('endpoints', ep(list(ep_ips))),
            ('endpointslices', eps(list(slice_ips))),
            ('deployments', fx.deployment('kube-system', 'coredns', replicas=2, labels={'k8s-app': 'kube-dns'})),
            ('daemonsets', fx.daemonset('kube-system', 'kube-proxy', labels={'k8s-app': 'kube-proxy'}))]
    if extra_slice:
        objs.append(('endpointslices', eps([OLD], name='kubernetes-stale')))
    for i in range(2):
        objs.append(('pods', fx.pod('kube-system', 'coredns-old-{0}'.format(i), 'w1', labels={'k8s-app': 'kube-dns'},
                                    owner=('ReplicaSet', 'coredns-old'))))
    for n in ('cp-1', 'w1'):
        objs.append(('pods', fx.pod('kube-system', 'kube-proxy-' + n, n, labels={'k8s-app': 'kube-proxy'},
                                    owner=('DaemonSet', 'kube-proxy'))))
    return objs


def observed(objs):
    by = {}
    for res, obj in objs:
        by.setdefault(res, []).append(copy.deepcopy(obj))
    wl = {}
    for d in by.get('deployments', []):
        wl['Deployment/{0}/{1}'.format(d['metadata']['namespace'], d['metadata']['name'])] = d
    for d in by.get('daemonsets', []):
        wl['DaemonSet/{0}/{1}'.format(d['metadata']['namespace'], d['metadata']['name'])] = d
    return {'nodes': by.get('nodes', []), 'endpoints': (by.get('endpoints') or [None])[0],
            'slices': by.get('endpointslices', []), 'workloads': wl}


# -- pure ------------------------------------------------------------------------------------------------

def test_desired_objects_match_apiserver_shape():
    e = desired_endpoints(None, 'default', 'kubernetes', ['10.0.0.2', '10.0.0.10', '10.0.0.2'], 6443)
    assert e['metadata']['labels'] == {SKIP_MIRROR: 'true'}
    # the apiserver's order: sorted by the IP string
    assert e['subsets'] == [{'addresses': [{'ip': '10.0.0.10'}, {'ip': '10.0.0.2'}],
                             'ports': [{'name': 'https', 'port': 6443, 'protocol': 'TCP'}]}]
    s = desired_slice(None, 'default', 'kubernetes', ['10.0.0.2'], 6443)
    assert s['metadata']['labels'] == {SERVICE_NAME_LABEL: 'kubernetes'}
    assert s['addressType'] == 'IPv4'
    assert s['endpoints'] == [{'addresses': ['10.0.0.2'], 'conditions': {'ready': True}}]
    assert s['ports'] == [{'name': 'https', 'port': 6443, 'protocol': 'TCP'}]
    assert desired_slice(None, 'default', 'kubernetes', ['fd00::1'], 6443)['addressType'] == 'IPv6'


def test_right_checks():
    assert endpoints_right(ep([NEW]), [NEW], 6443)
    assert not endpoints_right(ep([NEW], label=False), [NEW], 6443)
    assert not endpoints_right(ep([NEW], port=443), [NEW], 6443)
    assert not endpoints_right(ep([NEW, OLD]), [NEW], 6443)
    assert slice_right(eps([NEW]), 'kubernetes', [NEW], 6443)
    bad = eps([NEW])
    bad['endpoints'][0]['conditions']['ready'] = False
    assert not slice_right(bad, 'kubernetes', [NEW], 6443)


def test_plan_discovers_ready_control_plane():
    plan = plan_endpoint_fix(observed(cluster()), {})
    assert plan['addresses'] == [NEW] and plan['source'] == 'discovered'
    assert plan['discovered_from'] == [{'node': 'cp-1', 'address': NEW}]
    assert plan['endpoints_action'] == 'replace' and plan['slice_action'] == 'replace'
    assert plan['before']['endpoints'] == [OLD] and plan['after']['endpoints'] == [NEW]
    assert [r['name'] for r in plan['restarts']] == ['coredns', 'kube-proxy']


def test_plan_no_ready_control_plane_refused():
    plan = plan_endpoint_fix(observed(cluster(cp_ready='Unknown')), {})
    assert plan['refused'] and 'no Ready control-plane node' in plan['refused'][0]


def test_plan_given_addresses_validated():
    assert plan_endpoint_fix(observed(cluster()), {'addresses': ['nope']})['refused']
    assert plan_endpoint_fix(observed(cluster()), {'addresses': ['10.0.0.1', 'fd00::1']})['refused']


def test_plan_already_right_no_change_no_restart():
    plan = plan_endpoint_fix(observed(cluster(ep_ips=[NEW], slice_ips=[NEW])), {'addresses': [NEW]})
    assert plan['changed'] is False and plan['restarts'] == []


def test_plan_only_slice_wrong_still_changes():
    plan = plan_endpoint_fix(observed(cluster(ep_ips=[NEW], slice_ips=[OLD])), {'addresses': [NEW]})
    assert plan['endpoints_action'] == 'none' and plan['slice_action'] == 'replace' and plan['changed']


def test_plan_stale_extra_slice_deleted_and_absent_restart_skipped():
    plan = plan_endpoint_fix(observed(cluster(ep_ips=[NEW], slice_ips=[NEW], extra_slice=True)),
                             {'addresses': [NEW], 'restart': [{'kind': 'Deployment', 'namespace': 'x', 'name': 'gone'}]})
    assert plan['delete_slices'] == ['kubernetes-stale'] and plan['changed']
    assert plan['skipped_restarts'] == [{'kind': 'Deployment', 'namespace': 'x', 'name': 'gone', 'reason': 'not found'}]


def test_rollout_status_deployment_and_daemonset():
    dep = fx.deployment('kube-system', 'coredns', replicas=2)
    new = [fx.pod('kube-system', 'c{0}'.format(i), 'w1', annotations={RESTARTED_AT: 'S'}) for i in range(2)]
    old = [fx.pod('kube-system', 'o', 'w1')]
    assert rollout_status('Deployment', dep, new + old, {'w1'}, 'S')[0] is False
    assert rollout_status('Deployment', dep, new, {'w1'}, 'S')[0] is True
    # an old pod stuck on a dead node does not block the rollout
    stuck = fx.pod('kube-system', 'o2', 'dead')
    assert rollout_status('Deployment', dep, new + [stuck], {'w1'}, 'S')[0] is True
    ds = fx.daemonset('kube-system', 'kube-proxy')
    pods = [fx.pod('kube-system', 'p1', 'w1', annotations={RESTARTED_AT: 'S'}),
            fx.pod('kube-system', 'p2', 'w2', annotations={RESTARTED_AT: 'S'}, ready=False)]
    assert rollout_status('DaemonSet', ds, pods, {'w1', 'w2'}, 'S', baseline=2)[0] is False
    pods[1] = fx.pod('kube-system', 'p2', 'w2', annotations={RESTARTED_AT: 'S'})
    assert rollout_status('DaemonSet', ds, pods, {'w1', 'w2'}, 'S', baseline=2)[0] is True


# -- executor --------------------------------------------------------------------------------------------

class Controllers(object):
    """Deployment/DaemonSet controllers in miniature: replace pods whose template stamp is outdated;
    optionally an apiserver lease reconciler that keeps writing `advertised` back."""

    def __init__(self, fake, advertised=None, lease_period=15, ready_after=2, reconcile_into='endpoints'):
        self.fake = fake
        self.advertised = advertised
        self.reconcile_into = reconcile_into
        self.lease_period = lease_period
        self.ready_after = ready_after
        self.last_reconcile = 0
        self.pending = {}

    def __call__(self, now):
        f = self.fake
        for kind, res in (('Deployment', 'deployments'), ('DaemonSet', 'daemonsets')):
            for wl in f.all(res):
                stamp = ((wl['spec']['template']['metadata'].get('annotations') or {}).get(RESTARTED_AT))
                if not stamp:
                    continue
                labels = wl['spec']['selector']['matchLabels']
                sel = ','.join('{0}={1}'.format(k, v) for k, v in labels.items())
                for pod in f.list_pods(namespace=wl['metadata']['namespace'], label_selector=sel):
                    if (pod['metadata'].get('annotations') or {}).get(RESTARTED_AT) == stamp:
                        continue
                    key = pod['metadata']['name']
                    self.pending.setdefault(key, now)
                    if now - self.pending[key] >= self.ready_after:
                        f.remove('pods', pod['metadata']['namespace'], key)
                        new = fx.pod(pod['metadata']['namespace'], key + '-r', pod['spec']['nodeName'],
                                     labels=labels, owner=('DaemonSet', wl['metadata']['name']) if kind == 'DaemonSet'
                                     else ('ReplicaSet', 'x'),
                                     annotations={RESTARTED_AT: stamp})
                        f.put('pods', new)
        if self.advertised and now - self.last_reconcile >= 10 and self.reconcile_into == 'slice':
            # caught between the reconciler's two writes: its slice is written, its Endpoints not yet
            self.last_reconcile = now
            sl = f.obj('endpointslices', 'default', 'kubernetes')
            sl['endpoints'] = [{'addresses': [i], 'conditions': {'ready': True}} for i in self.advertised]
            f.put('endpointslices', sl)
        elif self.advertised and now - self.last_reconcile >= 10:
            self.last_reconcile = now
            e = f.obj('endpoints', 'default', 'kubernetes')
            e['subsets'] = [{'addresses': [{'ip': i} for i in self.advertised],
                             'ports': [{'name': 'https', 'port': 6443, 'protocol': 'TCP'}]}]
            f.put('endpoints', e)


def make(objs=None, **kw):
    fake = FakeK8s(objs if objs is not None else cluster())
    fake.clock.hooks.append(Controllers(fake, **kw))
    return fake


def run(fake, check_mode=False, **opts):
    options = {'namespace': 'default', 'name': 'kubernetes', 'port': 6443, 'restart_defaults': True, 'restart': [],
               'wait': True, 'rollout_timeout': 60, 'stickiness_check': True, 'stickiness_period': 20,
               'poll_interval': 1}
    options.update(opts)
    svc = EndpointFix(fake, options, clock=fake.clock, sleep=fake.clock.sleep, now=lambda: 'STAMP')
    return svc.run(check_mode=check_mode)


def test_fix_writes_both_restarts_and_waits():
    fake = make()
    result = run(fake)
    assert result['changed'] is True
    assert result['diff'] == {'before': {'endpoints': [OLD], 'slices': {'kubernetes': [OLD]}},
                              'after': {'endpoints': [NEW], 'slices': {'kubernetes': [NEW]}}}
    assert endpoints_right(fake.obj('endpoints', 'default', 'kubernetes'), [NEW], 6443)
    assert slice_right(fake.obj('endpointslices', 'default', 'kubernetes'), 'kubernetes', [NEW], 6443)
    assert result['stickiness']['ok'] and result['stickiness']['watched_s'] == 20
    assert result['stickiness']['polls'] == 21   # one a second, the last at the end of the period
    assert [r['name'] for r in result['restarted']] == ['coredns', 'kube-proxy']
    patches = [body for verb, res, ns, name, body in fake.log if verb == 'patch']
    assert patches[0] == {'spec': {'template': {'metadata': {'annotations': {RESTARTED_AT: 'STAMP'}}}}}
    assert all(r['done'] and r['rolled_out_at'] is not None for r in result['rollout'])
    # PUT with the resourceVersion that was read
    replaced = [body for verb, res, ns, name, body in fake.log if verb == 'replace']
    assert all(b['metadata'].get('resourceVersion') for b in replaced)


def test_second_run_no_change_no_restart():
    fake = make()
    run(fake)
    n = len(fake.log)
    result = run(fake)
    assert result['changed'] is False and result['restarted'] == [] and len(fake.log) == n


def test_check_mode_writes_nothing():
    fake = make()
    result = run(fake, check_mode=True)
    assert fake.log == []
    assert result['changed'] is True and result['diff']['after']['endpoints'] == [NEW]
    assert [r['name'] for r in result['plan']['restarts']] == ['coredns', 'kube-proxy']


def test_stale_advertiser_detected():
    fake = make(advertised=[OLD, NEW])
    with pytest.raises(StaleAdvertiser) as info:
        run(fake)
    assert info.value.returned == [OLD]
    assert '192.168.1.71 keeps coming back' in str(info.value)
    assert 'advertise' in str(info.value)
    # no restart after a failed stickiness check
    assert not [e for e in fake.log if e[1] in ('deployments', 'daemonsets')]


def test_extra_slice_deleted_and_created_when_missing():
    objs = [o for o in cluster(extra_slice=True)
            if not (o[0] == 'endpointslices' and o[1]['metadata']['name'] == 'kubernetes')]
    fake = make(objs)
    run(fake, addresses=[NEW], restart_defaults=False)
    assert [e for e in fake.write_log() if e[1] == 'endpointslices'] == [
        ('create', 'endpointslices', 'default', 'kubernetes'),
        ('delete', 'endpointslices', 'default', 'kubernetes-stale')]


def test_absent_workloads_skipped():
    objs = [o for o in cluster() if o[0] not in ('deployments', 'daemonsets')]
    fake = make(objs)
    result = run(fake, addresses=[NEW])
    assert result['restarted'] == [] and len(result['skipped_restarts']) == 2


def test_rollout_timeout_reported():
    fake = make(ready_after=1000)
    with pytest.raises(RolloutTimeout) as info:
        run(fake, rollout_timeout=10)
    assert {r['name'] for r in info.value.report if not r['done']} == {'coredns', 'kube-proxy'}
    # 20 s of stickiness watch, then the rollout wait gives up at its 10 s, not later
    assert fake.clock.t == pytest.approx(30)


def test_refused_without_control_plane():
    fake = make(cluster(cp_ready='False'))
    with pytest.raises(RefusedError):
        run(fake)
    assert fake.log == []


# -- address families (issue 14 point 6) ------------------------------------------------------------------

V6 = 'fd00:192:168:1::71'


def eps6(ips, name='kubernetes-ipv6'):
    out = eps(ips, name=name)
    out['addressType'] = 'IPv6'
    return out


def dual(**kw):
    return cluster(**kw) + [('endpointslices', eps6([V6]))]


def test_plan_leaves_the_other_family_alone():
    plan = plan_endpoint_fix(observed(dual(extra_slice=True)), {'addresses': [NEW]})
    assert plan['family'] == 'IPv4'
    assert plan['delete_slices'] == ['kubernetes-stale']
    assert plan['other_family_slices'] == ['kubernetes-ipv6']
    assert plan['after']['slices'] == {'kubernetes': [NEW], 'kubernetes-ipv6': [V6]}
    # an IPv6 fix leaves the IPv4 slices alone the same way
    plan = plan_endpoint_fix(observed(dual()), {'addresses': ['fd00:192:168:1::253']})
    assert plan['family'] == 'IPv6' and plan['delete_slices'] == ['kubernetes-ipv6']
    assert plan['other_family_slices'] == []  # the slice named kubernetes is the one to rewrite (by name)
    assert plan['slice_action'] == 'replace'


def test_plan_already_right_with_a_secondary_slice_is_no_change():
    plan = plan_endpoint_fix(observed(dual(ep_ips=[NEW], slice_ips=[NEW])), {'addresses': [NEW]})
    assert plan['changed'] is False and plan['delete_slices'] == []


def test_discovery_prefers_the_slice_family():
    objs = cluster()
    objs[0][1]['status']['addresses'] = [{'type': 'InternalIP', 'address': 'fd00::253'},
                                         {'type': 'InternalIP', 'address': NEW}]
    plan = plan_endpoint_fix(observed(objs), {})
    assert plan['addresses'] == [NEW] and plan['family'] == 'IPv4'


def test_fix_keeps_the_secondary_slice_and_its_addresses_are_not_stale():
    fake = make(dual(extra_slice=True))
    result = run(fake, addresses=[NEW], restart_defaults=False)
    assert result['stickiness']['ok'] is True and result['stickiness']['family'] == 'IPv4'
    assert fake.obj('endpointslices', 'default', 'kubernetes-ipv6')['endpoints'][0]['addresses'] == [V6]
    assert ('delete', 'endpointslices', 'default', 'kubernetes-ipv6') not in fake.write_log()
    assert ('delete', 'endpointslices', 'default', 'kubernetes-stale') in fake.write_log()


def test_family_change_of_the_named_slice_is_delete_and_create():
    objs = [o for o in cluster() if o[0] != 'endpointslices'] + [('endpointslices', eps6([V6], name='kubernetes'))]
    fake = make(objs)
    run(fake, addresses=[NEW], restart_defaults=False)
    assert [e for e in fake.write_log() if e[1] == 'endpointslices'] == [
        ('delete', 'endpointslices', 'default', 'kubernetes'), ('create', 'endpointslices', 'default', 'kubernetes')]
    sl = fake.obj('endpointslices', 'default', 'kubernetes')
    assert sl['addressType'] == 'IPv4' and slice_right(sl, 'kubernetes', [NEW], 6443)


def test_stale_advertiser_names_the_talos_cure_and_the_suspect():
    fake = make(dual(), advertised=[OLD])
    with pytest.raises(StaleAdvertiser) as info:
        run(fake, addresses=[NEW])
    msg = str(info.value)
    assert info.value.returned == [OLD]
    assert info.value.report['suspects'] == [{'node': 'cp-1', 'address': NEW}]
    assert 'talosctl -n {0} restart -k'.format(NEW) in msg and 'kube-apiserver' in msg and '$(POD_IP)' in msg
    assert 'probably cp-1, now {0}'.format(NEW) in msg


def test_the_suspect_is_found_between_the_reconcilers_two_writes():
    """The reconciler writes the slice and the Endpoints one after the other: read in between, the Endpoints still
    hold our fix (the new address) and only the slice the reconciler's list. The suspect is judged by the list that
    carries the returning address, the reconciler's own."""
    fake = make(dual(), advertised=[OLD], reconcile_into='slice')
    with pytest.raises(StaleAdvertiser) as info:
        run(fake, addresses=[NEW])
    assert info.value.returned == [OLD]
    assert info.value.report['suspects'] == [{'node': 'cp-1', 'address': NEW}]
    assert 'talosctl -n {0} restart -k'.format(NEW) in str(info.value)
