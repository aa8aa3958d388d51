"""Kubernetes objects shaped as the API serves them, for planner and executor tests.

The seed incident: worker-new-03 (systemUUID U3) powered off with Traefik (Deployment -> ReplicaSet ->
pod) on a Longhorn RWO PVC, its replacement stuck ContainerCreating on worker-new-02, and a
StatefulSet pod db-0 on the same node. A VolumeAttachment and a Longhorn csi-attacher ticket name the
dead node for each volume.
"""

from __future__ import annotations

import copy

DEAD = 'worker-new-03'
ALIVE = 'worker-new-02'
UUID_DEAD = '5B0D3F1E-8A64-4B8E-9A53-0F4A8D1B7C21'
UUID_ALIVE = '11111111-2222-3333-4444-555555555555'
LH = 'driver.longhorn.io'


def node(name, ready='True', uuid=None, taints=None, labels=None, ip=None):
    return {'apiVersion': 'v1', 'kind': 'Node',
            'metadata': {'name': name, 'labels': dict(labels or {}), 'annotations': {}},
            'spec': {'taints': list(taints or [])},
            'status': {'conditions': [{'type': 'Ready', 'status': ready}],
                       'nodeInfo': {'systemUUID': uuid or ''},
                       'addresses': [{'type': 'InternalIP', 'address': ip}] if ip else []}}


def lease(node_name, renew):
    return {'apiVersion': 'coordination.k8s.io/v1', 'kind': 'Lease',
            'metadata': {'name': node_name, 'namespace': 'kube-node-lease'},
            'spec': {'holderIdentity': node_name, 'leaseDurationSeconds': 40, 'renewTime': renew}}


def pod(ns, name, node_name, pvcs=(), owner=None, phase='Running', terminating=False, labels=None, ready=True,
        annotations=None):
    md = {'name': name, 'namespace': ns, 'labels': dict(labels or {}), 'annotations': dict(annotations or {})}
    if owner:
        md['ownerReferences'] = [{'kind': owner[0], 'name': owner[1], 'controller': True,
                                  'uid': 'uid-{0}-{1}'.format(owner[0].lower() + 's', owner[1])}]
    if terminating:
        md['deletionTimestamp'] = '2026-01-25T20:40:00Z'
    status = {'phase': phase}
    if phase == 'Running':
        status['conditions'] = [{'type': 'Ready', 'status': 'True' if ready else 'False'}]
    return {'apiVersion': 'v1', 'kind': 'Pod', 'metadata': md,
            'spec': {'nodeName': node_name,
                     'volumes': [{'name': 'v{0}'.format(i), 'persistentVolumeClaim': {'claimName': c}}
                                 for i, c in enumerate(pvcs)]},
            'status': status}


def pv(name, ns, claim, driver=LH, handle=None):
    return {'apiVersion': 'v1', 'kind': 'PersistentVolume', 'metadata': {'name': name},
            'spec': {'claimRef': {'namespace': ns, 'name': claim},
                     'csi': {'driver': driver, 'volumeHandle': handle or name}}}


def va(name, node_name, pv_name, attached=True, attacher=LH, deleting=False, finalizers=True):
    md = {'name': name}
    if finalizers:
        md['finalizers'] = ['external-attacher/driver-longhorn-io']
    if deleting:
        md['deletionTimestamp'] = '2026-01-25T20:41:00Z'
    return {'apiVersion': 'storage.k8s.io/v1', 'kind': 'VolumeAttachment', 'metadata': md,
            'spec': {'attacher': attacher, 'nodeName': node_name, 'source': {'persistentVolumeName': pv_name}},
            'status': {'attached': attached}}


def lhva(volume, tickets):
    return {'apiVersion': 'longhorn.io/v1beta2', 'kind': 'VolumeAttachment',
            'metadata': {'name': volume, 'namespace': 'longhorn-system'},
            'spec': {'volume': volume, 'attachmentTickets': dict(
                (tid, {'id': tid, 'type': ttype, 'nodeID': tnode, 'parameters': {'disableFrontend': 'false'},
                       'generation': 0}) for tid, ttype, tnode in tickets)}}


def lhvol(name, state='attached', node_name=DEAD, robustness='healthy'):
    return {'apiVersion': 'longhorn.io/v1beta2', 'kind': 'Volume',
            'metadata': {'name': name, 'namespace': 'longhorn-system'},
            'spec': {'nodeID': node_name if state == 'attached' else ''},
            'status': {'state': state, 'robustness': robustness,
                       'currentNodeID': node_name if state == 'attached' else ''}}


def deployment(ns, name, replicas=1, labels=None):
    labels = labels or {'app': name}
    return {'apiVersion': 'apps/v1', 'kind': 'Deployment',
            'metadata': {'name': name, 'namespace': ns, 'generation': 1, 'uid': 'uid-deployments-' + name},
            'spec': {'replicas': replicas, 'selector': {'matchLabels': dict(labels)},
                     'template': {'metadata': {'labels': dict(labels)}}}}


def replicaset(ns, name, deployment_name, labels=None):
    labels = labels or {'app': deployment_name}
    return {'apiVersion': 'apps/v1', 'kind': 'ReplicaSet',
            'metadata': {'name': name, 'namespace': ns,
                         'ownerReferences': [{'kind': 'Deployment', 'name': deployment_name, 'controller': True}]},
            'spec': {'replicas': 1, 'selector': {'matchLabels': dict(labels)}}}


