"""ansible-rulebook for real (the pinned one, in the JVM) with the collection's node_health source and its
auto_recover rulebook, against the lab world (isolated: its own loopback /24 and ports).

The world runs at TIME_SCALE (twenty simulated seconds per real second): the rulebook's windows are in
simulated seconds, and the source judges them on the API server's clock (the Date headers), so they
close as fast as the cluster's clock says, not at this machine's rate. Nothing but the rulebook acts
after the fault: the tests inject it and watch the twin.
"""

from __future__ import annotations

import json
import os
import sys
import time

import pytest

from k8s_lab import ROOT, TIME_SCALE, Lab, is_running

sys.path.insert(0, os.path.join(ROOT, 'scripts'))
from eda_lab import Rulebook, java_home  # noqa: E402  pylint: disable=wrong-import-position

pytestmark = pytest.mark.lab_world(time_scale=TIME_SCALE)
TRAEFIK = 'app.kubernetes.io/name=traefik'
OOS = 'node.kubernetes.io/out-of-service'


@pytest.fixture(autouse=True)
def _java():
    java_home()  # raises with the install hint when Java 17 is missing: a failure, never a skip


def world_dir(lab_world):
    return os.path.dirname(lab_world.world.paths()['inventory'])


def wait_real(predicate, seconds, what):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError('{0} not reached within {1} real seconds'.format(what, seconds))


def playbook_runs(rulebook):
    """How many runs of a playbook ansible-rulebook started (ansible-runner prints one PLAY RECAP each)."""
    return rulebook.count('PLAY RECAP')


def traefik_elsewhere(lab, dead):
    return [p['spec'].get('nodeName') for p in lab.running_pods('traefik', TRAEFIK) if p['spec'].get('nodeName') != dead]


def taints(lab, node):
    return [t['key'] for t in lab.get('nodes', None, node)['spec'].get('taints') or []]


def vm_status(lab, node):
    vmid = next(s.vmid for s in lab.world.proxmox.specs if s.name == node)
    return lab.world.proxmox.pve.vm(vmid).status


def both_power_losses(lab_world, nodes):
    """Pull both plugs in one turn of the world's loop: no Proxmox answer in between."""
    from tazlab_lab import faults

    async def pull():
        return [await faults.apply(lab_world.world, 'power-loss', n) for n in nodes]
    return lab_world.call(pull())


def test_a_power_loss_is_recovered_by_the_rulebook_alone(lab_world):
    lab = Lab(lab_world)
    dead = 'worker-new-03'
    assert [p['spec']['nodeName'] for p in lab.running_pods('traefik', TRAEFIK)] == [dead]
    with Rulebook(world_dir(lab_world), unhealthy_seconds=60, powered_off_seconds=0) as rulebook:
        t_loss = lab.now()
        lab_world.fault('power-loss', dead)
        where = wait_real(lambda: traefik_elsewhere(lab, dead), 240, 'Traefik Running on another worker')
        t_back = lab.now()
        timeline_path = os.path.join(world_dir(lab_world), 'artifacts', 'dr-timeline-{0}.json'.format(dead))
        wait_real(lambda: playbook_runs(rulebook) >= 1 and os.path.exists(timeline_path), 120, 'the run finished')
        log = rulebook.log()
    assert where and where[0] != dead
    # the source saw it once, the rule started exactly one run, for that node
    assert log.count('node_health: node_unhealthy {0}'.format(dead)) == 1, log[-3000:]
    assert playbook_runs(rulebook) == 1
    timeline = json.load(open(timeline_path))['timeline']
    steps = [e['step'] for e in timeline]
    assert steps[0] == 'detect' and 'free_and_verify' in steps, steps
    assert timeline[0]['detail']['remediate'] == [dead] and timeline[0]['detail']['refused'] == []
    assert vm_status(lab, dead) == 'stopped'    # freed only because proven off, and still off
    assert OOS in taints(lab, dead)
    pods = lab.running_pods('traefik', TRAEFIK)
    assert pods and all(is_running(p) and p['spec']['nodeName'] != dead for p in pods)
    assert t_back > t_loss   # how fast is the benchmark's business (scripts/bench_dr.py --mttr), not a test's


