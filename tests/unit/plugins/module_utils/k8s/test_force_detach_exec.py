"""ForceDetach (executor + verification) against FakeK8s with small controller stand-ins on a fake clock."""

from __future__ import annotations

import pytest

from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.errors import K8sError, RefusedError
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.force_detach import (
    APPLIED_AT, APPLIED_BY, LEGACY_APPLIED_AT, OOS_TAINT_KEY, ForceDetach, VerificationFailed,
)

import k8s_fixtures as fx
from fake_k8s import FakeK8s


def options(**kw):
    out = {'node': fx.DEAD, 'state': 'present', 'strategy': 'out_of_service', 'fence': fx.fence(),
           'assume_fenced': False, 'actor': 'tester', 'wait': True, 'wait_timeout': 120, 'poll_interval': 1,
           'stall_timeout': 20, 'finalizer_timeout': 15, 'strip_finalizers': True}
    out.update(kw)
    return out


def tainted(fake):
    return any(t.get('key') == OOS_TAINT_KEY for t in fake.obj('nodes', None, fx.DEAD)['spec'].get('taints') or [])


class World(object):
    """Controllers in miniature: non-graceful shutdown (taint manager, pod GC, attach/detach), the
    external attacher (+ Longhorn tickets), StatefulSet controller, scheduler/kubelet on the live node."""

    def __init__(self, fake, gc=True, attacher=True, longhorn_namespace='longhorn-system'):
        self.fake = fake
        self.lh_ns = longhorn_namespace
        self.gc = gc
        self.attacher = attacher
        self.log = []

    def __call__(self, now):
        f = self.fake
        dead = f.obj('nodes', None, fx.DEAD)
        dead_ready = dead['status']['conditions'][0]['status'] == 'True'
        if self.gc and tainted(f) and not dead_ready:
            for pod in f.list_pods(field_selector='spec.nodeName=' + fx.DEAD):
                key = (pod['metadata']['namespace'], pod['metadata']['name'])
                if pod['metadata'].get('deletionTimestamp'):
                    f.remove('pods', *key)
                    self.log.append(('gc', key, now))
                else:
                    pod['metadata']['deletionTimestamp'] = 'now'
                    f.put('pods', pod)
            on_dead = set()
            for pod in f.list_pods(field_selector='spec.nodeName=' + fx.DEAD):
                on_dead.update(pod['metadata']['namespace'] + '/' + c['persistentVolumeClaim']['claimName']
                               for c in pod['spec']['volumes'])
            for va in f.list_volume_attachments():
                if va['spec']['nodeName'] == fx.DEAD and not va['metadata'].get('deletionTimestamp'):
                    va['metadata']['deletionTimestamp'] = 'now'
                    f.put('volumeattachments', va)
        if self.attacher:
            for va in f.list_volume_attachments():
                if va['metadata'].get('deletionTimestamp'):
                    lh = f.obj('lh.volumeattachments', self.lh_ns, va['spec']['source']['persistentVolumeName'])
                    if lh:
                        lh['spec']['attachmentTickets'].pop(va['metadata']['name'], None)
                        f.put('lh.volumeattachments', lh)
                    f.remove('volumeattachments', None, va['metadata']['name'])
                    self.log.append(('detached', va['metadata']['name'], now))
        # StatefulSet controller: db-0 comes back once the old pod object is gone.
        if f.obj('statefulsets', 'db', 'db') and not f.obj('pods', 'db', 'db-0'):
            f.put('pods', fx.pod('db', 'db-0', fx.ALIVE, pvcs=['data-db-0'], labels={'app': 'db'},
                                 owner=('StatefulSet', 'db'), phase='Pending'))
        # Scheduler + attach on the live node: a Pending pod starts once no other node holds its volume.
        for pod in f.list_pods(field_selector='spec.nodeName=' + fx.ALIVE):
            if pod['status']['phase'] != 'Pending':
                continue
            ns = pod['metadata']['namespace']
            claim = pod['spec']['volumes'][0]['persistentVolumeClaim']['claimName']
            pv = [p for p in f.list_pvs() if p['spec']['claimRef'] == {'namespace': ns, 'name': claim}][0]
            pv_name = pv['metadata']['name']
            holders = [v for v in f.list_volume_attachments()
                       if v['spec']['source']['persistentVolumeName'] == pv_name and v['spec']['nodeName'] != fx.ALIVE]
            if holders:
                continue   # Multi-Attach error
            f.put('volumeattachments', fx.va('csi-new-' + pv_name, fx.ALIVE, pv_name))
            vol = f.obj('lh.volumes', self.lh_ns, pv_name)
            if vol:
                f.put('lh.volumes', dict(fx.lhvol(pv_name, node_name=fx.ALIVE), metadata=dict(
                    fx.lhvol(pv_name, node_name=fx.ALIVE)['metadata'], namespace=self.lh_ns)))
            pod['status'] = {'phase': 'Running', 'conditions': [{'type': 'Ready', 'status': 'True'}]}
            f.put('pods', pod)
            self.log.append(('running', pod['metadata']['name'], now))


