"""replace_node: refuse while the old VM may run, etcd member removal only with quorum, Node deletion, verify."""

import pytest

from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.errors import NOT_FOUND, K8sError
from ansible_collections.tazlab.resilience.plugins.module_utils.replace_node import Refused, prepare, verify

OLD = '4c4c4544-0082-4d10-8051-b4c04f4e3832'
NEW = '7e0c51b2-51f6-4e0b-a2d4-54f0f6a3d101'


class Core(object):
    def __init__(self, k8s):
        self.k8s = k8s

    def delete_node(self, name):
        self.k8s.nodes.pop(name)


class K8s(object):
    def __init__(self, nodes=None, volumes=None):
        self.nodes = dict(nodes or {})
        self.volumes = volumes if volumes is None else list(volumes)
        self.core = Core(self)
        self.deleted = []

    def get_node(self, name):
        if name not in self.nodes:
            raise K8sError(NOT_FOUND, 'nodes "%s" not found' % name, status=404)
        return self.nodes[name]

    def call(self, what, func, write=False, **kwargs):
        self.deleted.append(kwargs['name'])
        return func(**kwargs)

    def list_custom(self, plural, namespace=None):
        assert plural == 'volumes'
        if self.volumes is None:
            raise K8sError(NOT_FOUND, 'the server could not find the requested resource', status=404)
        return self.volumes


def node(uuid, ready=True):
    return {'metadata': {'name': 'x'}, 'status': {'nodeInfo': {'systemUUID': uuid},
                                                  'conditions': [{'type': 'Ready', 'status': 'True' if ready else 'False'}]}}


class Etcd(object):
    def __init__(self, names, dead=(), learners=()):
        self.list = [dict(id=i + 1, hostname=n, is_learner=n in learners) for i, n in enumerate(names)]
        self.dead = set(dead)
        self.removed = []

    def members(self):
        return list(self.list)

    def health(self, members):
        return dict((m['id'], None if m['hostname'] in self.dead else {'errors': []}) for m in members)

    def remove(self, member_id):
        self.removed.append(member_id)
        self.list = [m for m in self.list if m['id'] != member_id]


def off(uuid, name):
    return True, {'identity': 'ok', 'status': 'stopped', 'vmid': 105}, []


def running(uuid, name):
    return False, {'identity': 'ok', 'status': 'running'}, ['Proxmox reads VM 105 on pve2 as running now']


def params(**kw):
    p = dict(node='worker-new-02', role='worker', old_uuid=OLD)
    p.update(kw)
    return p


def test_dead_worker_node_is_deleted_after_the_power_proof_and_the_old_vm_retired():
    k8s = K8s({'worker-new-02': node(OLD, ready=False)})
    retired = []
    out = prepare(params(new_uuid=NEW), k8s, lambda u, n: (True, dict(vmid=105, pve_node='pve2'), []),
                  retire=lambda *a: retired.append(a))
    assert out['actions'] == ['delete_node', 'retire_old_vm'] and out['changed'] is True
    assert k8s.deleted == ['worker-new-02'] and 'worker-new-02' not in k8s.nodes
    assert retired == [(105, 'pve2', NEW)]
    # Rerun before the replacement joined: the Node is gone and the VM retired already: nothing left to do.
    out = prepare(params(new_uuid=NEW), k8s, lambda u, n: (True, dict(vmid=105, pve_node='pve2', retired=True), []),
                  retire=lambda *a: retired.append(a))
    assert out['changed'] is False and len(retired) == 1


def test_refused_while_the_old_vm_may_run_and_nothing_is_touched():
    k8s = K8s({'worker-new-02': node(OLD, ready=False)})
    with pytest.raises(Refused, match='may still run: Proxmox reads VM 105'):
        prepare(params(), k8s, running)
    assert k8s.deleted == []


def test_rerun_after_the_replacement_joined_does_nothing():
    k8s = K8s({'worker-new-02': node(NEW)}, volumes=[])
    out = prepare(params(), k8s, running)  # the power check is not even needed
    assert out['changed'] is False and out['replaced'] is True and k8s.deleted == []


def test_check_mode_is_the_plan():
    k8s = K8s({'cp-02': node(OLD, ready=False)})
    etcd = Etcd(['cp-01', 'cp-02', 'cp-03'], dead=['cp-02'])
    out = prepare(params(node='cp-02', role='controlplane'), k8s, off, etcd=etcd, check_mode=True)
    assert out['actions'] == ['etcd_remove_member', 'delete_node']
    assert etcd.removed == [] and k8s.deleted == []


def test_dead_control_plane_member_removed_first_with_quorum():
    k8s = K8s({'cp-02': node(OLD, ready=False)})
    etcd = Etcd(['cp-01', 'cp-02', 'cp-03'], dead=['cp-02'])
    out = prepare(params(node='cp-02', role='controlplane'), k8s, off, etcd=etcd)
    assert etcd.removed == [2] and k8s.deleted == ['cp-02']
    assert out['etcd_removed'] == '%016x' % 2 and '2 of 2 remaining voters healthy' in out['quorum_check']


def test_no_removal_without_quorum():
    k8s = K8s({'cp-02': node(OLD, ready=False)})
    etcd = Etcd(['cp-01', 'cp-02', 'cp-03'], dead=['cp-02', 'cp-03'])
    with pytest.raises(Refused, match='leaves 2 voting member'):
        prepare(params(node='cp-02', role='controlplane'), k8s, off, etcd=etcd)
    assert etcd.removed == [] and k8s.deleted == []


def test_the_dead_member_never_counts_as_healthy_even_if_it_answers():
    # A member that still answers (a partition) counts as dead for the rule: 3 voters, the target and one other down.
    k8s = K8s({})
    etcd = Etcd(['cp-01', 'cp-02', 'cp-03'], dead=['cp-03'])
    with pytest.raises(Refused):
        prepare(params(node='cp-02', role='controlplane'), k8s, off, etcd=etcd)


def test_verify_waits_for_ready_etcd_and_longhorn():
    k8s = K8s({'cp-02': node(NEW)}, volumes=[{'metadata': {'name': 'pvc-1'},
                                              'status': {'state': 'attached', 'robustness': 'degraded'}}])
    etcd = Etcd(['cp-01', 'cp-03', 'cp-02'], learners=['cp-02'])
    t = [0.0]

    def sleep(s):
        t[0] += s
        if t[0] > 10:
            etcd.list[2]['is_learner'] = False
        if t[0] > 20:
            k8s.volumes[0]['status']['robustness'] = 'healthy'
    state = verify(dict(node='cp-02', role='controlplane', new_uuid=NEW, timeout=60, poll_interval=5), k8s, etcd,
                   sleep=sleep, clock=lambda: t[0])
    assert state['done'] and state['etcd_members'] == ['cp-01', 'cp-02', 'cp-03'] and t[0] > 20
    once = verify(dict(node='cp-02', role='controlplane', new_uuid='other', once=True), k8s, etcd)
    assert once['done'] is False
    began = t[0]
    with pytest.raises(Refused, match='not complete within 10s: .*node_ready'):
        verify(dict(node='cp-02', role='worker', new_uuid='other', timeout=10, poll_interval=5), k8s,
               sleep=sleep, clock=lambda: t[0])
    assert t[0] - began == 10   # polls at 0, 5 and 10 s, then it gives up


def test_verify_without_longhorn_installed():
    k8s = K8s({'worker-new-02': node(NEW)}, volumes=None)
    state = verify(dict(node='worker-new-02', role='worker', new_uuid=NEW, timeout=5), k8s)
    assert state['done'] and state['longhorn'] == 'not installed'
