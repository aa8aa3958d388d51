"""The safety matrix (issue 13): hostile and unlucky cases on the lab twin, THE ONE RULE checked after each.

Every case runs the real runbook (playbooks/dr_recover.yml through ansible-playbook) or the real modules
against the twin, then asserts the invariant with safety_lab.Invariant: no node whose VM is running has the
out-of-service taint, lost a VolumeAttachment, or had a pod force-deleted.
"""

from __future__ import annotations

import time

import pytest

from ansible_collections.tazlab.resilience.plugins.modules import csi_force_detach

from k8s_lab import TIME_SCALE, TRAEFIK, Lab, ready_since, real, run_module
from safety_lab import OOS, Invariant, playbook, start_playbook, timeline, vm_of

pytestmark = pytest.mark.lab_world(time_scale=TIME_SCALE)
RECOVER = 'playbooks/dr_recover.yml'
FAST = {'disaster_recovery_unhealthy_seconds': 0, 'disaster_recovery_wait_timeout': 60,
        'disaster_recovery_fence_stop_timeout': 30}


@pytest.fixture
def lab(lab_world):
    return Lab(lab_world)


def partition(lab, node):
    lab.handle.fault('partition', node)
    lab.wait(lambda: lab.node_ready(node) != 'True', 120, 'partitioned node NotReady')


def uuid_of(lab, node):
    return lab.get('nodes', None, node)['status']['nodeInfo']['systemUUID']


def other_host(lab, vm):
    return next(h for h in lab.world.proxmox.pve_nodes if h != vm.node)


def add_twin_vm(lab, vmid, name, host, uuid, status='stopped'):
    """A second VM in the twin's Proxmox (a clone, a restored backup, a test VM) carrying `uuid`."""
    def add():
        return lab.world.proxmox.pve.add_vm(vmid, name, node=host, status=status,
                                            config={'smbios1': 'uuid={0}'.format(uuid.lower()), 'name': name,
                                                    'memory': 2048, 'cores': 2})
    return lab.on_loop(add)


def task_outcome(stdout, task):
    """The first word of the line that follows the TASK header naming `task` (ok, changed, skipping, ...)."""
    lines = stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith('TASK [') and task in line)
    return next(line for line in lines[at + 1:] if line.strip()).split(':')[0]


def refused_without_writes(lab, tmp_path, before, node, words):
    tl = timeline(tmp_path)
    assert [e['step'] for e in tl] == ['detect'], tl
    refused = tl[0]['detail']['refused']
    assert [r['node'] for r in refused] == [node], refused
    for word in words:
        assert word in refused[0]['reason'], refused[0]['reason']
    assert lab.writes_since(before) == {}
    assert OOS not in lab.taints(node) and 'remediation.tazlab.io/fencing' not in lab.taints(node)
    return refused[0]['reason']


# --------------------------------------------------------------------------------------- identity

def test_unsafe_1_duplicate_vm_same_name_and_uuid_is_refused(lab, tmp_path):
    """A stopped VM (vmid 100, lower than the real one) on another host with the node's name and SMBIOS UUID:
    matching by name kept the lowest vmid and fenced the stopped twin, then freed the running node."""
    node = 'worker-new-03'
    real_vm = vm_of(lab, node)[0]
    add_twin_vm(lab, 100, node, other_host(lab, real_vm), uuid_of(lab, node))
    inv = Invariant(lab)
    partition(lab, node)
    before = lab.requests()
    proc = playbook(lab, RECOVER, tmp_path, FAST)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    expected = ['2 VMs carry the SMBIOS UUID', '100 on', '{0} on {1}'.format(real_vm.vmid, real_vm.node)]
    reason = refused_without_writes(lab, tmp_path, before, node, expected)
    assert real_vm.status == 'running'
    inv.check()
    print('\nrefused: ' + reason)


def test_duplicate_uuid_with_another_name_is_refused(lab, tmp_path):
    node = 'worker-new-03'
    real_vm = vm_of(lab, node)[0]
    add_twin_vm(lab, 900, 'restored-backup', other_host(lab, real_vm), uuid_of(lab, node))
    inv = Invariant(lab)
    partition(lab, node)
    before = lab.requests()
    proc = playbook(lab, RECOVER, tmp_path, FAST)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    refused_without_writes(lab, tmp_path, before, node, ['2 VMs carry the SMBIOS UUID', '900 on'])
    inv.check()


