"""Shared helpers of the safety matrix: run the runbook, and check THE ONE RULE on the twin afterwards.

The invariant, checked after every case: no node whose VM is running (as fakepve, the twin's Proxmox,
knows it: the VM that carries the node's SMBIOS UUID) has the out-of-service taint, lost a
VolumeAttachment, or had a pod force-deleted (deleted with grace 0 through the API).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from k8s_lab import ROOT

BIN = os.path.dirname(sys.executable)
OOS = 'node.kubernetes.io/out-of-service'


def _command(lab, path, tmp_path, extra_vars, args):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'), ANSIBLE_NOCOLOR='1',
               ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, 'collections'), PATH=BIN + os.pathsep + os.environ['PATH'])
    env.pop('JOB_ID', None)
    cmd = [os.path.join(BIN, 'ansible-playbook'), path, '-i', lab.world.paths()['inventory']]
    if extra_vars is not None:
        cmd += ['-e', json.dumps(dict({'disaster_recovery_timeline_dir': str(tmp_path)}, **extra_vars))]
    return cmd + list(args), env


def playbook(lab, path, tmp_path, extra_vars=None, *args):
    cmd, env = _command(lab, path, tmp_path, extra_vars, args)
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)


def start_playbook(lab, path, tmp_path, extra_vars=None, *args):
    """ansible-playbook started in the background (its pid is part of its run identity): a Popen."""
    cmd, env = _command(lab, path, tmp_path, extra_vars, args)
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def timeline(tmp_path, name='dr-timeline.json'):
    return json.loads((tmp_path / name).read_text())['timeline']


def vm_of(lab, node):
    """The fakepve VM(s) carrying the node's SMBIOS UUID (the truth, read from the twin, not via the API)."""
    uuid = lab.get('nodes', None, node)['status']['nodeInfo']['systemUUID'].lower()
    out = []
    for vm in lab.world.proxmox.pve.vms:
        smbios = str(vm.config.get('smbios1') or '')
        if 'uuid=' + uuid in smbios.lower():
            out.append(vm)
    return out


def running_nodes(lab):
    """Nodes one of whose UUID-carrying VMs is running (any such VM could be the one the kubelet runs in)."""
    return [n['metadata']['name'] for n in lab.list('nodes')
            if any(vm.status == 'running' for vm in vm_of(lab, n['metadata']['name']))]


class Invariant(object):
    """Snapshot the VolumeAttachments per node before a case; check THE ONE RULE after it."""

    def __init__(self, lab):
        self.lab = lab
        self.vas = self._vas()
        self.pods = self._pods()

    def _pods(self):
        out = {}
        for pod in self.lab.list('pods'):
            out.setdefault(pod['spec'].get('nodeName'), set()).add(pod['metadata']['uid'])
        return out

    def _vas(self):
        out = {}
        for va in self.lab.list('volumeattachments.storage.k8s.io'):
            out.setdefault(va['spec']['nodeName'], set()).add(va['metadata']['name'])
        return out

    def violations(self):
        lab = self.lab
        now_vas = self._vas()
        bad = []
        now_pods = self._pods()
        for node in running_nodes(lab):
            taints = [t['key'] for t in lab.get('nodes', None, node)['spec'].get('taints') or []]
            if OOS in taints:
                bad.append('{0}: out-of-service taint on a running node'.format(node))
            lost = self.vas.get(node, set()) - now_vas.get(node, set())
            deleting = [va['metadata']['name'] for va in lab.list('volumeattachments.storage.k8s.io')
                        if va['spec']['nodeName'] == node and va['metadata'].get('deletionTimestamp')]
            if lost or deleting:
                bad.append('{0}: VolumeAttachment deleted on a running node: {1}'.format(
                    node, sorted(lost | set(deleting))))
            # A running node cut off from the API server cannot confirm a graceful delete: a pod gone from it was
            # force-deleted (grace 0) or garbage-collected under the out-of-service taint.
            ready = [c['status'] for c in lab.get('nodes', None, node)['status'].get('conditions') or []
                     if c['type'] == 'Ready']
            gone = self.pods.get(node, set()) - now_pods.get(node, set())
            if gone and ready != ['True']:
                bad.append('{0}: {1} pod(s) force-deleted from a running node'.format(node, len(gone)))
        return bad

    def check(self):
        bad = self.violations()
        assert bad == [], 'THE ONE RULE broken: {0}'.format(bad)