def make(longhorn=True, dead_ready='Unknown', **world):
    fake = FakeK8s(fx.seed_objects(dead_ready=dead_ready, longhorn=longhorn), longhorn=longhorn)
    w = World(fake, **world)
    fake.clock.hooks.append(w)
    return fake, w


def stopped_now(uuid, name):
    """A Proxmox reading: exactly one VM carries the uuid and it reads stopped (what the lab tests read for real)."""
    return True, {'identity': 'ok', 'vmid': 103, 'pve_node': 'pve2', 'status': 'stopped'}, []


def running_now(uuid, name):
    return False, {'identity': 'ok', 'vmid': 103, 'pve_node': 'pve2', 'status': 'running'}, [
        'Proxmox reads VM 103 on pve2 as running now: it is not powered off']


def run(fake, check_mode=False, power_check=stopped_now, **kw):
    svc = ForceDetach(fake, options(**kw), clock=fake.clock, sleep=fake.clock.sleep, now=lambda: '2026-01-25T21:00:00Z',
                      power_check=power_check)
    return svc, svc.run(check_mode=check_mode)


def test_hand_written_proof_on_a_running_vm_is_refused_before_any_write():
    """Unsafe case 3: fence={fenced: true, smbios_uuid} typed by hand; Proxmox, read now, says running."""
    fake, world = make()
    proof = {'fenced': True, 'smbios_uuid': fx.UUID_DEAD}
    with pytest.raises(RefusedError) as info:
        run(fake, fence=proof, power_check=running_now)
    assert 'running now' in str(info.value)
    assert fake.write_log() == []


def test_without_proxmox_access_a_proof_is_not_enough():
    fake, world = make()
    with pytest.raises(RefusedError) as info:
        run(fake, power_check=None)
    assert 'no Proxmox access' in str(info.value)
    assert fake.write_log() == []
    svc, result = run(fake, power_check=None, assume_fenced=True, wait=False)
    assert result['changed'] is True and any('ASSUMED FENCED' in w for w in result['warnings'])


def test_a_failing_proxmox_read_refuses():
    def broken(uuid, name):
        raise RuntimeError('595 No route to host')
    fake, world = make()
    with pytest.raises(RefusedError) as info:
        run(fake, power_check=broken)
    assert '595' in str(info.value) and fake.write_log() == []


def test_out_of_service_recovers_seed_incident():
    fake, world = make()
    svc, result = run(fake)
    assert result['changed'] is True
    assert result['fallback'] == {'used': False}
    assert tainted(fake)
    node = fake.obj('nodes', None, fx.DEAD)
    assert node['metadata']['annotations'][APPLIED_BY] == 'tester'
    ver = result['verification']
    assert ver['ok'] is True
    vols = dict((v['pv'], v) for v in ver['volumes'])
    assert vols['pvc-traefik']['node'] == fx.ALIVE and vols['pvc-traefik']['ok']
    assert vols['pvc-db']['node'] == fx.ALIVE and vols['pvc-db']['ok']
    wls = dict((w['name'], w) for w in ver['workloads'])
    assert wls['traefik']['ready'] == 1 and wls['db']['ready'] == 1
    assert all(w['ok_at'] is not None and w['ok_at'] <= ver['elapsed_s'] for w in ver['workloads'])
    # the module itself only patched the node (Kubernetes did the rest)
    assert [e[:2] for e in fake.write_log()] == [('patch', 'nodes')]
    assert result['finalizers_stripped'] == []


def test_out_of_service_taint_keeps_existing_taints():
    fake = make()[0]
    run(fake)
    keys = [t['key'] for t in fake.obj('nodes', None, fx.DEAD)['spec']['taints']]
    assert keys == ['node.kubernetes.io/unreachable', OOS_TAINT_KEY]


