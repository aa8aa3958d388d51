"""playbooks/drill.yml refuses before any fault: without the confirmation, or when another remediation holds
the target's lease. Nothing is written to the cluster and the VM keeps running."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from k8s_lab import ROOT, TIME_SCALE, Lab

pytestmark = pytest.mark.lab_world(time_scale=TIME_SCALE)
BIN = os.path.dirname(sys.executable)
NODE = 'worker-new-03'


def drill(lab, tmp_path, **extra):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'), ANSIBLE_NOCOLOR='1',
               ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, 'collections'), PATH=BIN + os.pathsep + os.environ['PATH'])
    args = dict({'dr_drill_nodes': [NODE], 'dr_drill_report_dir': str(tmp_path)}, **extra)
    return subprocess.run([os.path.join(BIN, 'ansible-playbook'), 'playbooks/drill.yml', '-i',
                           lab.world.paths()['inventory'], '-e', json.dumps(args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def vm_status(lab):
    vmid = next(s.vmid for s in lab.world.proxmox.specs if s.name == NODE)
    return lab.world.proxmox.pve.vm(vmid).status


def test_no_confirmation_no_drill(lab_world, tmp_path):
    lab = Lab(lab_world)
    before = lab.requests()
    proc = drill(lab, tmp_path)
    assert proc.returncode != 0
    assert 'Set dr_drill_confirm=true' in proc.stdout
    assert lab.writes_since(before) == {} and vm_status(lab) == 'running'


def test_a_held_lease_refuses_the_drill(lab_world, tmp_path):
    lab = Lab(lab_world)
    from kubernetes import client, config
    api = config.new_client_from_config(lab.world.paths()['kubeconfig'])
    now = lab.on_loop(lab.world.clock.now_micro_iso)
    client.CoordinationV1Api(api).create_namespaced_lease('kube-system', {
        'metadata': {'name': 'tazlab-remediation-' + NODE},
        'spec': {'holderIdentity': 'someone-else', 'leaseDurationSeconds': 3600, 'acquireTime': now, 'renewTime': now}})
    before = lab.requests()
    proc = drill(lab, tmp_path, dr_drill_confirm=True)
    assert proc.returncode != 0
    assert 'another remediation holds its lease (someone-else)' in proc.stdout
    assert lab.writes_since(before) == {} and vm_status(lab) == 'running'
    assert not (tmp_path / 'drill.json').exists()