def test_same_name_other_uuid_is_not_taken_for_the_node(lab, tmp_path):
    """A stopped VM named like a HEALTHY node but with another UUID: the node is not claimed, cordoned or
    called powered_off (matching by name did that)."""
    node = 'worker-new-02'
    real_vm = vm_of(lab, node)[0]
    add_twin_vm(lab, 100, node, other_host(lab, real_vm), '00000000-0000-4000-8000-000000000100')
    inv = Invariant(lab)
    before = lab.requests()
    proc = playbook(lab, RECOVER, tmp_path, FAST)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    tl = timeline(tmp_path)
    assert [e['step'] for e in tl] == ['detect'] and tl[0]['detail']['remediate'] == []
    assert lab.writes_since(before) == {}
    assert not lab.get('nodes', None, node)['spec'].get('unschedulable')
    inv.check()


def test_renamed_vm_is_found_by_uuid_and_fenced(lab, tmp_path):
    """The node's VM renamed in Proxmox (through the API, as a person would): the runbook still finds it by the
    SMBIOS UUID, fences that VM and no other, and Traefik comes back elsewhere."""
    from proxmoxer import ProxmoxAPI
    node = lab.traefik_node()
    vm = vm_of(lab, node)[0]
    px = lab.world.proxmox
    api = ProxmoxAPI(px.host, port=px.port, user=px.user, token_name=px.token_name, token_value=px.token_secret,
                     verify_ssl=px.cafile)
    api.nodes(vm.node).qemu(vm.vmid).config.put(name='old-hardware-17')
    assert vm.name == 'old-hardware-17' and vm.config['name'] == 'old-hardware-17'
    others = dict((v.vmid, v.status) for v in lab.world.proxmox.pve.vms if v.vmid != vm.vmid)
    inv = Invariant(lab)
    partition(lab, node)
    proc = playbook(lab, RECOVER, tmp_path, dict(FAST, disaster_recovery_wait_timeout=real(300)))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    tl = timeline(tmp_path)
    assert [e['step'] for e in tl] == ['detect', 'claim', 'fence', 'free_and_verify'], tl
    assert tl[2]['detail']['vmid'] == vm.vmid and tl[2]['detail']['fenced'] is True, tl[2]['detail']
    assert vm.status == 'stopped'
    assert dict((v.vmid, v.status) for v in lab.world.proxmox.pve.vms if v.vmid != vm.vmid) == others
    running = lab.running_pods('traefik', TRAEFIK)
    assert len(running) == 1 and running[0]['spec']['nodeName'] != node
    inv.check()


# ---------------------------------------------------------------------------------- proofs

def fence(lab, node, action='off'):
    failed, result = lab.fence(node, action=action)
    assert not failed, result
    return result


def test_unsafe_2_stale_proof_from_an_earlier_incident_is_refused(lab):
    """A genuine proof of an earlier fence, reused after the node was restored and then partitioned."""
    node = lab.traefik_node()
    proof = fence(lab, node)
    assert proof['fenced'] is True
    lab.handle.fault('power-on', node)
    lab.wait(lambda: lab.node_ready(node) == 'True', 300, 'node Ready again')
    inv = Invariant(lab)
    partition(lab, node)
    before = lab.requests()
    failed, result = run_module(csi_force_detach, lab.force_detach_args(node, proof))
    assert failed and result['changed'] is False
    assert any('running now' in r for r in result['refused']), result['refused']
    assert result['power_check']['confirmed_off'] is False and result['power_check']['status'] == 'running'
    assert lab.writes_since(before) == {}
    inv.check()


def test_unsafe_3_hand_written_proof_is_refused(lab):
    node = lab.traefik_node()
    inv = Invariant(lab)
    partition(lab, node)
    proof = {'fenced': True, 'smbios_uuid': uuid_of(lab, node)}
    before = lab.requests()
    failed, result = run_module(csi_force_detach, lab.force_detach_args(node, proof))
    assert failed and any('running now' in r for r in result['refused']), result['refused']
    # without Proxmox access a proof alone is refused too
    failed, result = run_module(csi_force_detach, lab.force_detach_args(node, proof, proxmox_auth={}))
    assert failed and any('no Proxmox access' in r for r in result['refused']), result['refused']
    assert lab.writes_since(before) == {}
    assert OOS not in lab.taints(node)
    inv.check()