def test_out_of_service_stall_falls_back_to_direct():
    fake, world = make(gc=False)
    svc, result = run(fake, stall_timeout=5)
    assert result['fallback']['used'] is True
    assert result['fallback']['after_s'] >= 5
    done = [a['action'] for a in result['actions_done']]
    assert done[0] == 'taint_node'
    assert 'force_delete_pod' in done and 'delete_volume_attachment' in done
    assert result['verification']['ok'] is True


def test_direct_recovers_and_strips_nothing_when_attacher_works():
    fake, world = make()
    svc, result = run(fake, strategy='direct')
    assert not tainted(fake)
    done = [(a['action'], a.get('name') or a.get('node')) for a in result['actions_done']]
    # Longhorn's order: the VolumeAttachments first, and the pods only once those are gone
    assert done[:5] == [('delete_volume_attachment', 'csi-aaa'), ('delete_volume_attachment', 'csi-bbb'),
                        ('clear_volumes_in_use', fx.DEAD),
                        ('force_delete_pod', 'db-0'), ('force_delete_pod', 'traefik-79fcb6d7fd-pwp9v')]
    kinds = [e['event'] for e in result['events']]
    assert kinds.index('volume_attachments_gone') < kinds.index('force_delete_pod')
    assert fake.obj('nodes', None, fx.DEAD)['status']['volumesInUse'] == []
    status_patch = [body for verb, res, ns, name, body in fake.log if res == 'nodes/status']
    assert len(status_patch) == 1 and status_patch[0]['status'] == {'volumesInUse': []}
    assert status_patch[0]['metadata']['resourceVersion']
    assert result['verification']['ok'] is True
    assert result['finalizers_stripped'] == []
    # the pod delete was a force delete
    grace = [body for verb, res, ns, name, body in fake.log if res == 'pods']
    assert all(b == {'gracePeriodSeconds': 0} for b in grace)
    # the attacher released the tickets with the VolumeAttachments: nothing for the module to remove
    assert not [e for e in fake.log if e[1] == 'lh.volumeattachments']


def test_direct_strips_finalizers_only_when_driver_stuck():
    fake, world = make(attacher=False)
    svc, result = run(fake, strategy='direct', finalizer_timeout=10)
    stripped = dict((s['volume_attachment'], s) for s in result['finalizers_stripped'])
    assert set(stripped) == {'csi-aaa', 'csi-bbb'}
    assert stripped['csi-aaa']['finalizers'] == ['external-attacher/driver-longhorn-io']
    assert stripped['csi-aaa']['waited_s'] >= 10
    # with the VAs gone the driver never released the tickets: stale, removed with a merge patch each
    patches = [(name, body) for verb, res, ns, name, body in fake.log if res == 'lh.volumeattachments']
    assert sorted(patches, key=lambda p: p[0]) == [('pvc-db', {'spec': {'attachmentTickets': {'csi-bbb': None}}}),
                                                   ('pvc-traefik', {'spec': {'attachmentTickets': {'csi-aaa': None}}})]
    assert result['verification']['ok'] is True


def test_direct_never_strips_when_disabled():
    fake, world = make(attacher=False)
    with pytest.raises(K8sError) as info:
        run(fake, strategy='direct', strip_finalizers=False, wait_timeout=30)
    assert 'not gone within wait_timeout; the pods were not force-deleted' in str(info.value)
    assert fake.clock.t == pytest.approx(30)    # the wait ends at wait_timeout, never past it
    assert fake.obj('volumeattachments', None, 'csi-aaa') is not None
    # Longhorn's order: while the VolumeAttachments stay, no pod is force-deleted
    assert not [e for e in fake.write_log() if e[1] == 'pods']


def test_without_longhorn_plain_csi():
    fake, world = make(longhorn=False)
    svc, result = run(fake, strategy='direct')
    assert result['plan']['longhorn'] is False
    assert not [e for e in fake.write_log() if e[1].startswith('lh.')]
    assert result['verification']['ok'] is True
    vols = dict((v['pv'], v) for v in result['verification']['volumes'])
    assert vols['pvc-traefik']['node'] == fx.ALIVE


def test_check_mode_writes_nothing():
    fake, world = make()
    svc, result = run(fake, check_mode=True, strategy='direct')
    assert fake.write_log() == []
    assert result['changed'] is True
    assert [a['action'] for a in result['plan']['actions']].count('force_delete_pod') == 2


