# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""resilience_audit's one call for the module runner: connections from the params, the audit, fail_on."""

from __future__ import annotations

from ansible_collections.tazlab.resilience.plugins.module_utils.audit.service import run_audit, sub_params
from ansible_collections.tazlab.resilience.plugins.module_utils.talos import args as talos_args

__all__ = ['AuditFailed', 'check_options', 'libraries', 'run_audit_module']


class AuditFailed(Exception):
    """Findings at or above ``fail_on``; the failed result still carries the whole report."""

    kind = 'findings'
    changed = False

    def __init__(self, message, result):
        super(AuditFailed, self).__init__(message)
        self.result = result

    def result_fields(self):
        return dict(self.result)


def _talos_params(params):
    return sub_params(talos_args.talos_auth_argument_spec(), params['talos'], 'talos')


def check_options(params):
    """The nested talos options are valid (raises ValueError / TalosError), before any API call."""
    if params['talos']:
        tp = _talos_params(params)
        talos_args.auth_from_params(tp)
        talos_args.client_kwargs(tp)
    return []


def libraries(params):
    """kubernetes always, proxmoxer when the proxmox options are given."""
    from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.args import k8s_libraries

    out = k8s_libraries(params)
    if params.get('proxmox'):
        from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.client import (
            HAS_PROXMOXER, PROXMOXER_IMPORT_ERROR)
        out.append(('proxmoxer', HAS_PROXMOXER, PROXMOXER_IMPORT_ERROR))
    return out


def run_audit_module(run):
    """resilience_audit: the module runner's one call."""
    from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.client import client_from_params

    p = run.params
    proxmox_client = talos_auth = talos_kwargs = None
    if p['proxmox']:
        from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.auth import ConnectionSettings
        from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.client import ProxmoxClient
        proxmox_client = ProxmoxClient(ConnectionSettings.from_params(p['proxmox']))
    if p['talos']:
        tp = _talos_params(p)
        talos_auth = talos_args.auth_from_params(tp)
        talos_kwargs = talos_args.client_kwargs(tp)
    with run.stage('cannot read the cluster'):
        result = run_audit(p, client_from_params(p), proxmox_client=proxmox_client, talos_auth=talos_auth,
                           talos_kwargs=talos_kwargs, talos_nodes=p['talos_nodes'])
    if result['failing']:
        raise AuditFailed('{0} finding(s) at or above {1}: {2}'.format(
            len(result['failing']), p['fail_on'], ', '.join(sorted(set(
                '{0} ({1})'.format(f['code'], f['object']) for f in result['failing'])))), result)
    return dict(result, changed=False)