# -------------------------------------------------------------------------------- STONITH

def test_partition_is_fenced_and_traefik_comes_back(lab, tmp_path):
    """Partition -> NotReady -> the runbook hard-stops the VM through Proxmox, proves it off, frees the volume."""
    node = lab.traefik_node()
    inv = Invariant(lab)
    t0, w0 = lab.now(), time.monotonic()
    lab.handle.fault('partition', node)
    lab.wait(lambda: lab.node_ready(node) != 'True', 120, 'partitioned node NotReady')
    proc = playbook(lab, RECOVER, tmp_path, dict(FAST, disaster_recovery_wait_timeout=real(300)))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    tl = timeline(tmp_path)
    assert [e['step'] for e in tl] == ['detect', 'claim', 'fence', 'free_and_verify'], tl
    assert tl[2]['detail']['power_state_before'] == 'running' and tl[2]['detail']['fenced'] is True
    # a worker: the etcd guard has nothing to decide, so etcd is not asked (issue 21)
    etcd = tl[0]['detail']['etcd']
    assert etcd['source'] == 'not_asked' and etcd['needed'] is False and 'not needed' in etcd['note'], etcd
    assert task_outcome(proc.stdout, 'Ask etcd through Talos') == 'skipping', proc.stdout[-3000:]
    assert [vm.status for vm in vm_of(lab, node)] == ['stopped']
    running = lab.running_pods('traefik', TRAEFIK)
    assert len(running) == 1 and running[0]['spec']['nodeName'] != node
    back = ready_since(running[0]) - t0
    inv.check()
    # Simulated seconds include ansible-playbook's own real-time overhead multiplied by 1/TIME_SCALE.
    print('\nSTONITH: partition -> Traefik Running on {0}: {1:.1f} simulated s ({2:.1f} real s of which the '
          'runbook ran {3:.1f} real s at {4} real s per simulated s)'.format(
              running[0]['spec']['nodeName'], back, time.monotonic() - w0, tl[-1]['wall_elapsed'], TIME_SCALE))


def test_partition_with_its_pve_host_offline_is_refused(lab, tmp_path):
    node = lab.traefik_node()
    vm = vm_of(lab, node)[0]
    inv = Invariant(lab)
    partition(lab, node)
    lab.handle.fault('host-offline', vm.node)
    before = lab.requests()
    proc = playbook(lab, RECOVER, tmp_path, FAST)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    tl = timeline(tmp_path)
    assert [e['step'] for e in tl] == ['detect'], tl
    reasons = {r['node']: r['reason'] for r in tl[0]['detail']['refused']}
    assert 'offline' in reasons[node] and 'no VM carries' not in reasons[node], reasons
    assert lab.writes_since(before) == {}
    assert OOS not in lab.taints(node)
    inv.check()


def test_fence_running_false_leaves_the_partitioned_node_alone(lab, tmp_path):
    node = 'worker-new-03'
    inv = Invariant(lab)
    partition(lab, node)
    before = lab.requests()
    proc = playbook(lab, RECOVER, tmp_path, dict(FAST, disaster_recovery_fence_running=False))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    refused_without_writes(lab, tmp_path, before, node, ['fence_running=false'])
    assert [vm.status for vm in vm_of(lab, node)] == ['running']
    inv.check()


# ------------------------------------------------------------------------ power unprovable

def test_partition_with_proxmox_quorum_lost_is_refused(lab, tmp_path):
    node = lab.traefik_node()
    inv = Invariant(lab)
    partition(lab, node)
    lab.handle.fault('pve-quorum-loss')
    before = lab.requests()
    proc = playbook(lab, RECOVER, tmp_path, FAST)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    refused_without_writes(lab, tmp_path, before, node, ['no quorum'])
    assert [vm.status for vm in vm_of(lab, node)] == ['running']
    inv.check()