def test_ready_node_refused_no_write():
    fake, world = make(dead_ready='True')
    with pytest.raises(RefusedError) as info:
        run(fake)
    assert 'is Ready' in str(info.value)
    assert fake.write_log() == []


def test_mismatched_fence_refused_no_write():
    fake, world = make()
    with pytest.raises(RefusedError):
        run(fake, fence=fx.fence(uuid=fx.UUID_ALIVE))
    assert fake.write_log() == []


def test_node_coming_back_stops_the_fallback():
    fake, world = make(gc=False)

    def revive(now):
        if now > 3:
            node = fake.obj('nodes', None, fx.DEAD)
            node['status']['conditions'][0]['status'] = 'True'
    fake.clock.hooks.insert(0, revive)
    with pytest.raises(RefusedError) as info:
        run(fake, stall_timeout=10)
    assert 'became Ready' in str(info.value)
    assert [e[:2] for e in fake.write_log()] == [('patch', 'nodes')]


def test_kubelet_coming_back_stops_the_direct_steps():
    fake, world = make(gc=False)

    def kubelet_renews(now):
        if now > 3:
            fake.put('leases', fx.lease(fx.DEAD, '2026-01-25T20:45:00.000000Z'))
    fake.clock.hooks.insert(0, kubelet_renews)
    with pytest.raises(RefusedError) as info:
        run(fake, stall_timeout=10)
    assert 'renews its lease again' in str(info.value)
    # the taint went on before; no pod, attachment or ticket was touched after the kubelet came back
    assert [e[:2] for e in fake.write_log()] == [('patch', 'nodes')]


def test_second_run_changes_nothing():
    fake, world = make()
    run(fake)
    before = len(fake.log)
    svc, result = run(fake)
    assert result['changed'] is False
    assert len(fake.log) == before
    assert result['verification']['ok'] is True


def test_taint_conflict_is_retried_after_reread():
    fake, world = make()
    real = fake.patch_node
    calls = []

    def racing(name, body, content_type=None):
        calls.append(body['metadata']['resourceVersion'])
        if len(calls) == 1:   # someone else writes the node in between
            node = fake.obj('nodes', None, name)
            node['metadata']['labels']['raced'] = 'yes'
            fake.put('nodes', node)
        return real(name, body, content_type)
    fake.patch_node = racing
    run(fake, wait=False)
    assert len(calls) == 2 and calls[0] != calls[1]
    node = fake.obj('nodes', None, fx.DEAD)
    assert tainted(fake) and node['metadata']['labels']['raced'] == 'yes'


def test_absent_removes_taint_and_annotations():
    fake, world = make()
    run(fake)
    svc, result = run(fake, state='absent', fence=None)
    assert result['changed'] is True
    node = fake.obj('nodes', None, fx.DEAD)
    assert not tainted(fake) and APPLIED_BY not in node['metadata']['annotations']
    svc, result = run(fake, state='absent', fence=None)
    assert result['changed'] is False


def test_the_taint_is_written_with_the_one_domain_and_an_older_release_annotation_is_cleaned_up():
    fake, world = make()
    run(fake)
    node = fake.obj('nodes', None, fx.DEAD)
    annotations = node['metadata']['annotations']
    assert APPLIED_AT.startswith('remediation.tazlab.io/') and APPLIED_AT in annotations
    assert LEGACY_APPLIED_AT not in annotations
    # a node tainted by an older release carries the annotation under resilience.tazlab.io: absent removes it
    annotations[LEGACY_APPLIED_AT] = annotations.pop(APPLIED_AT)
    fake.put('nodes', node)
    svc, result = run(fake, state='absent', fence=None)
    assert result['changed'] is True
    left = fake.obj('nodes', None, fx.DEAD)['metadata'].get('annotations') or {}
    assert not tainted(fake) and not {APPLIED_BY, APPLIED_AT, LEGACY_APPLIED_AT} & set(left)


def test_verification_timeout_reports_per_workload():
    fake, world = make()
    fake.remove('statefulsets', 'db', 'db')
    fake.put('statefulsets', fx.statefulset('db', 'db', replicas=2))
    with pytest.raises(VerificationFailed) as info:
        run(fake, wait_timeout=20)
    report = info.value.report
    db = [w for w in report['workloads'] if w['name'] == 'db'][0]
    assert db['ok'] is False and db['desired'] == 2 and db['ready'] == 1


