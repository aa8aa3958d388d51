"""examples/ as a user sets it up for a real cluster, pointed at the lab: its ansible.cfg, the plugin file with
the secret in a vaulted group_vars file, and the read-only check first (`--check` changes nothing). The run
itself on the plugin's inventory is test_cluster_inventory_lab.py's."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import yaml

from k8s_lab import ROOT, TIME_SCALE, Lab

pytestmark = pytest.mark.lab_world(time_scale=TIME_SCALE)
BIN = os.path.dirname(sys.executable)


def test_the_example_configuration_lists_the_cluster_and_checks_read_only(lab_world, tmp_path):
    lab = Lab(lab_world)
    work = tmp_path / 'tazlab'
    shutil.copytree(os.path.join(ROOT, 'examples'), str(work))
    # Fill in the plugin file as the first-run page says (names, CA, kubeconfig, talosconfig); the secret
    # stays a template that reads the vaulted group_vars file.
    source = work / 'inventory' / 'tazlab.cluster.yml'
    config = yaml.safe_load(source.read_text())
    lab_config = yaml.safe_load(open(lab.world.paths()['inventory_plugin']))
    template = config['proxmox']['api_token_secret']
    assert 'vault.yml' in template
    config['kubernetes'] = lab_config['kubernetes']
    config['talos'] = {'talosconfig': lab_config['talos']['talosconfig']}
    px = dict(lab_config['proxmox'])
    secret = px.pop('api_token_secret')
    config['proxmox'] = dict(px, api_token_secret=template)
    source.write_text(yaml.safe_dump(config))
    vault = work / 'inventory' / 'group_vars' / 'all' / 'vault.yml'
    vault.write_text(vault.read_text().replace('00000000-0000-0000-0000-000000000000', secret))
    password = tmp_path / 'vault-pass'
    password.write_text('correct horse battery staple\n')
    env = dict(os.environ, ANSIBLE_CONFIG=str(work / 'ansible.cfg'), ANSIBLE_VAULT_PASSWORD_FILE=str(password),
               ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, 'collections'), ANSIBLE_NOCOLOR='1',
               ANSIBLE_CACHE_PLUGIN_CONNECTION=str(tmp_path / 'cache'), HOME=str(tmp_path),
               PATH=BIN + os.pathsep + os.environ['PATH'])
    for var in list(env):
        if var.startswith(('K8S_AUTH_', 'PROXMOX_', 'TALOSCONFIG')):
            del env[var]

    def run(*argv):
        return subprocess.run([os.path.join(BIN, argv[0]), *argv[1:]], cwd=str(work), env=env, capture_output=True,
                              text=True, timeout=600, check=False)

    proc = run('ansible-vault', 'encrypt', 'inventory/group_vars/all/vault.yml')
    assert proc.returncode == 0, proc.stderr
    assert secret not in vault.read_text()

    proc = run('ansible-inventory', '--graph')
    assert proc.returncode == 0 and '@unfenceable' in proc.stdout and 'worker-new-03' in proc.stdout, proc.stderr
    assert '[WARNING]' not in proc.stderr, proc.stderr

    node = 'worker-new-03'
    lab.handle.fault('power-loss', node)
    lab.wait(lambda: lab.node_ready(node) != 'True', 120, 'powered-off node NotReady')
    before = lab.requests()
    check = run('ansible-playbook', 'tazlab.resilience.dr_recover', '--check')
    assert check.returncode == 0, check.stdout[-3000:] + check.stderr[-2000:]
    assert 'remediate: ' + node in check.stdout
    assert lab.writes_since(before) == {}                       # the check only read

    # The runbook read Proxmox with the secret from the vaulted file (rendered again at run time).
    assert 'fence' in check.stdout and 'Proxmox' not in check.stderr
    vmid = next(s.vmid for s in lab.world.proxmox.specs if s.name == node)
    assert lab.world.proxmox.pve.vm(vmid).status == 'stopped'