def test_hanging_stop_fails_the_fence_and_frees_nothing(lab, tmp_path):
    """The stop task never finishes (QEMU stuck): the fence is not confirmed, the run stops before freeing,
    and the claim (lease, NoSchedule taint, cordon) is what is left: the safe state."""
    node = lab.traefik_node()
    inv = Invariant(lab)
    lab.handle.fault('hanging-stop', node)
    partition(lab, node)
    proc = playbook(lab, RECOVER, tmp_path, dict(FAST, disaster_recovery_fence_stop_timeout=3))
    assert proc.returncode != 0
    tl = timeline(tmp_path)
    assert [e['step'] for e in tl][:2] == ['detect', 'claim'] and 'free_and_verify' not in [e['step'] for e in tl]
    assert [vm.status for vm in vm_of(lab, node)] == ['running']
    assert OOS not in lab.taints(node) and 'remediation.tazlab.io/fencing' in lab.taints(node)
    # the failure report: what failed, what is left, why that is the safe state
    doc = __import__('json').loads((tmp_path / 'dr-timeline.json').read_text())
    failure = doc['timeline'][-1]
    assert failure['step'] == 'failed' and doc['finished'] is True
    left = failure['detail']['left']
    assert left['fenced'] is False and left['remediation_taint_and_cordon'] is True
    assert left['out_of_service_taint'] is False and 'not proven off' in failure['detail']['why_safe']
    inv.check()


def test_etcd_guard_asks_etcd_a_control_plane_with_a_dead_member_changes_the_answer(lab, tmp_path):
    """cp-03's VM runs but its etcd member lost its data (etcd cannot start there); cp-01 is partitioned (its
    VM runs). Counting control planes whose VM runs (Talos not configured) sees 3 of 3 etcd members up and
    would fence cp-01 (shown in check mode, nothing written). Asked through Talos, etcd tells otherwise: cp-03
    answers that etcd does not run, cp-02 that it has no leader (cut off from cp-01, it is alone), cp-01 does
    not answer: no endpoint gives the member list, and no control plane is fenced."""
    from tazlab_lab import faults

    hit = lab.handle.call(faults.lose_etcd_quorum(lab.world, members=1))
    assert hit == ['cp-03']
    inv = Invariant(lab)
    partition(lab, 'cp-01')
    before = lab.requests()
    (tmp_path / 'counted').mkdir()
    counted = playbook(lab, RECOVER, tmp_path / 'counted',
                       dict(FAST, disaster_recovery_talos={}, disaster_recovery_nodes=['cp-01']), '--check')
    assert counted.returncode == 0, counted.stdout[-3000:] + counted.stderr[-2000:]
    detect = timeline(tmp_path / 'counted')[0]['detail']
    assert detect['remediate'] == ['cp-01'] and detect['etcd']['source'] == 'counted_vm_power', detect
    assert detect['etcd']['up'] == 3
    assert lab.writes_since(before) == {}
    proc = playbook(lab, RECOVER, tmp_path, dict(FAST, disaster_recovery_nodes=['cp-01']))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    etcd = timeline(tmp_path)[0]['detail']['etcd']
    assert etcd['source'] == 'unknown', etcd  # a control plane is a candidate: etcd asked, the plan made again
    assert task_outcome(proc.stdout, 'Ask etcd through Talos') == 'ok', proc.stdout[-3000:]
    assert task_outcome(proc.stdout, "Plan the remediation again with etcd's answer") == 'ok', proc.stdout[-3000:]
    assert 'etcd is not running on this node' in etcd['error'] and 'no leader' in etcd['error'], etcd['error']
    refused_without_writes(lab, tmp_path, before, 'cp-01',
                           ['etcd could not be asked through Talos', 'not fenced without knowing'])
    assert [vm.status for vm in vm_of(lab, 'cp-01')] == ['running']
    inv.check()
    print('\netcd asked: {0}'.format(etcd['error']))


def test_etcd_guard_a_dead_control_plane_asks_etcd_and_is_recovered_with_its_answer(lab, tmp_path):
    """cp-03 loses power: the first plan (etcd deferred) refuses it until etcd is asked; etcd is asked through
    Talos (cp-01 and cp-02 healthy: 2 of 3 up, quorum 2) and the plan made again with its answer recovers cp-03."""
    inv = Invariant(lab)
    lab.handle.fault('power-loss', 'cp-03')
    proc = playbook(lab, RECOVER, tmp_path, dict(FAST, disaster_recovery_nodes=['cp-03'],
                                                 disaster_recovery_wait_timeout=real(300)))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert 'duplicate mapping key' not in proc.stderr, proc.stderr
    assert task_outcome(proc.stdout, 'Ask etcd through Talos') == 'ok', proc.stdout[-3000:]
    assert task_outcome(proc.stdout, "Plan the remediation again with etcd's answer") == 'ok', proc.stdout[-3000:]
    tl = timeline(tmp_path)
    assert [e['step'] for e in tl] == ['detect', 'claim', 'fence', 'free_and_verify'], tl
    detect = tl[0]['detail']
    assert detect['remediate'] == ['cp-03'] and detect['reasons'] == {'cp-03': 'powered_off'}, detect
    assert detect['refused'] == [], detect
    etcd = detect['etcd']
    assert etcd['source'] == 'talos' and etcd['up'] == 2 and etcd['quorum'] == 2, etcd
    assert etcd['control_planes']['cp-03'] == 'VM stopped', etcd
    assert [vm.status for vm in vm_of(lab, 'cp-03')] == ['stopped']
    inv.check()