def test_result_has_per_volume_and_per_workload_report_at_top_level():
    fake, world = make()
    svc, result = run(fake)
    assert result['strategy'] == 'out_of_service'
    assert result['volumes'] == result['verification']['volumes']
    assert sorted(w['name'] for w in result['workloads']) == ['db', 'traefik']
    assert all(w['ok'] and w['ok_at'] is not None for w in result['workloads'])


def test_longhorn_in_another_namespace_is_found_with_longhorn_namespace():
    """Issue 14 point 4: Helm may install Longhorn outside longhorn-system."""
    objs = fx.seed_objects()
    for res, obj in objs:
        if res.startswith('lh.'):
            obj['metadata']['namespace'] = 'storage'
    fake = FakeK8s(objs, longhorn=True)
    world = World(fake, attacher=False, longhorn_namespace='storage')
    fake.clock.hooks.append(world)
    svc, result = run(fake, strategy='direct', finalizer_timeout=10, longhorn_namespace='storage')
    patches = sorted((ns, name) for verb, res, ns, name, body in fake.log if res == 'lh.volumeattachments')
    assert patches == [('storage', 'pvc-db'), ('storage', 'pvc-traefik')]
    assert result['verification']['ok'] is True


class CountingK8s(FakeK8s):
    """FakeK8s that counts the reads ForceDetach makes, by method."""

    def __init__(self, *args, **kwargs):
        super(CountingK8s, self).__init__(*args, **kwargs)
        self.reads = {}
        self.paused = False

    def _count(self, what):
        if not self.paused:
            self.reads[what] = self.reads.get(what, 0) + 1

    def get_workload(self, kind, namespace, name):
        self._count('get_workload')
        return super(CountingK8s, self).get_workload(kind, namespace, name)

    def list_workloads(self, kind, namespace):
        self._count('list_workloads {0} {1}'.format(kind, namespace))
        return super(CountingK8s, self).list_workloads(kind, namespace)

    def list_pods(self, namespace=None, field_selector=None, label_selector=None):
        self._count('list_pods {0}'.format(namespace or 'all'))
        return super(CountingK8s, self).list_pods(namespace, field_selector, label_selector)

    def list_pvs(self):
        self._count('list_pvs')
        return super(CountingK8s, self).list_pvs()


def test_reads_are_lists_per_namespace_not_gets_per_object():
    """Issue 21: requests grow with the namespaces concerned, not with the pods and volumes of the dead node."""
    fake = CountingK8s(fx.seed_objects(dead_ready='Unknown', longhorn=True), longhorn=True)
    world = World(fake)

    def controllers(now):
        fake.paused = True    # the controllers' own reads are not the module's
        try:
            world(now)
        finally:
            fake.paused = False
    fake.clock.hooks.append(controllers)
    svc, result = run(fake)
    assert result['verification']['ok'] is True
    rounds = fake.reads['list_pods all']          # one observation per round: the dead node's pods
    assert rounds >= 2
    assert 'get_workload' not in fake.reads       # no GET per workload or per ReplicaSet
    assert fake.reads['list_pvs'] == 1            # the PersistentVolumes once per run
    rs_lists = [k for k in fake.reads if k.startswith('list_workloads ReplicaSet')]
    assert all(fake.reads[k] == 1 for k in rs_lists)   # ReplicaSets: one list per namespace, once per run
    namespaces = set(w['namespace'] for w in result['verification']['workloads'])
    for ns in namespaces:
        # at most one list of pods per namespace per verification round (volumes and workloads share it)
        assert fake.reads.get('list_pods {0}'.format(ns), 0) <= rounds


# -- the predicted proof of a check-mode fence ---------------------------------------------------------

def predicted_proof():
    """What proxmox_fence returns in check mode for the running VM a real run would stop."""
    return fx.fence(fenced=False, predicted=True, would_fence=True, power_state_after='stopped')


def test_predicted_proof_plans_in_check_mode_and_warns_what_a_real_run_refuses():
    """The runbook in check mode: the fence only planned, Proxmox (read now) says the VM runs. The plan is shown;
    the reading that a real run would refuse is a check-mode warning; nothing is written."""
    fake, world = make()
    svc, result = run(fake, check_mode=True, fence=predicted_proof(), power_check=running_now, strategy='direct')
    assert fake.write_log() == []
    assert result['changed'] is True and result['assumed_fenced'] is False and result['fence']['predicted'] is True
    assert [a['action'] for a in result['plan']['actions']].count('force_delete_pod') == 2
    assert any(w.startswith('check mode: Proxmox reads VM 103') and w.endswith('(a real run refuses)')
               for w in result['warnings']), result['warnings']
    assert any('is predicted' in w for w in result['warnings'])