def test_a_flapping_node_triggers_nothing(lab_world):
    lab = Lab(lab_world)
    node = 'worker-new-02'
    seen = 'node_health: {0} unhealthy ('.format(node)
    with Rulebook(world_dir(lab_world), unhealthy_seconds=300, powered_off_seconds=0) as rulebook:
        before = lab.requests()
        lab_world.fault('partition', node)
        lab.wait(lambda: lab.node_ready(node) != 'True', 120, 'partitioned node NotReady')
        # The source judges at its ticks (0.5 real s, 10 simulated s here): heal once it has seen the node go
        # bad, or a blip shorter than a tick may never be seen and the test would prove nothing.
        wait_real(lambda: seen in rulebook.log(), 60, 'the source sees the node unhealthy')
        lab_world.fault('heal', node)
        t_ready = lab.wait(lambda: lab.node_ready(node) == 'True', 120, 'node Ready again')
        # past the window (300 simulated seconds from NotReady) and then some
        lab.wait(lambda: lab.now() > t_ready + 330, 400, 'the window long closed')
        time.sleep(2)  # the source's next ticks
        log = rulebook.log()
    # the source did see it go bad, and saw it come back inside the window
    assert seen in log, log[-3000:]
    assert 'node_health: {0} healthy again'.format(node) in log, log[-3000:]
    assert 'node_health: node_unhealthy' not in log, log[-3000:]
    assert playbook_runs(rulebook) == 0
    assert lab.writes_since(before) == {}     # nothing wrote to the cluster: the source only reads
    assert vm_status(lab, node) == 'running'


def test_two_dead_nodes_are_one_run_that_the_storm_guard_refuses(lab_world):
    lab = Lab(lab_world)
    dead = ['worker-new-02', 'worker-new-03']
    with Rulebook(world_dir(lab_world), unhealthy_seconds=60, powered_off_seconds=0) as rulebook:
        both_power_losses(lab_world, dead)
        wait_real(lambda: 'dr_recover refused' in rulebook.log(), 240, 'the refusal shown by the rulebook')
        time.sleep(3)  # anything else the rulebook would start now would show
        log = rulebook.log()
    assert log.count('node_health: node_unhealthy') == 1, log[-3000:]
    assert playbook_runs(rulebook) == 1
    timeline_path = os.path.join(world_dir(lab_world), 'artifacts', 'dr-timeline-{0}.json'.format(dead[0]))
    timeline = json.load(open(timeline_path))['timeline']
    assert [e['step'] for e in timeline] == ['detect']
    refused = timeline[0]['detail']['refused']
    assert sorted(r['node'] for r in refused) == dead and timeline[0]['detail']['remediate'] == []
    assert all('healthy' in r['reason'] or 'unhealthy' in r['reason'] for r in refused), refused
    assert 'dr_recover refused 2 node(s)' in log
    for node in dead:
        assert OOS not in taints(lab, node)


def test_the_source_survives_dropped_watches_and_410_and_still_reports(lab_world, tmp_path):
    """Only the watches inform this source (no Proxmox): after the API dropped its watch connections and
    answered 410 Gone, it must still see the dead node go NotReady, and still see the other nodes renew
    their leases (a dead lease watch would make every node look silent)."""
    lab = Lab(lab_world)
    dead = 'worker-new-03'
    rulebook_path = tmp_path / 'watch_only.yml'
    rulebook_path.write_text('''
- name: node_health through its watches only
  hosts: localhost
  gather_facts: false
  sources:
    - tazlab.resilience.node_health:
        kubernetes: "{{ tazlab_kubernetes }}"
        unhealthy_seconds: 20
        watch_timeout: 2
  rules:
    - name: Show
      condition: event.type is defined
      action:
        debug:
          msg: "EVENT {{ event.type }} {{ event.node | default(event.source) }} {{ event.problems | default('') }}"
''')
    with Rulebook(world_dir(lab_world), rulebook=str(rulebook_path)) as rulebook:
        lab_world.fault('k8s-api', None, action='drop', verb='watch', path='/api/v1/nodes', times=2)
        lab_world.fault('k8s-api', None, action='status', code=410, verb='watch', path='/leases', times=2)
        cleared = wait_real(lambda: _hits_done(lab_world), 60, 'the source re-watching into the faults')
        lab_world.fault('power-loss', dead)
        wait_real(lambda: 'EVENT node_unhealthy' in rulebook.log(), 120, 'node_unhealthy after the drops')
        t_event = lab.now()
        lab.wait(lambda: lab.now() > t_event + 60, 120, 'a minute more of leases')
        time.sleep(1)
        log = rulebook.log()
    assert all(f['hits'] == f['times'] for f in cleared), cleared
    assert log.count('EVENT node_unhealthy') == 1, log[-3000:]
    assert 'EVENT node_unhealthy {0} '.format(dead) in log
    line = next(x for x in log.splitlines() if 'EVENT node_unhealthy' in x)
    assert 'not_ready' in line or 'lease_silent' in line
    assert 'listing again' in log   # the 410 made it list again
    assert 'EVENT source_degraded' not in log  # two drops are not a blind source (degraded_after 3)


def _hits_done(lab_world):
    api = lab_world.world.kube.api
    faults = [f.describe() for f in api.faults]
    if faults and all(f['hits'] >= f['times'] for f in faults):
        return lab_world.fault('k8s-api-clear')['cleared']
    return None