# ------------------------------------------------------------------- interruptions, concurrency

def test_killed_between_fence_and_free_leaves_a_timeline_and_the_rerun_converges(lab, tmp_path):
    """The run is SIGKILLed right after its fence was written to the timeline (written as the run goes): the
    VM is off, the node claimed. A rerun finds the VM stopped, keeps its own claim, proves the power state
    again and frees the volume."""
    import json
    import os
    import signal
    import subprocess
    from safety_lab import BIN, ROOT
    node = lab.traefik_node()
    inv = Invariant(lab)
    partition(lab, node)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'), ANSIBLE_NOCOLOR='1',
               ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, 'collections'), PATH=BIN + os.pathsep + os.environ['PATH'])
    first = tmp_path / 'first'
    first.mkdir()
    extra = json.dumps(dict(FAST, disaster_recovery_timeline_dir=str(first), disaster_recovery_wait_timeout=real(300)))
    proc = subprocess.Popen([os.path.join(BIN, 'ansible-playbook'), RECOVER, '-i', lab.world.paths()['inventory'],
                             '-e', extra], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    path = first / 'dr-timeline.json'
    deadline = time.monotonic() + 120
    steps = []
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            steps = [e['step'] for e in json.loads(path.read_text())['timeline']]
        except (OSError, ValueError):
            steps = []
        if 'fence' in steps:
            break
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    doc = json.loads(path.read_text())
    assert doc['finished'] is False and [e['step'] for e in doc['timeline']][:3] == ['detect', 'claim', 'fence'], doc
    assert [vm.status for vm in vm_of(lab, node)] == ['stopped']
    inv.check()
    rerun = playbook(lab, RECOVER, tmp_path, dict(FAST, disaster_recovery_wait_timeout=real(300)))
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-2000:]
    tl = timeline(tmp_path)
    assert [e['step'] for e in tl] == ['detect', 'claim', 'fence', 'free_and_verify'], tl
    assert tl[0]['detail']['reasons'][node] == 'powered_off'
    running = lab.running_pods('traefik', TRAEFIK)
    assert len(running) == 1 and running[0]['spec']['nodeName'] != node
    inv.check()


def run_texts(out):
    """Everything a run reported about itself: its timeline (refusals, failures) as text."""
    path = out / 'dr-timeline.json'
    return path.read_text() if path.exists() else ''


@pytest.mark.parametrize('actors', [('run-a', 'run-b'), ('tazlab-dr_recover', 'tazlab-dr_recover')],
                         ids=['two-actors', 'same-actor'])