def test_predicted_proof_is_refused_in_a_real_run_before_any_write():
    fake, world = make()
    for assume in (False, True):
        with pytest.raises(RefusedError) as info:
            run(fake, fence=predicted_proof(), power_check=stopped_now, assume_fenced=assume)
        assert 'a predicted proof from a check-mode fence is not a proof' in str(info.value)
    assert fake.write_log() == []


def test_the_power_check_refuses_a_predicted_proof_in_a_real_run_whatever_the_plan_said(monkeypatch):
    """Two layers: were the plan's fence verdict ever to let a predicted proof through, the check right before
    the first write still refuses it outside check mode."""
    from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.force_detach import plan as plan_module

    real = plan_module.check_fence
    monkeypatch.setattr(plan_module, 'check_fence', lambda node, fence, assume, check_mode=False: real(
        node, fence, assume, check_mode=True))
    fake, world = make()
    with pytest.raises(RefusedError) as info:
        run(fake, fence=predicted_proof(), power_check=stopped_now)
    assert 'a predicted proof from a check-mode fence is not a proof' in str(info.value)
    assert fake.write_log() == []


def test_a_real_proof_still_refuses_a_running_vm_in_check_mode():
    """Only a predicted proof turns the power reading into a warning: a real proof contradicted by Proxmox is
    refused in check mode as in a real run."""
    fake, world = make()
    with pytest.raises(RefusedError) as info:
        run(fake, check_mode=True, power_check=running_now)
    assert 'running now' in str(info.value) and fake.write_log() == []
    svc, result = run(fake, check_mode=True)
    assert result['fence']['verified'] is True and result['fence']['predicted'] is False
    assert not any('check mode' in w for w in result['warnings'])


def test_the_poll_rhythm_of_the_waits():
    """0.25 s, growing by half up to poll_interval, cut at wait_timeout (the bench numbers depend on it)."""
    fake, world = make()
    svc = ForceDetach(fake, options(poll_interval=2, wait_timeout=10), clock=fake.clock, sleep=fake.clock.sleep)
    pace, verification = svc._pace(), svc._pace(first=0.5)
    assert verification.delay() == 0.5 and verification.delay() == 0.75     # verification starts at 0.5 s
    slept = [pace.sleep() for dummy in range(10)]
    assert slept[:7] == [0.25, 0.375, 0.5625, 0.84375, 1.265625, 1.8984375, 2]
    assert sum(slept) == pytest.approx(10) and pace.expired()


def test_the_verification_looks_again_soon_after_progress(monkeypatch):
    """A round in which a workload came back resets the pace to its first 0.5 s: the next one usually follows
    within a second. Idle rounds still slow down (0.5, 0.75, 1.125, ...), so requests stay bounded."""
    from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.force_detach import verify as verify_module
    fake, world = make()
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        fake.clock.sleep(seconds)
    svc = ForceDetach(fake, options(poll_interval=2, wait_timeout=30), clock=fake.clock, sleep=sleep)
    monkeypatch.setattr(verify_module, 'cleanup_remaining', lambda observed, plan: {
        'pods': [], 'terminating_pods': [], 'volume_attachments': [], 'longhorn_tickets': []})
    monkeypatch.setattr(svc, 'observe', lambda: {})
    monkeypatch.setattr(svc, '_check_volumes', lambda observed, plan, volumes: None)
    rounds = []
    back_in_round = {'a': 4, 'b': 6}

    def check_workloads(plan, workloads):
        rounds.append(len(rounds) + 1)
        for w in workloads.values():
            if len(rounds) >= back_in_round[w['name']] and not w['ok']:
                w.update(ok=True, ok_at=svc.elapsed())
    monkeypatch.setattr(svc, '_check_workloads', check_workloads)
    plan = {'node': fx.DEAD, 'volumes': [], 'workloads': [
        {'kind': 'Deployment', 'namespace': 'ns', 'name': 'a'}, {'kind': 'Deployment', 'namespace': 'ns', 'name': 'b'}]}
    report = svc.verify(plan)
    assert report['ok'] and len(rounds) == 6
    # round 1: the checks pass (progress); rounds 2-3 idle; round 4: a is back (progress); round 5 idle; 6: done
    assert slept == [0.5, 0.75, 1.125, 0.5, 0.75]
