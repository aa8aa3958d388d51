"""An in-memory stand-in for K8sClient (same method names, dicts in and out) plus a tiny 'world'.

Only what the unit tests of the executors need: objects keyed by resource/namespace/name, the
resourceVersion conflict rule, finalizers on delete, label selectors of the form k=v[,k=v], a write log,
and hooks run on every sleep so a test can play controllers (pod GC, attacher, scheduler).
"""

from __future__ import annotations

import copy

from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.client import K8sClient
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.errors import K8sError


class FakeClock(object):
    def __init__(self):
        self.t = 0.0
        self.hooks = []

    def __call__(self):
        return self.t

    def sleep(self, seconds):
        self.t += max(float(seconds), 0.001)
        for hook in list(self.hooks):
            hook(self.t)


def _key(obj):
    md = obj.get('metadata') or {}
    return md.get('namespace'), md['name']


def _match(labels, selector):
    if not selector:
        return True
    for part in selector.split(','):
        k, v = part.split('=', 1)
        if (labels or {}).get(k) != v:
            return False
    return True


class FakeK8s(K8sClient):
    """Implements the K8sClient surface on dicts. read_modify_write is the real one."""

    def __init__(self, objects=None, clock=None, longhorn=True):
        # No super().__init__: no ApiClient, no network.
        self.clock = clock or FakeClock()
        self.sleep = self.clock.sleep
        self.request_timeout = 1
        self.writes = 0
        self.log = []
        self.rv = 100
        self.longhorn = longhorn
        self.store = {}
        self.fail_next = {}
        self._in_rmw = 0
        for res, obj in objects or []:
            self.put(res, obj)

    # -- store ------------------------------------------------------------------------------------
    def put(self, res, obj):
        obj = copy.deepcopy(obj)
        self.rv += 1
        obj.setdefault('metadata', {})['resourceVersion'] = str(self.rv)
        obj['metadata'].setdefault('uid', 'uid-{0}-{1}'.format(res, obj['metadata']['name']))
        self.store.setdefault(res, {})[_key(obj)] = obj
        return copy.deepcopy(obj)

    def obj(self, res, ns, name):
        return self.store.get(res, {}).get((ns, name))

    def all(self, res):
        return [copy.deepcopy(o) for o in self.store.get(res, {}).values()]

    def remove(self, res, ns, name):
        self.store.get(res, {}).pop((ns, name), None)

    def _get(self, res, ns, name, what):
        self._maybe_fail(what)
        found = self.obj(res, ns, name)
        if found is None:
            raise K8sError('not_found', '{0}: not found (404 Not Found)'.format(what), status=404)
        return copy.deepcopy(found)

    def _write(self, verb, res, ns, name, body=None):
        self.writes += 1
        self.log.append((verb, res, ns, name, copy.deepcopy(body)))

    def _maybe_fail(self, what):
        for prefix, errors in list(self.fail_next.items()):
            if what.startswith(prefix) and errors:
                raise errors.pop(0)

    def write_log(self):
        return [(verb, res, ns, name) for verb, res, ns, name, dummy in self.log]

    # -- discovery --------------------------------------------------------------------------------
    def has_api(self, group, version):
        return self.longhorn and group == 'longhorn.io'

    # -- nodes ------------------------------------------------------------------------------------
    def get_node(self, name):
        return self._get('nodes', None, name, 'get node {0}'.format(name))

    def get_node_lease(self, name):
        found = self.obj('leases', 'kube-node-lease', name)
        return copy.deepcopy(found) if found else None

    def list_nodes(self, label_selector=None):
        return [o for o in self.all('nodes') if _match(o['metadata'].get('labels'), label_selector)]

    def patch_node(self, name, body, content_type=None):
        current = self._get('nodes', None, name, 'patch node {0}'.format(name))
        want_rv = (body.get('metadata') or {}).get('resourceVersion')
        if want_rv and want_rv != current['metadata']['resourceVersion']:
            raise K8sError('conflict', 'Operation cannot be fulfilled on nodes "{0}"'.format(name), status=409)
        annotations = dict(current['metadata'].get('annotations') or {})
        for k, v in ((body.get('metadata') or {}).get('annotations') or {}).items():
            if v is None:
                annotations.pop(k, None)
            else:
                annotations[k] = v
        current['metadata']['annotations'] = annotations
        spec = body.get('spec') or {}
        if 'taints' in spec:
            current.setdefault('spec', {})['taints'] = spec['taints'] or []
        self._write('patch', 'nodes', None, name, body)
        return self.put('nodes', current)

    def patch_node_status(self, name, body, content_type=None):
        current = self._get('nodes', None, name, 'patch node {0} status'.format(name))
        want_rv = (body.get('metadata') or {}).get('resourceVersion')
        if want_rv and want_rv != current['metadata']['resourceVersion']:
            raise K8sError('conflict', 'Operation cannot be fulfilled on nodes "{0}"'.format(name), status=409)
        current.setdefault('status', {}).update(body.get('status') or {})
        self._write('patch', 'nodes/status', None, name, body)
        return self.put('nodes', current)

    # -- pods -------------------------------------------------------------------------------------
    def list_pods(self, namespace=None, field_selector=None, label_selector=None):
        out = []
        for pod in self.all('pods'):
            if namespace and pod['metadata'].get('namespace') != namespace:
                continue
            if field_selector:
                key, value = field_selector.split('=', 1)
                assert key == 'spec.nodeName'
                if (pod.get('spec') or {}).get('nodeName') != value:
                    continue
            if not _match(pod['metadata'].get('labels'), label_selector):
                continue
            out.append(pod)
        return out

    def pods_on_node(self, node):
        return self.list_pods(field_selector='spec.nodeName={0}'.format(node))

    def delete_pod(self, namespace, name, grace_period_seconds=None):
        pod = self._get('pods', namespace, name, 'delete pod {0}/{1}'.format(namespace, name))
        self._write('delete', 'pods', namespace, name, {'gracePeriodSeconds': grace_period_seconds})
        if grace_period_seconds == 0 or not (pod.get('spec') or {}).get('nodeName'):
            self.remove('pods', namespace, name)
        else:
            pod['metadata']['deletionTimestamp'] = '2026-01-25T20:45:28Z'
            self.put('pods', pod)
        return pod

    # -- volumes ----------------------------------------------------------------------------------
    def list_pvs(self):
        return self.all('persistentvolumes')

    def list_volume_attachments(self):
        return self.all('volumeattachments')

    def delete_volume_attachment(self, name):
        va = self._get('volumeattachments', None, name, 'delete volumeattachment {0}'.format(name))
        self._write('delete', 'volumeattachments', None, name)
        if va['metadata'].get('finalizers'):
            va['metadata']['deletionTimestamp'] = '2026-01-25T20:45:28Z'
            return self.put('volumeattachments', va)
        self.remove('volumeattachments', None, name)
        return va

    def patch_volume_attachment(self, name, body, content_type=None):
        va = self._get('volumeattachments', None, name, 'patch volumeattachment {0}'.format(name))
        self._write('patch', 'volumeattachments', None, name, body)
        md = body.get('metadata') or {}
        if 'finalizers' in md:
            va['metadata']['finalizers'] = md['finalizers'] or []
        if va['metadata'].get('deletionTimestamp') and not va['metadata'].get('finalizers'):
            self.remove('volumeattachments', None, name)
            return va
        return self.put('volumeattachments', va)

    # -- Longhorn ---------------------------------------------------------------------------------
    def list_custom(self, plural, namespace='longhorn-system', group='longhorn.io', version='v1beta2'):
        return [o for o in self.all('lh.' + plural) if o['metadata'].get('namespace') == namespace]

    def get_custom(self, plural, name, namespace='longhorn-system', group='longhorn.io', version='v1beta2'):
        return self._get('lh.' + plural, namespace, name, 'get {0} {1}'.format(plural, name))

    def patch_custom(self, plural, name, body, namespace='longhorn-system', group='longhorn.io', version='v1beta2'):
        obj = self._get('lh.' + plural, namespace, name, 'patch {0} {1}'.format(plural, name))
        self._write('patch', 'lh.' + plural, namespace, name, body)
        tickets = obj.setdefault('spec', {}).setdefault('attachmentTickets', {})
        for tid, value in ((body.get('spec') or {}).get('attachmentTickets') or {}).items():
            if value is None:
                tickets.pop(tid, None)
            else:
                tickets[tid] = value
        return self.put('lh.' + plural, obj)

    # -- workloads --------------------------------------------------------------------------------
    def get_workload(self, kind, namespace, name):
        return self._get(kind.lower() + 's', namespace, name, 'get {0} {1}/{2}'.format(kind, namespace, name))

    def list_workloads(self, kind, namespace):
        self._maybe_fail('list {0}s in {1}'.format(kind, namespace))
        return [o for o in self.all(kind.lower() + 's') if o['metadata'].get('namespace') == namespace]

    def patch_workload(self, kind, namespace, name, body):
        obj = self._get(kind.lower() + 's', namespace, name, 'patch {0} {1}/{2}'.format(kind, namespace, name))
        self._write('patch', kind.lower() + 's', namespace, name, body)
        ann = (((body.get('spec') or {}).get('template') or {}).get('metadata') or {}).get('annotations') or {}
        tmpl = obj.setdefault('spec', {}).setdefault('template', {}).setdefault('metadata', {})
        tmpl.setdefault('annotations', {}).update(ann)
        obj['metadata']['generation'] = int(obj['metadata'].get('generation') or 1) + 1
        return self.put(kind.lower() + 's', obj)

    # -- endpoints --------------------------------------------------------------------------------
    def get_endpoints(self, namespace, name):
        return self._get('endpoints', namespace, name, 'get endpoints {0}/{1}'.format(namespace, name))

    def _replace(self, res, namespace, name, body):
        current = self._get(res, namespace, name, 'replace {0} {1}/{2}'.format(res, namespace, name))
        if body['metadata'].get('resourceVersion') != current['metadata']['resourceVersion']:
            raise K8sError('conflict', 'the object has been modified', status=409)
        self._write('replace', res, namespace, name, body)
        return self.put(res, body)

    def _create(self, res, namespace, body):
        if self.obj(res, namespace, body['metadata']['name']) is not None:
            raise K8sError('already_exists', 'already exists', status=409)
        self._write('create', res, namespace, body['metadata']['name'], body)
        body = copy.deepcopy(body)
        body['metadata']['namespace'] = namespace
        return self.put(res, body)

    def replace_endpoints(self, namespace, name, body):
        return self._replace('endpoints', namespace, name, body)

    def create_endpoints(self, namespace, body):
        return self._create('endpoints', namespace, body)

    def list_endpoint_slices(self, namespace, label_selector=None):
        return [o for o in self.all('endpointslices') if o['metadata'].get('namespace') == namespace
                and _match(o['metadata'].get('labels'), label_selector)]

    def replace_endpoint_slice(self, namespace, name, body):
        return self._replace('endpointslices', namespace, name, body)

    def create_endpoint_slice(self, namespace, body):
        return self._create('endpointslices', namespace, body)

    def delete_endpoint_slice(self, namespace, name):
        self._get('endpointslices', namespace, name, 'delete endpointslice')
        self._write('delete', 'endpointslices', namespace, name)
        self.remove('endpointslices', namespace, name)
        return {'kind': 'Status', 'status': 'Success'}