def statefulset(ns, name, replicas=1, labels=None):
    labels = labels or {'app': name}
    return {'apiVersion': 'apps/v1', 'kind': 'StatefulSet',
            'metadata': {'name': name, 'namespace': ns, 'generation': 1, 'uid': 'uid-statefulsets-' + name},
            'spec': {'replicas': replicas, 'selector': {'matchLabels': dict(labels)},
                     'template': {'metadata': {'labels': dict(labels)}}}}


def daemonset(ns, name, labels=None):
    labels = labels or {'app': name}
    return {'apiVersion': 'apps/v1', 'kind': 'DaemonSet',
            'metadata': {'name': name, 'namespace': ns, 'generation': 1, 'uid': 'uid-daemonsets-' + name},
            'spec': {'selector': {'matchLabels': dict(labels)}, 'template': {'metadata': {'labels': dict(labels)}}}}


def fence(uuid=UUID_DEAD, fenced=True, **extra):
    out = {'changed': True, 'fenced': fenced, 'smbios_uuid': uuid, 'power_state_before': 'running',
           'power_state_after': 'stopped' if fenced else 'running', 'vmid': 103, 'name': DEAD, 'action': 'off'}
    out.update(extra)
    return out


def seed_objects(dead_ready='Unknown', longhorn=True):
    """(resource, object) pairs for the seed incident."""
    dead = node(DEAD, ready=dead_ready, uuid=UUID_DEAD,
                taints=[{'key': 'node.kubernetes.io/unreachable', 'effect': 'NoExecute'}])
    # NotReady since 20:40:50; the kubelet's last lease renewal was 50 s before that
    dead['status']['conditions'][0]['lastTransitionTime'] = '2026-01-25T20:40:50Z'
    # what the kubelet last reported mounted before it died
    dead['status']['volumesInUse'] = ['kubernetes.io/csi/{0}^pvc-db'.format(LH),
                                      'kubernetes.io/csi/{0}^pvc-traefik'.format(LH)]
    objs = [
        ('nodes', dead),
        ('leases', lease(DEAD, '2026-01-25T20:40:00.123456Z')),
        ('nodes', node(ALIVE, ready='True', uuid=UUID_ALIVE)),
        ('deployments', deployment('traefik', 'traefik')),
        ('replicasets', replicaset('traefik', 'traefik-79fcb6d7fd', 'traefik')),
        ('statefulsets', statefulset('db', 'db')),
        ('pods', pod('traefik', 'traefik-79fcb6d7fd-pwp9v', DEAD, pvcs=['traefik-data'], labels={'app': 'traefik'},
                     owner=('ReplicaSet', 'traefik-79fcb6d7fd'), terminating=True)),
        ('pods', pod('traefik', 'traefik-79fcb6d7fd-x2k4q', ALIVE, pvcs=['traefik-data'], labels={'app': 'traefik'},
                     owner=('ReplicaSet', 'traefik-79fcb6d7fd'), phase='Pending')),
        ('pods', pod('db', 'db-0', DEAD, pvcs=['data-db-0'], labels={'app': 'db'}, owner=('StatefulSet', 'db'),
                     terminating=True)),
        ('pods', pod('kube-system', 'kube-proxy-abcde', DEAD, owner=('DaemonSet', 'kube-proxy'),
                     labels={'app': 'kube-proxy'})),
        ('persistentvolumes', pv('pvc-traefik', 'traefik', 'traefik-data')),
        ('persistentvolumes', pv('pvc-db', 'db', 'data-db-0')),
        ('volumeattachments', va('csi-aaa', DEAD, 'pvc-traefik')),
        ('volumeattachments', va('csi-bbb', DEAD, 'pvc-db')),
        ('volumeattachments', va('csi-ccc', ALIVE, 'pvc-other')),
    ]
    if longhorn:
        objs += [
            ('lh.volumeattachments', lhva('pvc-traefik', [('csi-aaa', 'csi-attacher', DEAD)])),
            ('lh.volumeattachments', lhva('pvc-db', [('csi-bbb', 'csi-attacher', DEAD),
                                                     ('longhorn-ui', 'longhorn-api', ALIVE)])),
            ('lh.volumes', lhvol('pvc-traefik')),
            ('lh.volumes', lhvol('pvc-db')),
        ]
    return objs


def observed_from(objs, node_name=DEAD, longhorn=True):
    """The observed dict plan_force_detach takes, built from (resource, object) pairs."""
    by = {}
    for res, obj in objs:
        by.setdefault(res, []).append(copy.deepcopy(obj))
    nodes = dict((n['metadata']['name'], n) for n in by.get('nodes', []))
    return {
        'node': nodes.get(node_name),
        'pods': [p for p in by.get('pods', []) if p['spec'].get('nodeName') == node_name],
        'volume_attachments': by.get('volumeattachments', []),
        'pvs': by.get('persistentvolumes', []),
        'longhorn': longhorn,
        'longhorn_attachments': by.get('lh.volumeattachments', []) if longhorn else [],
        'longhorn_volumes': by.get('lh.volumes', []) if longhorn else [],
        'replicasets': dict(('{0}/{1}'.format(r['metadata']['namespace'], r['metadata']['name']), r)
                            for r in by.get('replicasets', [])),
        'lease': next((l for l in by.get('leases', []) if l['metadata']['name'] == node_name), None),
    }
