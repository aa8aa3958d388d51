# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read-only facts for the ip_migration plan: the control planes through Talos, the cluster through Kubernetes.

* :func:`talos_facts` - etcd members (hostname, current address from the peer URL), each member's health
  (its own EtcdStatus answers without errors) and machine config.
* :func:`kubernetes_facts` - control-plane and other nodes (Ready, InternalIP), the ``default/kubernetes``
  Endpoints and EndpointSlice addresses, CoreDNS and kube-proxy readiness judged from their pods.
"""

from __future__ import annotations

from ansible_collections.tazlab.resilience.plugins.module_utils.ipmigration.plan import host_of_url
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.errors import K8sError, NOT_FOUND
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.objects import (
    is_control_plane, is_terminating, meta, name_of, node_internal_ips, node_ready, pod_ready, selector_string)
from ansible_collections.tazlab.resilience.plugins.module_utils.talos import patch as tp
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.errors import (
    TalosApiError, TalosDisconnected, TalosTimeout, TalosUnreachable)

_DOWN = (TalosUnreachable, TalosDisconnected, TalosTimeout, TalosApiError)


async def talos_facts(client, node=None):
    """{'control_planes': [...], 'etcd_quorum': bool}; the member list itself needs quorum."""
    members = await client.etcd_member_list(node=node)
    cps = []
    for m in members:
        address = host_of_url((m.get('peer_urls') or m.get('client_urls') or [''])[0])
        healthy, answers = False, True
        try:
            st = await client.etcd_status(node=address, retries=0)
            healthy = not st['errors']
        except _DOWN:
            answers = False
        docs = None              # the plan refuses: a control plane that does not answer cannot be planned
        if answers:
            try:
                docs = tp.load_documents(await client.machine_config(node=address))
            except _DOWN:
                docs = None
        cps.append({'name': m['hostname'], 'address': address, 'peer_urls': list(m.get('peer_urls') or []),
                    'etcd_healthy': healthy, 'is_learner': bool(m.get('is_learner')), 'docs': docs})
    voters = [c for c in cps if not c['is_learner']]
    quorum = bool(voters) and sum(1 for c in voters if c['etcd_healthy']) > len(voters) // 2
    return {'control_planes': cps, 'etcd_quorum': quorum}


def _workload_pods(client, kind, namespace, name):
    try:
        obj = client.get_workload(kind, namespace, name)
    except K8sError as exc:
        if exc.kind == NOT_FOUND:
            return None, []
        raise
    selector = selector_string(((obj.get('spec') or {}).get('selector') or {}).get('matchLabels'))
    pods = [p for p in client.list_pods(namespace=namespace, label_selector=selector or None) if not is_terminating(p)]
    return obj, pods


def kubernetes_facts(params, client=None):
    from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.client import client_from_params
    from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.endpoints import (
        SERVICE_NAME_LABEL, endpoints_addresses, same_family, slice_addresses)

    client = client or client_from_params(params)
    nodes = []
    ready_nodes = set()
    for n in client.list_nodes():
        ips = node_internal_ips(n)
        ready = node_ready(n) == 'True'
        if ready:
            ready_nodes.add(name_of(n))
        nodes.append({'name': name_of(n), 'control_plane': is_control_plane(n), 'ready': ready,
                      'internal_ip': ips[0] if ips else None})
    try:
        ep = client.get_endpoints('default', 'kubernetes')
    except K8sError as exc:
        if exc.kind != NOT_FOUND:
            raise
        ep = None
    slices = client.list_endpoint_slices('default', label_selector='%s=kubernetes' % SERVICE_NAME_LABEL)
    # one address family: the one of the slice named kubernetes (a dual-stack control plane keeps another slice
    # of the other addressType, which says nothing about this family)
    family = next((s.get('addressType') for s in slices if name_of(s) == 'kubernetes'), None) or 'IPv4'
    slice_ips = []
    for sl in same_family(slices, family):
        slice_ips.extend(slice_addresses(sl))
    out = {'nodes': nodes, 'endpoints': sorted(set(endpoints_addresses(ep))), 'slice_addresses': sorted(set(slice_ips)),
           'slices': sorted(name_of(s) for s in slices), 'family': family}

    obj, pods = _workload_pods(client, 'Deployment', 'kube-system', 'coredns')
    if obj is not None:
        want = (obj.get('spec') or {}).get('replicas')
        want = 1 if want is None else int(want)
        ready = [p for p in pods if pod_ready(p)]
        out['coredns'] = {'ready': len(ready) >= want, 'ready_pods': len(ready), 'want': want}
    obj, pods = _workload_pods(client, 'DaemonSet', 'kube-system', 'kube-proxy')
    if obj is not None:
        uid = meta(obj).get('uid')
        pods = [p for p in pods if not uid or any(o.get('uid') == uid for o in meta(p).get('ownerReferences') or [])]
        covered = set((p.get('spec') or {}).get('nodeName') for p in pods if pod_ready(p))
        missing = sorted(ready_nodes - covered)
        out['kube_proxy'] = {'ready': not missing, 'ready_pods': len([p for p in pods if pod_ready(p)]),
                             'ready_nodes': len(ready_nodes), 'missing_on': missing}
    return out
