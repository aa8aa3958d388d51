# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""dr_drill's one call for the module runner: one function per action.

The Kubernetes client, proxmoxer and matplotlib (the report's renderer) are imported only by the
actions that need them.
"""

from __future__ import annotations

import os

from ansible_collections.tazlab.resilience.plugins.module_utils.drill import run as drill
from ansible_collections.tazlab.resilience.plugins.module_utils.drill.run import DrillError

__all__ = ['DrillRefused', 'NotBack', 'check_options', 'libraries', 'write_reports', 'run_drill_module']


class DrillRefused(DrillError):
    """The preflight refused the drill; the result carries the refusals, the snapshot and the targets."""

    kind = 'refused'
    changed = False

    def __init__(self, refusals, snapshot, targets):
        super(DrillRefused, self).__init__('the drill must not start: ' + '; '.join(refusals))
        self.fields = dict(refusals=refusals, snapshot=snapshot, targets=targets)

    def result_fields(self):
        return dict(self.fields)


class NotBack(DrillError):
    """The cluster did not come back to its pre-drill state in time."""

    kind = 'not_back'
    changed = False

    def __init__(self, differences, snapshot):
        super(NotBack, self).__init__('not back to the pre-drill state: ' + '; '.join(differences))
        self.fields = dict(differences=differences, snapshot=snapshot)

    def result_fields(self):
        return dict(self.fields)


def check_options(params):
    if params['timeout'] <= 0 or params['poll_interval'] <= 0 or params['wait_timeout'] < 0:
        return ['timeout and poll_interval must be positive, wait_timeout >= 0']
    return []


def libraries(params):
    """matplotlib for the report; kubernetes for the others; proxmoxer for run and heal."""
    if params['action'] == 'report':
        from ansible_collections.tazlab.resilience.plugins.module_utils.drill import report
        return [('matplotlib', report.HAS_MATPLOTLIB, report.MATPLOTLIB_IMPORT_ERROR)]
    from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.args import k8s_libraries
    out = k8s_libraries(params)
    if params['action'] in ('run', 'heal'):
        from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.client import (
            HAS_PROXMOXER, PROXMOXER_IMPORT_ERROR)
        out.append(('proxmoxer', HAS_PROXMOXER, PROXMOXER_IMPORT_ERROR))
    return out


def write_reports(results, dest, check_mode):
    """(changed, files): drill.json, drill.md and one SVG per drill in dest, written only when they differ."""
    from ansible_collections.tazlab.resilience.plugins.module_utils.drill import report

    files = {os.path.join(dest, 'drill.json'): report.render_json({'drills': results}),
             os.path.join(dest, 'drill.md'): report.render_markdown(results)}
    for r in results:
        files[os.path.join(dest, 'drill-{0}-{1}.svg'.format(r['node'], r.get('mode')))] = report.render_svg(r)
    changed = False
    for path, content in sorted(files.items()):
        try:
            with open(path, encoding='utf-8') as fh:
                same = fh.read() == content
        except OSError:
            same = False
        if same:
            continue
        changed = True
        if not check_mode:
            os.makedirs(dest, exist_ok=True)
            with open(path, 'w', encoding='utf-8') as fh:
                fh.write(content)
    return changed, sorted(files)


def _proxmox(params):
    from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.auth import ConnectionSettings
    from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.client import ProxmoxClient

    if not params['proxmox']:
        raise DrillError('proxmox is required for action={0}'.format(params['action']))
    try:
        return ProxmoxClient(ConnectionSettings.from_params(params['proxmox']))
    except ValueError as exc:
        raise DrillError(str(exc))


def _preflight(client, p, kw):
    state = drill.snapshot(client, **kw)
    targets = drill.choose_targets(state, p['nodes'], p['all_workers'])
    refusals = drill.preflight_refusals(state, targets, p['allow_control_plane'])
    if not targets:
        refusals.append('no node to drill (give nodes or all_workers)')
    if refusals:
        raise DrillRefused(refusals, state, targets)
    return dict(changed=False, snapshot=state, refusals=[], targets=targets)


def _verify(client, p, kw):
    after, diff = drill.wait_back(client, p['snapshot'], p['wait_timeout'], poll_interval=max(p['poll_interval'], 0.5),
                                  **kw)
    if diff:
        raise NotBack(diff, after)
    return dict(changed=False, snapshot=after, differences=[])


def _heal(client, px, p, check_mode):
    vm = drill.find_vm_by_uuid(px, drill._uuid(client.get_node(p['node'])))
    return dict(changed=False if check_mode else drill.heal_link(px, vm), vm=vm)


def _run(client, px, p, check_mode):
    if check_mode:
        vm = drill.find_vm_by_uuid(px, drill._uuid(client.get_node(p['node'])))
        return dict(changed=True, result={'node': p['node'], 'fault': p['fault'], 'mode': p['mode'], 'vm': vm,
                                          'planned': True})
    result, injection = drill.observe_loop(client, px, p['node'], fault=p['fault'], timeout=p['timeout'],
                                           poll_interval=p['poll_interval'], progress_file=p['progress_file'])
    result['mode'] = p['mode']
    return dict(changed=True, result=result, injection=injection)


def run_drill_module(run):
    """dr_drill: the module runner's one call."""
    p = run.params
    if p['action'] == 'report':
        changed, files = write_reports(p['results'], p['dest'], run.check_mode)
        return dict(changed=changed, files=files)
    from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.client import client_from_params

    kw = dict(lease_namespace=p['lease_namespace'], longhorn_namespace=p['longhorn_namespace'])
    client = client_from_params(p)
    if p['action'] == 'preflight':
        return _preflight(client, p, kw)
    if p['action'] == 'verify':
        return _verify(client, p, kw)
    px = _proxmox(p)
    if p['action'] == 'heal':
        return _heal(client, px, p, run.check_mode)
    return _run(client, px, p, run.check_mode)
