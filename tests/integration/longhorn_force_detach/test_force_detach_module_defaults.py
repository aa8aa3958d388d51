"""csi_force_detach takes its Proxmox connection from module_defaults of group/tazlab.resilience.proxmox.

The module's own connection options are Kubernetes ones (the kubernetes group, with their validate_certs);
its Proxmox connection is nested (proxmox_auth) and its action plugin fills it from the proxmox group
defaults, so a play sets each connection once and the two validate_certs never mix.

The former name, longhorn_force_detach, is routed to the same module and action (meta/runtime.yml): the forged
proof below is refused by a Proxmox reading only the action's group defaults give it, under the old name.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from k8s_lab import ROOT, TIME_SCALE, Lab, real

pytestmark = pytest.mark.lab_world(time_scale=TIME_SCALE)
BIN = os.path.dirname(sys.executable)
TRAEFIK = 'app.kubernetes.io/name=traefik'

PLAY = '''
- name: Without proxmox group defaults there is no Proxmox access
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/tazlab.resilience.kubernetes: "{{{{ tazlab_kubernetes }}}}"
  tasks:
    - name: Refused
      tazlab.resilience.csi_force_detach:
        node: {node}
        fence: {{fenced: true, smbios_uuid: "{uuid}"}}
      register: blind
      ignore_errors: true
    - name: Keep it
      ansible.builtin.copy:
        content: "{{{{ blind | to_json }}}}"
        dest: "{blind}"
        mode: "0600"

- name: Free a partitioned node with connections from module_defaults only
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/tazlab.resilience.kubernetes: "{{{{ tazlab_kubernetes | combine({{'validate_certs': true}}) }}}}"
    group/tazlab.resilience.proxmox: "{{{{ tazlab_proxmox }}}}"
  tasks:
    - name: A hand-written proof on the running node is refused (Proxmox read through the group defaults; old name)
      tazlab.resilience.longhorn_force_detach:
        node: {node}
        fence: {{fenced: true, smbios_uuid: "{uuid}"}}
        wait_timeout: {wait}
      register: forged
      ignore_errors: true
    - name: Fence it (proxmox_fence from the same group defaults)
      tazlab.resilience.proxmox_fence:
        k8s_node: {node}
        k8s_auth: "{{{{ tazlab_kubernetes }}}}"
        state: "off"
        poll_interval: 0.05
      register: fence
    - name: Free it, its VM re-read through the group defaults right before
      tazlab.resilience.csi_force_detach:
        node: {node}
        fence: "{{{{ fence }}}}"
        wait_timeout: {wait}
        poll_interval: 0.05
      register: freed
    - name: Keep the results
      ansible.builtin.copy:
        content: "{{{{ {{'forged': forged, 'freed': freed}} | to_json }}}}"
        dest: "{out}"
        mode: "0600"

'''


def test_proxmox_connection_comes_from_the_proxmox_group_defaults(lab_world, tmp_path):
    lab = Lab(lab_world)
    pods = lab.running_pods('traefik', TRAEFIK)
    node = pods[0]['spec']['nodeName']
    uuid = lab.get('nodes', None, node)['status']['nodeInfo']['systemUUID']
    lab.handle.fault('partition', node)
    lab.wait(lambda: lab.node_ready(node) != 'True', 120, 'partitioned node NotReady')
    play = tmp_path / 'play.yml'
    play.write_text(PLAY.format(node=node, uuid=uuid, wait=real(300), out=tmp_path / 'out.json',
                                blind=tmp_path / 'blind.json'))
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'), ANSIBLE_NOCOLOR='1',
               ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, 'collections'), PATH=BIN + os.pathsep + os.environ['PATH'])
    proc = subprocess.run([os.path.join(BIN, 'ansible-playbook'), str(play), '-i', lab.world.paths()['inventory']],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    out = json.loads((tmp_path / 'out.json').read_text())
    forged = out['forged']
    assert forged['failed'] and any('running now' in r for r in forged['refused']), forged
    assert forged['power_check']['status'] == 'running' and forged['power_check']['confirmed_off'] is False
    # the old name ran the new module through the redirect, and says it is deprecated
    assert 'longhorn_force_detach' in proc.stderr and 'csi_force_detach' in proc.stderr, proc.stderr[-2000:]
    freed = out['freed']
    assert not freed.get('failed') and freed['changed'], freed
    assert freed['power_check']['confirmed_off'] is True and freed['power_check']['status'] == 'stopped', freed
    blind = json.loads((tmp_path / 'blind.json').read_text())
    assert blind['failed'] and any('no Proxmox access' in r for r in blind['refused']), blind
    running = lab.running_pods('traefik', TRAEFIK)
    assert len(running) == 1 and running[0]['spec']['nodeName'] != node
