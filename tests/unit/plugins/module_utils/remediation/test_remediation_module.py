"""remediation/module.py and the claim views: the wait for Ready (with a clock), view/predict, input checks."""

from __future__ import annotations

from ansible_collections.tazlab.resilience.plugins.module_utils.remediation.claim import predict, view
from ansible_collections.tazlab.resilience.plugins.module_utils.remediation.module import (
    check_claim_options, check_plan_options, wait_until_ready,
)
from ansible_collections.tazlab.resilience.plugins.module_utils.remediation.plan import REMEDIATION_TAINT, PlanError

import pytest


def node(ready):
    return {'metadata': {'name': 'w1'}, 'spec': {},
            'status': {'conditions': [{'type': 'Ready', 'status': 'True' if ready else 'False'}]}}


class Clock(object):
    def __init__(self):
        self.now = 100.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


class Service(object):
    def __init__(self, answers):
        self.answers = list(answers)
        self.reads = 0

    def read(self, name):
        self.reads += 1
        return self.answers.pop(0), None


def test_a_ready_node_is_not_read_again():
    clock = Clock()
    service = Service([])
    waited, got = wait_until_ready(service, 'w1', node(True), 60, 2, sleep=clock.sleep, clock=clock)
    assert waited == 0 and got['status']['conditions'][0]['status'] == 'True' and service.reads == 0


def test_waits_for_ready_at_the_poll_interval():
    clock = Clock()
    service = Service([node(False), node(True)])
    waited, got = wait_until_ready(service, 'w1', node(False), 60, 2, sleep=clock.sleep, clock=clock)
    assert waited == 4 and clock.sleeps == [2, 2] and service.reads == 2
    assert got['status']['conditions'][0]['status'] == 'True'


def test_not_ready_in_time_is_none_with_the_last_read():
    clock = Clock()
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
    assert predict(before, steps, 'awx', run='job-1') == {'remediation_taint': True, 'unschedulable': True,
                                                           'lease_holder': 'awx', 'lease_run': 'job-1'}
    released = predict(predict(before, steps, 'awx', 'job-1'),
                       [{'action': 'remove_taint'}, {'action': 'uncordon'}, {'action': 'delete_lease'}], 'awx')
    assert released == before


def test_input_checks():
    assert check_claim_options({'actor': '  '}) == ['actor must not be empty']
    assert check_claim_options({'actor': 'awx'}) == []
    assert check_plan_options({'unhealthy_seconds': 300, 'max_unhealthy': None, 'min_healthy': None}) == []
    with pytest.raises(PlanError):
        check_plan_options({'unhealthy_seconds': 300, 'max_unhealthy': 'lots', 'min_healthy': None})