def test_two_concurrent_runs(lab, tmp_path, actors):
    """Two runs started together on a partitioned node. Exactly one acts (claims, fences, frees); the other
    is refused by the lease: another actor's, or, for two runs of the SAME actor, the run identity on the
    lease (host/pid/start of ansible-playbook): it reports that the node is held by the winning run and
    writes nothing (no claim, no fence)."""
    import socket
    node = lab.traefik_node()
    inv = Invariant(lab)
    partition(lab, node)
    procs = {}
    for i, actor in enumerate(actors):
        out = tmp_path / 'run-{0}'.format(i)
        out.mkdir()
        extra = dict(FAST, disaster_recovery_actor=actor, disaster_recovery_wait_timeout=real(300))
        procs[i] = (start_playbook(lab, RECOVER, out, extra), out)
    steps, texts, outputs = {}, {}, {}
    for i, (proc, out) in procs.items():
        outputs[i] = proc.communicate(timeout=600)
        steps[i] = [e['step'] for e in timeline(out)] if (out / 'dr-timeline.json').exists() else []
        texts[i] = run_texts(out)
    acted = [i for i, st in steps.items() if 'free_and_verify' in st]
    assert len(acted) == 1, (steps, [o[0][-3000:] for o in outputs.values()])
    winner, loser = acted[0], 1 - acted[0]
    assert 'claim' not in steps[loser] and 'fence' not in steps[loser], steps
    if actors[0] == actors[1]:
        winner_run = '{0}/{1}/'.format(socket.gethostname(), procs[winner][0].pid)
        assert 'held by run ' + winner_run in texts[loser] or ('taken by {0} run {1}'.format(
            actors[0], winner_run)) in texts[loser], texts[loser][-3000:]
    else:
        assert actors[winner] in texts[loser], texts[loser][-3000:]
    # The winner handed its run's hold back at the end: the claim stays with the actor, no run named on it.
    lease = lab.get('leases.coordination.k8s.io', 'kube-system', 'tazlab-remediation-' + node)
    assert lease['spec']['holderIdentity'] == actors[winner]
    assert 'remediation.tazlab.io/run' not in (lease['metadata'].get('annotations') or {})
    print('\nconcurrent {0}: steps {1}'.format(actors, steps))
    assert [vm.status for vm in vm_of(lab, node)] == ['stopped']
    running = lab.running_pods('traefik', TRAEFIK)
    assert len(running) == 1 and running[0]['spec']['nodeName'] != node
    inv.check()


def test_a_second_run_of_the_same_actor_while_the_first_holds_the_node_writes_nothing(lab, tmp_path):
    """Run A claims the node and is stuck in its fence (the stop hangs). Meanwhile run B of the SAME actor
    (dr_recover) and a dr_restore of the same actor: both report the node held by run A and write nothing
    to the cluster. When A gives up (fence not confirmed: the claim stays, the VM is not freed), it hands its
    hold back and the lease names no run."""
    import json
    import socket
    node = lab.traefik_node()
    inv = Invariant(lab)
    lab.handle.fault('hanging-stop', node)
    partition(lab, node)
    out_a = tmp_path / 'a'
    out_a.mkdir()
    first = start_playbook(lab, RECOVER, out_a, dict(FAST, disaster_recovery_fence_stop_timeout=60))
    run_a = '{0}/{1}/'.format(socket.gethostname(), first.pid)
    lease_name = 'tazlab-remediation-' + node

    def claimed():
        try:
            return 'claim' in [e['step'] for e in timeline(out_a)]
        except (OSError, ValueError):
            return False
    lab.wait(claimed, 1200, 'run A has claimed the node')
    assert (lab.get('leases.coordination.k8s.io', 'kube-system', lease_name)['metadata'].get('annotations') or {}).get(
        'remediation.tazlab.io/run', '').startswith(run_a)
    before = lab.requests()
    second = playbook(lab, RECOVER, tmp_path, FAST)
    restore = playbook(lab, 'playbooks/dr_restore.yml', tmp_path, {})
    assert lab.writes_since(before) == {}
    assert first.poll() is None, 'run A ended before B and the restore were checked: raise its stop timeout'
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-2000:]
    tl = timeline(tmp_path)
    assert [e['step'] for e in tl] == ['detect'], tl
    refused = {r['node']: r['reason'] for r in tl[0]['detail']['refused']}
    assert 'held by run ' + run_a in refused[node], refused
    assert restore.returncode == 0, restore.stdout[-3000:] + restore.stderr[-2000:]
    find = timeline(tmp_path, 'dr_restore-timeline.json')[0]
    assert find['step'] == 'find' and find['detail']['restore'] == [], find
    assert 'held by run ' + run_a in find['detail']['held_by_another_actor'][node], find
    first.communicate(timeout=600)
    assert first.returncode != 0
    doc = json.loads((out_a / 'dr-timeline.json').read_text())
    assert doc['timeline'][-1]['step'] == 'failed' and doc['timeline'][-1]['detail']['left']['fenced'] is False
    lease = lab.get('leases.coordination.k8s.io', 'kube-system', lease_name)
    assert lease['spec']['holderIdentity'] == 'tazlab-dr_recover'
    assert 'remediation.tazlab.io/run' not in (lease['metadata'].get('annotations') or {})
    assert OOS not in lab.taints(node) and [vm.status for vm in vm_of(lab, node)] == ['running']
    inv.check()


