"""remediation/module.py and the claim views: the wait for Ready (with a clock), view/predict, input checks."""

from __future__ import annotations

from ansible.module_utils.testing import patch_module_args
from fake_clock import FakeClock

from ansible_collections.tazlab.resilience.plugins.module_utils.remediation.claim import predict, view
from ansible_collections.tazlab.resilience.plugins.module_utils.remediation.module import (
    check_claim_options, check_plan_options, wait_until_ready,
)
from ansible_collections.tazlab.resilience.plugins.module_utils.remediation.plan import REMEDIATION_TAINT, PlanError

import pytest


def node(ready):
    return {'metadata': {'name': 'w1'}, 'spec': {},
            'status': {'conditions': [{'type': 'Ready', 'status': 'True' if ready else 'False'}]}}


class Service(object):
    def __init__(self, answers):
        self.answers = list(answers)
        self.reads = 0

    def read(self, name):
        self.reads += 1
        return self.answers.pop(0), None


def test_a_ready_node_is_not_read_again():
    clock = FakeClock(100.0)
    service = Service([])
    waited, got = wait_until_ready(service, 'w1', node(True), 60, 2, sleep=clock.sleep, clock=clock)
    assert waited == 0 and got['status']['conditions'][0]['status'] == 'True' and service.reads == 0


def test_waits_for_ready_at_the_poll_interval():
    clock = FakeClock(100.0)
    service = Service([node(False), node(True)])
    waited, got = wait_until_ready(service, 'w1', node(False), 60, 2, sleep=clock.sleep, clock=clock)
    assert waited == 4 and clock.sleeps == [2, 2] and service.reads == 2
    assert got['status']['conditions'][0]['status'] == 'True'


def test_not_ready_in_time_is_none_with_the_last_read():
    clock = FakeClock(100.0)
    service = Service([node(False)] * 10)
    waited, got = wait_until_ready(service, 'w1', node(False), 5, 2, sleep=clock.sleep, clock=clock)
    assert waited is None and got['status']['conditions'][0]['status'] == 'False'
    assert sum(clock.sleeps) == 5   # the last sleep is cut at the deadline


def test_view_and_predict_of_a_claim():
    tainted = {'spec': {'unschedulable': True, 'taints': [{'key': REMEDIATION_TAINT, 'effect': 'NoExecute'}]}}
    assert view(tainted, None, 0) == {'remediation_taint': True, 'unschedulable': True, 'lease_holder': None,
                                      'lease_run': None}
    before = view({'spec': {}}, None, 0)
    steps = [{'action': 'create_lease'}, {'action': 'add_taint'}, {'action': 'cordon'}]
    claimed = predict(before, steps, 'awx', run='job-1')
    assert claimed == {'remediation_taint': True, 'unschedulable': True, 'lease_holder': 'awx', 'lease_run': 'job-1'}
    released = predict(predict(before, steps, 'awx', 'job-1'),
                       [{'action': 'remove_taint'}, {'action': 'uncordon'}, {'action': 'delete_lease'}], 'awx')
    assert released == before


def test_input_checks():
    assert check_claim_options({'actor': '  '}) == ['actor must not be empty']
    assert check_claim_options({'actor': 'awx'}) == []
    assert check_plan_options({'unhealthy_seconds': 300, 'max_unhealthy': None, 'min_healthy': None}) == []
    with pytest.raises(PlanError):
        check_plan_options({'unhealthy_seconds': 300, 'max_unhealthy': 'lots', 'min_healthy': None})


class LeasesApi(object):
    def __init__(self, by_namespace):
        self.by_namespace = by_namespace

    def list_namespaced_lease(self, namespace, label_selector=None):
        return self.by_namespace.get(namespace)


class Core(object):
    def __init__(self, nodes):
        self.nodes = nodes

    def list_node(self):
        return self.nodes


class ReadClient(object):
    """The K8sClient surface read_cluster uses: call/items, core, coordination, server_time (set per answer)."""

    def __init__(self, nodes, leases, dates):
        self.core = Core(nodes)
        self.coordination = LeasesApi(leases)
        self.dates = list(dates)
        self.server_time = None
        self.calls = []

    def call(self, what, func, **kwargs):
        self.calls.append(what)
        answer = func(**kwargs)
        if answer is None:
            from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.errors import K8sError
            raise K8sError('not_found', what + ': not found', status=404)
        self.server_time = self.dates.pop(0)
        return answer

    @staticmethod
    def items(answer):
        return answer['items']


