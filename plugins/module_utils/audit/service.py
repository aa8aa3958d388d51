# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The resilience audit end to end: collect (reads only), judge, render. What the module calls."""

from __future__ import annotations

import datetime

from ansible_collections.tazlab.resilience.plugins.module_utils.audit import collect, findings as F, report
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.errors import K8sError

__all__ = ['run_audit', 'sub_params']


def sub_params(spec, value, what):
    """Validate a dict of connection options against an argument spec (defaults, types, env fallbacks)."""
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    result = ArgumentSpecValidator(spec).validate(dict(value or {}))
    if result.error_messages:
        raise ValueError('{0}: {1}'.format(what, '; '.join(result.error_messages)))
    return result.validated_parameters


def _node_addresses(k8s, talos_names):
    out = {}
    for node in k8s.get('nodes') or []:
        name = (node.get('metadata') or {}).get('name')
        for addr in (node.get('status') or {}).get('addresses') or []:
            if addr.get('type') in ('InternalIP', 'ExternalIP'):
                out[addr.get('address')] = name
    out.update(talos_names or {})
    return out


def run_audit(params, k8s_client, proxmox_client=None, talos_auth=None, talos_kwargs=None, talos_nodes=None):
    """{'findings', 'summary', 'failing', 'markdown', 'html', 'errors', 'cluster_time', 'facts_read'}."""
    errors = []
    facts = {}
    k8s = collect.collect_kubernetes(k8s_client)
    facts['kubernetes'] = k8s
    cluster_time = None
    if k8s_client.server_time:
        cluster_time = datetime.datetime.fromtimestamp(k8s_client.server_time, tz=datetime.timezone.utc).strftime(
            '%Y-%m-%dT%H:%M:%SZ')
    try:
        facts['longhorn'] = collect.collect_longhorn(k8s_client, k8s['namespaces'],
                                                     [params.get('longhorn_namespace'), 'longhorn-system', 'longhorn'])
    except K8sError as exc:
        errors.append('longhorn: {0}'.format(exc))
        facts['longhorn'] = None
    facts['proxmox'] = None
    if proxmox_client is not None:
        from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.errors import ProxmoxError
        try:
            facts['proxmox'] = collect.collect_proxmox(proxmox_client)
        except ProxmoxError as exc:
            errors.append('proxmox: {0}'.format(exc))
    facts['talos'] = None
    talos_names = {}
    vip = params.get('vip')
    talos_endpoints = []
    if talos_auth is not None:
        from ansible_collections.tazlab.resilience.plugins.module_utils.talos.errors import TalosError
        talos_endpoints = ['{0}:{1}'.format(h, p) for h, p in talos_auth.endpoints]
        try:
            addresses = talos_nodes or talos_auth.nodes or [e[0] for e in talos_auth.endpoints]
            facts['talos'], talos_names = collect.collect_talos(talos_auth, addresses,
                                                                talos_kwargs or {})
        except TalosError as exc:
            errors.append('talos: {0}'.format(exc))
        for info in (facts['talos'] or {}).values():
            if not vip and info.get('vip'):
                vip = info['vip']
    facts['clients'] = {'kubeconfig_server': collect.kubeconfig_server(params), 'talosconfig_endpoints':
                        talos_endpoints, 'vip': vip, 'node_addresses': _node_addresses(k8s, talos_names)}
    found = F.audit(facts, {'critical_workloads': params.get('critical_workloads'),
                            'min_replicas': params.get('min_replicas')})
    summary = F.summarize(found)
    fail_on = params.get('fail_on') or 'none'
    failing = [] if fail_on == 'none' else F.at_or_above(found, fail_on)
    return {
        'findings': found, 'summary': summary, 'failing': failing, 'errors': errors, 'cluster_time': cluster_time,
        'vip': vip,
        'markdown': report.render_markdown(found, summary, cluster_time=cluster_time),
        'html': report.render_html(found, summary, cluster_time=cluster_time),
        'read': sorted(k for k, v in facts.items() if v is not None),
    }
