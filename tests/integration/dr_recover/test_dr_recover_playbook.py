"""The runbooks as users run them: ansible-playbook against the lab world's inventory."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from k8s_lab import ROOT, TIME_SCALE, Lab

pytestmark = pytest.mark.lab_world(time_scale=TIME_SCALE)
BIN = os.path.dirname(sys.executable)


def playbook(lab, path, tmp_path, *extra):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'), ANSIBLE_NOCOLOR='1',
               ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, 'collections'), PATH=BIN + os.pathsep + os.environ['PATH'])
    inventory = lab.world.paths()['inventory']
    return subprocess.run([os.path.join(BIN, 'ansible-playbook'), path, '-i', inventory, *extra], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600, check=False)


def test_a_playbook_fences_by_kubernetes_node_name(lab_world, tmp_path):
    lab = Lab(lab_world)
    play = tmp_path / 'fence.yml'
    play.write_text('''
- name: Fence worker-new-02 by its Kubernetes name
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/tazlab.resilience.proxmox: "{{ tazlab_proxmox }}"
  tasks:
    - name: Fence
      tazlab.resilience.proxmox_fence:
        k8s_node: worker-new-02
        k8s_auth: "{{ tazlab_kubernetes }}"
        state: "off"
        poll_interval: 0.05
      register: fence
    - name: Keep the proof
      ansible.builtin.copy:
        content: "{{ fence | to_json }}"
        dest: "''' + str(tmp_path / 'proof.json') + '''"
        mode: "0600"
''')
    proc = playbook(lab, str(play), tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    proof = json.loads((tmp_path / 'proof.json').read_text())
    uuid = lab.get('nodes', None, 'worker-new-02')['status']['nodeInfo']['systemUUID']
    assert proof['fenced'] is True and proof['name'] == 'worker-new-02'
    assert proof['smbios_uuid'].lower() == uuid.lower()
    assert lab.world.proxmox.pve.vm(proof['vmid']).status == 'stopped'


def test_dr_recover_leaves_a_partitioned_running_node_alone_when_fencing_running_nodes_is_off(lab_world, tmp_path):
    """Cut off from the network but running: NotReady to Kubernetes, running to Proxmox. With
    disaster_recovery_fence_running false the runbook refuses it: no claim, no fence, no taint, no detach.
    (By default it is fenced: tests/integration/safety/test_safety_matrix.py.)"""
    lab = Lab(lab_world)
    node = 'worker-new-03'
    lab.handle.fault('partition', node)
    lab.wait(lambda: lab.node_ready(node) != 'True', 120, 'partitioned node NotReady')
    vas_before = sorted(v['metadata']['name'] for v in lab.list('volumeattachments.storage.k8s.io')
                        if v['spec']['nodeName'] == node)
    before = lab.requests()
    proc = playbook(lab, 'playbooks/dr_recover.yml', tmp_path, '-e', json.dumps({
        'disaster_recovery_unhealthy_seconds': 0, 'disaster_recovery_timeline_dir': str(tmp_path),
        'disaster_recovery_fence_running': False}))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    timeline = json.loads((tmp_path / 'dr-timeline.json').read_text())['timeline']
    assert [e['step'] for e in timeline] == ['detect']
    refused = timeline[0]['detail']['refused']
    assert [r['node'] for r in refused] == [node] and 'fence_running=false' in refused[0]['reason']
    assert lab.writes_since(before) == {}
    taints = [t['key'] for t in lab.get('nodes', None, node)['spec'].get('taints') or []]
    assert 'node.kubernetes.io/out-of-service' not in taints and 'remediation.tazlab.io/fencing' not in taints
    assert sorted(v['metadata']['name'] for v in lab.list('volumeattachments.storage.k8s.io')
                  if v['spec']['nodeName'] == node) == vas_before
    vmid = next(s.vmid for s in lab.world.proxmox.specs if s.name == node)
    assert lab.world.proxmox.pve.vm(vmid).status == 'running'


def test_two_dead_workers_are_recovered_in_parallel_and_the_run_lets_go_of_both(lab_world, tmp_path):
    """Issue 21: the frees of several dead workers run as async jobs; each node is claimed and fenced in turn,
    both are freed, and only after both jobs have finished does the run hand back its hold on the claims."""
    lab = Lab(lab_world)
    dead = ['worker-new-03', 'worker-new-02']
    for node in dead:
        lab.handle.fault('power-loss', node)
    lab.wait(lambda: all(lab.node_ready(n) != 'True' for n in dead), 300, 'both workers NotReady')
    proc = playbook(lab, 'playbooks/dr_recover.yml', tmp_path, '-e', json.dumps({
        'disaster_recovery_unhealthy_seconds': 0, 'disaster_recovery_timeline_dir': str(tmp_path),
        'disaster_recovery_min_healthy': '50%'}))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert 'Wait for the parallel frees' in proc.stdout
    timeline = json.loads((tmp_path / 'dr-timeline.json').read_text())['timeline']
    freed = sorted(e['node'] for e in timeline if e['step'] == 'free_and_verify')
    assert freed == sorted(dead), [(e['step'], e.get('node')) for e in timeline]
    assert not [e for e in timeline if e['step'] == 'failed']
    for node in dead:
        taints = [t['key'] for t in lab.get('nodes', None, node)['spec'].get('taints') or []]
        assert 'node.kubernetes.io/out-of-service' in taints
        lease = lab.get('leases.coordination.k8s.io', 'kube-system', 'tazlab-remediation-' + node)
        assert lease['spec']['holderIdentity']
        assert 'remediation.tazlab.io/run' not in (lease['metadata'].get('annotations') or {}), lease['metadata']
    for ns, selector in (('traefik', 'app.kubernetes.io/name=traefik'), ('apps', None)):
        assert lab.running_pods(ns, selector), ns
        assert all(p['spec'].get('nodeName') not in dead for p in lab.running_pods(ns, selector))