def lease(name, holder, renewed, run=None):
    from ansible_collections.tazlab.resilience.plugins.module_utils.remediation.claim import micro_time
    md = {'name': name}
    if run:
        md['annotations'] = {'remediation.tazlab.io/run': run}
    return {'metadata': md, 'spec': {'holderIdentity': holder, 'leaseDurationSeconds': 3600,
                                     'renewTime': micro_time(renewed)}}


def test_read_cluster_uses_the_servers_clock_of_the_lease_list():
    from ansible_collections.tazlab.resilience.plugins.module_utils.remediation.module import read_cluster
    client = ReadClient({'items': [node(True)]},
                        {'kube-system': {'items': [lease('tazlab-remediation-w1', 'awx', 1000.0),
                                                   lease('other', 'x', 1000.0)]},
                         'kube-node-lease': {'items': [lease('w1', 'w1', 1000.0)]}},
                        dates=[900.0, 1500.0, 9999.0])
    nodes, (claims, runs), now, kubelet = read_cluster(client, 'kube-system')
    assert now == 1500.0   # the lease list's answer, not the later node-lease list
    assert claims == {'w1': 'awx'} and runs == {'w1': None} and list(kubelet) == ['w1']
    assert client.calls == ['list nodes', 'list remediation leases', 'list node leases']


def test_read_cluster_without_the_lease_namespace_keeps_the_node_lists_clock():
    from ansible_collections.tazlab.resilience.plugins.module_utils.remediation.module import read_cluster
    client = ReadClient({'items': [node(True)]}, {}, dates=[900.0])
    nodes, (claims, runs), now, kubelet = read_cluster(client, 'kube-system')
    assert now == 900.0 and claims == {} and kubelet == {}


def tainted(name, uuid):
    return {'metadata': {'name': name}, 'spec': {'taints': [{'key': REMEDIATION_TAINT, 'effect': 'NoSchedule'}]},
            'status': {'conditions': [{'type': 'Ready', 'status': 'False',
                                       'lastTransitionTime': '2026-01-25T20:00:00Z'}],
                       'nodeInfo': {'systemUUID': uuid}}}


class PlanRun(object):
    """The ModuleRun surface run_remediation_plan uses: params (parsed by the module's argument spec), warn."""

    def __init__(self, params):
        self.params, self.warnings, self.check_mode = params, [], False

    def warn(self, message):
        self.warnings.append(message)


def plan_module(monkeypatch, args):
    """(result, warnings) of remediation_plan's call on w1 (Ready), w2 and w3 (in remediation, w3 held by
    awx-other), with the module's own argument parsing."""
    from ansible.module_utils.basic import AnsibleModule
    from ansible_collections.tazlab.resilience.plugins.module_utils.k8s import client as k8s_client
    from ansible_collections.tazlab.resilience.plugins.module_utils.remediation.module import run_remediation_plan
    from ansible_collections.tazlab.resilience.plugins.modules import remediation_plan

    nodes = {'items': [node(True), tainted('w2', 'U2'), tainted('w3', 'U3')]}
    leases = {'kube-system': {'items': [lease('tazlab-remediation-w3', 'awx-other', 1769371000.0)]},
              'kube-node-lease': {'items': []}}
    monkeypatch.setattr(k8s_client, 'client_from_params',
                        lambda params: ReadClient(nodes, leases, dates=[1769371200.0] * 3))
    with patch_module_args(dict(args, actor='awx')):
        module = AnsibleModule(argument_spec=remediation_plan.argument_spec(), supports_check_mode=True)
    run = PlanRun(module.params)
    return run_remediation_plan(run), run.warnings


def test_the_module_returns_the_restore_selection_only_when_asked(monkeypatch):
    out, warnings = plan_module(monkeypatch, {})
    assert 'restore' not in out and 'restore_held' not in out
    assert [n['name'] for n in out['in_remediation']] == ['w2', 'w3']
    out, warnings = plan_module(monkeypatch, {'restore': True})
    assert [n['name'] for n in out['restore']] == ['w2'] and out['restore_skipped'] == []
    assert out['restore_held'] == {'w3': 'another actor holds its remediation lease: awx-other'}
    assert warnings == []


def test_restore_nodes_imply_restore_and_an_unknown_name_is_warned_about(monkeypatch):
    out, warnings = plan_module(monkeypatch, {'restore_nodes': ['w3', 'w9', 'w1']})
    assert out['changed'] is False
    assert out['restore'] == [] and list(out['restore_held']) == ['w3']
    assert out['restore_skipped'] == [{'node': 'w9', 'reason': 'not_found'},
                                      {'node': 'w1', 'reason': 'not_in_remediation'}]
    assert warnings == ['restore_nodes: the cluster has no node named w9; nothing is restored for it']