def test_a_rerun_after_a_finished_remediation_changes_nothing(lab, tmp_path):
    """A powered-off worker is remediated; the run hands its hold back (the lease names no run). A second run
    of the same actor (another process: another run identity) takes the hold, finds nothing to do, hands it
    back: no change reported (idempotence, as Molecule's check), and the claim is still the actor's."""
    import re
    node = lab.traefik_node()
    inv = Invariant(lab)
    lab.handle.fault('power-loss', node)
    first = playbook(lab, RECOVER, tmp_path, dict(FAST, disaster_recovery_wait_timeout=real(300)))
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
    lease_name = 'tazlab-remediation-' + node
    lease = lab.get('leases.coordination.k8s.io', 'kube-system', lease_name)
    assert 'remediation.tazlab.io/run' not in (lease['metadata'].get('annotations') or {})
    second = playbook(lab, RECOVER, tmp_path, dict(FAST, disaster_recovery_wait_timeout=real(300)))
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-2000:]
    assert re.search(r'localhost\s+: ok=\d+\s+changed=0\s', second.stdout), second.stdout[-3000:]
    lease = lab.get('leases.coordination.k8s.io', 'kube-system', lease_name)
    assert lease['spec']['holderIdentity'] == 'tazlab-dr_recover'
    assert 'remediation.tazlab.io/run' not in (lease['metadata'].get('annotations') or {})
    inv.check()


# --------------------------------------------------------------------------- Kubernetes API faults

def test_api_faults_5xx_429_and_a_lost_create_answer_are_ridden_out(lab, tmp_path):
    """503s on node patches, 429 + Retry-After and a lease create whose answer is lost after commit: the
    retries ride them out, the create that meets its own lease (409) counts as done, and the run converges."""
    node = lab.traefik_node()
    inv = Invariant(lab)
    partition(lab, node)
    lab.handle.fault('k8s-api', action='status', code=503, verb='patch', path='^/api/v1/nodes/', times=2)
    lab.handle.fault('k8s-api', action='status', code=429, retry_after=1, verb='list', path='/pods$', times=1)
    lab.handle.fault('k8s-api', action='drop-after-commit', verb='create', path='/leases$', times=1)
    lab.handle.fault('k8s-api', action='status', code=409, verb='patch', path='^/api/v1/nodes/', times=1)
    proc = playbook(lab, RECOVER, tmp_path, dict(FAST, disaster_recovery_wait_timeout=real(300)))
    cleared = lab.handle.fault('k8s-api-clear')['cleared']
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert all(f['hits'] == f['times'] for f in cleared), cleared
    tl = timeline(tmp_path)
    assert [e['step'] for e in tl] == ['detect', 'claim', 'fence', 'free_and_verify'], tl
    running = lab.running_pods('traefik', TRAEFIK)
    assert len(running) == 1 and running[0]['spec']['nodeName'] != node
    inv.check()


def test_a_slow_answer_is_a_timeout_not_a_network_fault(lab):
    from ansible_collections.tazlab.resilience.plugins.modules import remediation_plan
    lab.handle.fault('k8s-api', action='delay', secs=3, verb='list', path='^/api/v1/nodes$')
    failed, result = run_module(remediation_plan, dict(lab.k8s_auth(), request_timeout=0.5, api_retry_deadline=2))
    lab.handle.fault('k8s-api-clear')
    assert failed and 'timed out' in result['msg'] and 'network fault' not in result['msg'], result['msg']
    Invariant(lab).check()


# ------------------------------------------------------------------------------------- bad input

def test_bad_input_fails_before_any_write(lab):
    from ansible_collections.tazlab.resilience.plugins.modules import (
        k8s_remediation, longhorn_volume_info, proxmox_vm_status)
    inv = Invariant(lab)
    before = lab.requests()
    failed, result = run_module(longhorn_volume_info, dict(lab.k8s_auth(), namespace='no-such-longhorn'))
    assert failed and 'does not exist' in result['msg']
    failed, result = run_module(k8s_remediation, dict(lab.k8s_auth(), node='worker-new-01', actor='x',
                                                      lease_namespace='no-such-namespace'))
    assert failed and 'does not exist' in result['msg']
    failed, result = run_module(proxmox_vm_status, dict(lab.proxmox_auth(), names=['worker new 01']))
    assert failed and 'names must be VM names' in result['msg']
    assert lab.writes_since(before) == {}
    inv.check()
