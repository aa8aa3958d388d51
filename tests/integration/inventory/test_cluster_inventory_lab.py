"""The tazlab.resilience.cluster inventory plugin against the lab world, as a user runs it: ansible-inventory
and ansible-playbook with the plugin file the lab writes (tazlab.cluster.yml), and nothing else."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from k8s_lab import ROOT, TIME_SCALE, Lab, is_running

pytestmark = pytest.mark.lab_world(time_scale=TIME_SCALE)
BIN = os.path.dirname(sys.executable)


def env(tmp_path, **extra):
    out = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'), ANSIBLE_NOCOLOR='1',
               ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, 'collections'), PATH=BIN + os.pathsep + os.environ['PATH'],
               ANSIBLE_LOCAL_TEMP=str(tmp_path / 'tmp'))
    for var in list(out):
        if var.startswith(('K8S_AUTH_', 'PROXMOX_', 'TALOSCONFIG')):
            del out[var]
    out.update(extra)
    return out


def inventory(source, tmp_path, **extra):
    proc = subprocess.run([os.path.join(BIN, 'ansible-inventory'), '-i', source, '--list', '--export'],
                          cwd=ROOT, env=env(tmp_path, **extra), capture_output=True, text=True, timeout=120, check=False)
    return proc


def plain(value):
    """JSON of ansible-inventory without its unsafe-text markers."""
    if isinstance(value, dict):
        if set(value) == {'__ansible_unsafe'}:
            return value['__ansible_unsafe']
        return dict((k, plain(v)) for k, v in value.items())
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def listed(source, tmp_path, **extra):
    proc = inventory(source, tmp_path, **extra)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert '[WARNING]: Unable to parse' not in proc.stderr, proc.stderr
    data = plain(json.loads(proc.stdout))
    hostvars = data['_meta']['hostvars']

    def members(group):
        return sorted(data.get(group, {}).get('hosts', []))
    return data, hostvars, members


def test_every_node_is_matched_to_the_vm_that_carries_its_uuid(lab_world, tmp_path):
    lab = Lab(lab_world)
    pve = lab.world.proxmox.pve
    nodes = {n['metadata']['name']: n for n in lab.list('nodes')}
    specs = {s.name: s for s in lab.world.proxmox.specs}
    # A decoy named like worker-new-02 (another UUID) and a second VM carrying worker-new-04's UUID.
    w4 = nodes['worker-new-04']['status']['nodeInfo']['systemUUID']
    lab.on_loop(pve.add_vm, 900, 'worker-new-02', node='pve3', status='stopped',
                config={'smbios1': 'uuid=11111111-2222-3333-4444-555555555555'})
    lab.on_loop(pve.add_vm, 901, 'w4-clone', node='pve2', status='stopped', config={'smbios1': 'uuid=' + w4.upper()})

    data, hostvars, members = listed(lab.world.paths()['inventory_plugin'], tmp_path)

    assert sorted(h for h in hostvars if h != 'localhost') == sorted(nodes)
    for name, node in nodes.items():
        hv = hostvars[name]
        uuid = node['status']['nodeInfo']['systemUUID'].lower()
        ip = next(a['address'] for a in node['status']['addresses'] if a['type'] == 'InternalIP')
        assert hv['system_uuid'] == uuid and hv['node_internal_ip'] == ip
        assert hv['node_role'] == ('control-plane' if specs[name].role == 'control-plane' else 'worker')
        if name == 'worker-new-04':
            continue
        assert hv['proxmox_vmid'] == specs[name].vmid and hv['proxmox_node'] == specs[name].pve_node
        assert hv['proxmox_ha_managed'] is bool(specs[name].ha)
        assert name in members('pve_' + specs[name].pve_node)
    # Matched by UUID, never by name: the decoy called worker-new-02 is not its VM.
    assert hostvars['worker-new-02']['proxmox_vmid'] != 900 and hostvars['worker-new-02']['proxmox_vmids'] == [
        specs['worker-new-02'].vmid]
    # Two VMs carry worker-new-04's UUID (compared case-insensitively): it cannot be fenced safely.
    assert members('unfenceable') == ['worker-new-04']
    assert hostvars['worker-new-04']['proxmox_vmid'] is None
    assert sorted(hostvars['worker-new-04']['proxmox_vmids']) == sorted([specs['worker-new-04'].vmid, 901])
    assert '901' in hostvars['worker-new-04']['unfenceable_reason']
    assert not any('worker-new-04' in members(g) for g in data if g.startswith('pve_'))
    assert members('control_plane') == sorted(n for n, s in specs.items() if s.role == 'control-plane')
    assert members('workers') == sorted(n for n, s in specs.items() if s.role != 'control-plane')
    # The Talos endpoint of each node (the lab's compose maps the node to its loopback Talos API).
    assert hostvars['cp-01']['talos_endpoint'] == lab.world.talos_endpoint('cp-01')
    # Connection settings are what the plugin file configures, in the runbooks' shape.
    config = yaml.safe_load(open(lab.world.paths()['inventory_plugin']))
    all_vars = data['all']['vars']
    assert all_vars['tazlab_kubernetes'] == config['kubernetes']
    assert all_vars['tazlab_proxmox'] == config['proxmox']
    assert all_vars['tazlab_talos'] == {'talosconfig': config['talos']['talosconfig']}
    assert hostvars['localhost']['ansible_connection'] == 'local'


def test_env_secrets_stay_out_of_host_vars_and_the_cache_serves_a_dead_api(lab_world, tmp_path):
    lab = Lab(lab_world)
    config = yaml.safe_load(open(lab.world.paths()['inventory_plugin']))
    secret = config['proxmox'].pop('api_token_secret')
    config.update(cache=True, cache_plugin='ansible.builtin.jsonfile', cache_connection=str(tmp_path / 'cache'),
                  cache_timeout=3600)
    source = tmp_path / 'tazlab.cluster.yml'
    source.write_text(yaml.safe_dump(config))

    # No secret anywhere: a clear error before anything is listed.
    proc = inventory(str(source), tmp_path)
    assert 'api_token_id and api_token_secret are required together' in proc.stderr, proc.stderr[-3000:]

    data, hostvars, members = listed(str(source), tmp_path, PROXMOX_TOKEN_SECRET=secret)
    assert len(members('workers')) == 4
    assert secret not in json.dumps(data)
    assert 'api_token_secret' not in data['all']['vars']['tazlab_proxmox']
    cached = os.listdir(str(tmp_path / 'cache'))
    assert cached and secret not in (tmp_path / 'cache' / cached[0]).read_text()

    # The Proxmox API goes away (wrong port): the cached inventory still answers; without the cache the error
    # says what could not be read from where.
    config['proxmox']['api_port'] = 1
    config['proxmox']['api_timeout'] = 1
    source.write_text(yaml.safe_dump(config))
    data, hostvars, members = listed(str(source), tmp_path, PROXMOX_TOKEN_SECRET=secret)
    assert hostvars['worker-new-03']['proxmox_vmid'] == next(
        s.vmid for s in lab.world.proxmox.specs if s.name == 'worker-new-03')
    config['cache'] = False
    source.write_text(yaml.safe_dump(config))
    proc = inventory(str(source), tmp_path, PROXMOX_TOKEN_SECRET=secret)
    assert 'tazlab.resilience.cluster: cannot read the Proxmox VMs from' in proc.stderr, proc.stderr[-3000:]


@pytest.mark.lab_world(time_scale=TIME_SCALE, boot={'kubelet_secs': 120.0})   # a restore wait of a few rounds
def test_dr_recover_runs_on_the_inventory_the_plugin_builds(lab_world, tmp_path):
    """The demo as a real cluster runs it: the plugin file is the only inventory (recover, then restore)."""
    lab = Lab(lab_world)
    node = 'worker-new-03'
    traefik = 'app.kubernetes.io/name=traefik'
    assert [p['spec']['nodeName'] for p in lab.running_pods('traefik', traefik)] == [node]
    lab.handle.fault('power-loss', node)
    lab.wait(lambda: lab.node_ready(node) != 'True', 120, 'powered-off node NotReady')
    proc = subprocess.run(
        [os.path.join(BIN, 'ansible-playbook'), 'playbooks/dr_recover.yml', '-i', lab.world.paths()['inventory_plugin'],
         '-e', json.dumps({'disaster_recovery_unhealthy_seconds': 0, 'disaster_recovery_timeline_dir': str(tmp_path),
                           'disaster_recovery_wait_timeout': 120})],
        cwd=ROOT, env=env(tmp_path), capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    timeline = json.loads((tmp_path / 'dr-timeline.json').read_text())['timeline']
    steps = [e['step'] for e in timeline]
    assert 'fence' in steps, steps
    vmid = next(s.vmid for s in lab.world.proxmox.specs if s.name == node)
    assert lab.world.proxmox.pve.vm(vmid).status == 'stopped'
    # The report a person reads: the timeline in words, and its picture next to the JSON.
    printed = proc.stdout[proc.stdout.index('TASK [tazlab.resilience.disaster_recovery : Print the timeline]'):]
    spec = next(s for s in lab.world.proxmox.specs if s.name == node)
    fenced = 'fenced VM {0}: it was already stopped, confirmed stopped'.format(spec.vmid)
    assert fenced in printed and 'None' not in printed.split('PLAY RECAP')[0], printed[:3000]
    for ext in ('svg', 'png'):
        assert (tmp_path / ('dr-timeline.' + ext)).stat().st_size > 5000
    lab.wait(lambda: any(p['spec']['nodeName'] != node for p in lab.running_pods('traefik', traefik)), 300,
             'Traefik running on another node')
    assert all(is_running(p) for p in lab.running_pods('traefik', traefik))

    # Back again with dr_restore on the same inventory: the wait for Ready polls in rounds that show progress.
    restore = subprocess.run(
        [os.path.join(BIN, 'ansible-playbook'), 'playbooks/dr_restore.yml', '-i', lab.world.paths()['inventory_plugin'],
         '-e', json.dumps({'disaster_recovery_timeline_dir': str(tmp_path), 'disaster_recovery_restore_timeout': 120,
                           'disaster_recovery_progress_interval': 1})],
        cwd=ROOT, env=env(tmp_path), capture_output=True, text=True, timeout=600, check=False)
    assert restore.returncode == 0, restore.stdout[-4000:] + restore.stderr[-2000:]
    rounds = [line for line in restore.stdout.splitlines() if line.startswith('FAILED - RETRYING')]
    ready_rounds = [line for line in rounds if 'Wait until the node is Ready' in line]
    assert ready_rounds and all('worker-new-03: rounds of 1 s, up to 120 s' in line and 'retries left)' in line
                                for line in ready_rounds), restore.stdout[-6000:]
    # The only other wait that may take rounds is Longhorn's rebuild, in rounds of the same interval.
    assert all('Wait until Longhorn has rebuilt the replicas - rounds of 1 s, up to 120 s' in line
               for line in rounds if line not in ready_rounds), restore.stdout[-6000:]
    assert lab.node_ready(node) == 'True'
