"""talos_node and talos_etcd run by Ansible itself (`ansible localhost -m`, AnsiballZ) against the Talos twin."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
ANSIBLE = os.path.join(os.path.dirname(sys.executable), 'ansible')
RESULT = re.compile(r'^localhost \| (CHANGED|SUCCESS|FAILED!) => (\{.*\})\s*$', re.S | re.M)
TIMINGS = dict(apply=0.5, shutdown=20, reboot_downtime=20, boot=20, power_on=10, etcd_tick=2, address_move=1)


@contextlib.asynccontextmanager
async def twin_lab(tmp_path, worker_version='v1.13.9'):
    from tazlab_lab.clock import SimClock
    from tazlab_lab.talos import TalosTwin, Timings

    rng = random.Random(os.getpid() ^ random.getrandbits(32))
    a, b = rng.randint(100, 250), rng.randint(1, 250)
    clock = SimClock()
    twin = TalosTwin(clock, timings=Timings(**TIMINGS))
    addrs = [f'127.{a}.{b}.{i}' for i in (11, 12, 13, 21)]
    for i, addr in enumerate(addrs[:3]):
        twin.add_node(f'cp{i + 1}', addr, 'controlplane')
    twin.add_node('w1', addrs[3], 'worker', version=worker_version)
    await twin.start()
    clock.start(0.005, tick=0.004)
    talosconfig = twin.write_talosconfig(str(tmp_path / 'talosconfig'), endpoints=addrs[:1])
    try:
        yield twin, addrs, talosconfig
    finally:
        await clock.stop()
        await twin.stop()


async def ansible(tmp_path, module, args, extra=()):
    cfg = tmp_path / 'ansible.cfg'
    cfg.write_text('[defaults]\ncallback_result_format = json\nnocolor = true\n')
    env = dict(os.environ, ANSIBLE_CONFIG=str(cfg), ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, 'collections'),
               ANSIBLE_NOCOLOR='1', ANSIBLE_DEPRECATION_WARNINGS='0')
    env.pop('TALOSCONFIG', None)
    cmd = [ANSIBLE, 'localhost', '-i', 'localhost,', '-c', 'local', '-e',
           f'ansible_python_interpreter={sys.executable}', '-m', f'tazlab.resilience.{module}',
           '-a', json.dumps(args)] + list(extra)
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                                                cwd=str(tmp_path), env=env)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    out = out.decode()
    found = RESULT.search(out)
    assert found, out + err.decode()
    return found.group(1), json.loads(found.group(2)), out


def test_talos_node_patch_check_mode_idempotence_reboot_and_address_change(tmp_path):
    async def main():
        async with twin_lab(tmp_path) as (twin, addrs, talosconfig):
            w1 = twin.machines['w1']
            before = w1.current
            base = dict(talosconfig=talosconfig, node=addrs[3], poll_interval=0.05, wait_timeout=60)
            label = dict(base, config_patches=[{'machine': {'nodeLabels': {'zone': 'rack-7'}}}])
            status, res, out = await ansible(tmp_path, 'talos_node', label, extra=['--check', '--diff'])
            assert status == 'CHANGED' and res['dry_run_summary'].startswith('Dry run summary:'), res
            assert '+    zone: rack-7' in out
            assert w1.current == before                                  # check mode changed nothing
            status, res, dummy = await ansible(tmp_path, 'talos_node', label)
            assert status == 'CHANGED' and res['applied_mode'] == 'no_reboot' and res['rebooting'] is False, res
            assert yaml.safe_load(w1.current.decode().split('---')[0])['machine']['nodeLabels'] == {'zone': 'rack-7'}
            status, res, dummy = await ansible(tmp_path, 'talos_node', label)
            assert status == 'SUCCESS' and res['changed'] is False       # idempotent, res

            # machine.kernel is on Talos' CanApplyImmediate list: no_reboot applies it, and the node said so
            kernel = dict(base, config_patches=[{'machine': {'kernel': {'modules': [{'name': 'drbd'}]}}}])
            status, res, dummy = await ansible(tmp_path, 'talos_node', dict(kernel, apply_mode='staged_if_needing_reboot'))
            assert status == 'CHANGED' and res['mode'] == 'no_reboot' and res['applied_mode'] == 'no_reboot', res
            assert res['reboot_required'] is False and res['reboot_judged_by'] == 'node', res
            assert b'drbd' in w1.current and w1.reboots == []
            # machine.env is not: no_reboot is refused, staged_if_needing_reboot stages it
            proxy = dict(base, config_patches=[{'machine': {'env': {'http_proxy': 'http://proxy:3128'}}}])
            status, res, dummy = await ansible(tmp_path, 'talos_node', dict(proxy, apply_mode='no_reboot'))
            assert status == 'FAILED!' and 'needs a reboot' in res['msg'], res
            status, res, dummy = await ansible(tmp_path, 'talos_node', dict(proxy, apply_mode='staged_if_needing_reboot'))
            assert status == 'CHANGED' and res['mode'] == 'staged' and res['applied_mode'] == 'staged', res
            assert b'http_proxy' in w1.persistent and b'http_proxy' not in w1.current
            status, res, dummy = await ansible(tmp_path, 'talos_node', dict(base, state='rebooted'))
            assert status == 'CHANGED' and res['status'] == {'stage': 'running', 'ready': True, 'unmet_conditions': []}, res
            assert b'http_proxy' in w1.current                           # the staged config is live after the boot

            a, b = addrs[3].split('.')[1:3]
            new = f'127.{a}.{b}.31'
            move = dict(base, config_patches=[
                {'machine': {'network': {'interfaces': [{'interface': 'eth0', '$patch': 'delete'}]}}},
                {'machine': {'network': {'interfaces': [{'interface': 'eth0', 'addresses': [f'{new}/8']}]},
                             'env': {'MOVED': '1'}}}])
            status, res, dummy = await ansible(tmp_path, 'talos_node', move)
            assert status == 'CHANGED' and res['applied_mode'] == 'reboot', res
            assert (res['address_before'], res['address_after']) == (addrs[3], new)
            assert res['status']['stage'] == 'running' and w1.address == new
            status, res, dummy = await ansible(tmp_path, 'talos_node', dict(move, node=new))
            assert status == 'SUCCESS' and res['changed'] is False, res
    asyncio.run(main())


def test_talos_etcd_snapshot_recover_and_quorum_guard(tmp_path):
    async def main():
        async with twin_lab(tmp_path) as (twin, addrs, talosconfig):
            db = os.urandom(70_000)
            twin.etcd.write(db)
            base = dict(talosconfig=talosconfig, node=addrs[0])
            status, res, dummy = await ansible(tmp_path, 'talos_etcd', dict(base, action='status'))
            assert status == 'SUCCESS' and res['healthy'] == {'cp1': True, 'cp2': True, 'cp3': True}, res
            dest = str(tmp_path / 'etcd.snapshot')
            status, res, dummy = await ansible(tmp_path, 'talos_etcd', dict(base, action='snapshot', dest=dest))
            assert status == 'CHANGED' and res['size'] == len(db) + 32, res
            checksum = res['checksum']

            # quorum guard: with cp3 down, removing healthy cp2 would leave 1 healthy of 2 voters
            twin.machines['cp3'].power_off()
            status, res, dummy = await ansible(tmp_path, 'talos_etcd', dict(base, action='remove', member='cp2'))
            assert status == 'FAILED!' and 'refusing to remove' in res['msg'], res
            assert len(twin.etcd.members) == 3
            status, res, out = await ansible(tmp_path, 'talos_etcd', dict(base, action='remove', member='cp3'),
                                             extra=['--check', '--diff'])
            assert status == 'CHANGED' and len(twin.etcd.members) == 3, res
            removed = [line for line in out.splitlines() if line.startswith('-') and not line.startswith('---')]
            added = [line for line in out.splitlines() if line.startswith('+') and not line.startswith('+++')]
            assert any('"cp3 (https://' in line for line in removed) and not any('cp3' in line for line in added), out
            assert 'etcd members after remove cp3' in out
            status, res, dummy = await ansible(tmp_path, 'talos_etcd', dict(base, action='remove', member='cp3'))
            assert status == 'CHANGED' and sorted(m['hostname'] for m in res['members']) == ['cp1', 'cp2'], res
            status, res, dummy = await ansible(tmp_path, 'talos_etcd', dict(base, action='remove', member='cp3'))
            assert status == 'SUCCESS' and res['changed'] is False, res

            # recover is refused while etcd runs on the node
            recover = dict(base, action='recover', src=dest, checksum=checksum, peers=addrs[:3])
            status, res, dummy = await ansible(tmp_path, 'talos_etcd', recover)
            assert status == 'FAILED!' and 'Preparing' in res['msg'], res
            # disaster: the remaining control planes lose EPHEMERAL
            for m in ('cp1', 'cp2'):
                twin.machines[m].reset(False, True, ['EPHEMERAL'], False)
            for dummy in range(600):
                if all(twin.machines[m].ready for m in ('cp1', 'cp2')):
                    break
                await asyncio.sleep(0.01)
            status, res, dummy = await ansible(tmp_path, 'talos_etcd', dict(recover, checksum='0' * 64))
            assert status == 'FAILED!' and 'does not match checksum' in res['msg'], res
            status, res, dummy = await ansible(tmp_path, 'talos_etcd', recover)
            assert status == 'CHANGED' and res['checksum'] == checksum, res
            assert twin.etcd.db == db
    asyncio.run(main())


def test_talos_node_insecure_apply_brings_a_wiped_node_out_of_maintenance(tmp_path):
    async def main():
        from tazlab_lab.talos.machine import MAINTENANCE

        async with twin_lab(tmp_path) as (twin, addrs, talosconfig):
            w1 = twin.machines['w1']
            config = w1.current.decode()
            w1.reset(False, True, ['STATE', 'EPHEMERAL'], False)
            for dummy in range(600):
                if w1.stage == MAINTENANCE and w1.reachable:
                    break
                await asyncio.sleep(0.01)
            assert w1.stage == MAINTENANCE
            await twin.settle()
            args = dict(node=addrs[3], insecure=True, config=config, poll_interval=0.05, wait_timeout=60)
            status, res, dummy = await ansible(tmp_path, 'talos_node', args, extra=['--check'])
            assert status == 'CHANGED' and res['dry_run_summary'].startswith('Dry run summary:'), res
            assert w1.stage == MAINTENANCE
            status, res, dummy = await ansible(tmp_path, 'talos_node', dict(args, talosconfig=talosconfig))
            assert status == 'CHANGED' and res['applied_mode'] == 'no_reboot', res
            assert res['status'] == {'stage': 'running', 'ready': True, 'unmet_conditions': []}
            assert list(yaml.safe_load_all(w1.current)) == list(yaml.safe_load_all(config))
            status, res, dummy = await ansible(tmp_path, 'talos_node', dict(args, state='rebooted'))
            assert status == 'FAILED!' and 'maintenance' in res['msg'], res
    asyncio.run(main())


def test_talos_node_refuses_reboot_mode_force_on_a_node_older_than_1_12(tmp_path):
    """Issue 14 point 7: a v1.11 node does not know RebootRequest FORCE and would reboot gracefully."""
    async def main():
        async with twin_lab(tmp_path, worker_version='v1.11.6') as (twin, addrs, talosconfig):
            w1 = twin.machines['w1']
            args = dict(talosconfig=talosconfig, node=addrs[3], state='rebooted', reboot_mode='force', wait=False)
            status, res, dummy = await ansible(tmp_path, 'talos_node', args)
            assert status == 'FAILED!' and 'reboot_mode=force needs Talos v1.12' in res['msg'], res
            assert 'v1.11.6' in res['msg'] and w1.reboots == [] and w1.stage == 4   # RUNNING, untouched
            status, res, dummy = await ansible(tmp_path, 'talos_node', dict(args, node=addrs[2]))
            assert status == 'CHANGED' and res['talos_version'] == 'v1.13.9', res
            assert twin.machines['cp3'].reboots == ['force']
    asyncio.run(main())
