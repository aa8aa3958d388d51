# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small, bounded Kubernetes client on top of the official ``kubernetes`` Python client.

* Configuration the way kubernetes.core builds it (explicit host + credentials, else kubeconfig
  path or dict and context, else in-cluster, else ~/.kube/config), TLS verification on by default.
* The typed APIs' method names (``client.core.read_node``, ``client.apps.list_namespaced_deployment``,
  ``client.custom.list_namespaced_custom_object`` for ``longhorn.io``, ...) answered by a slim REST layer
  (k8s/rest.py) over the official client's configuration and connection pool, without the typed classes and
  their model tree (a second of start-up per module run). Answers are decoded to plain dicts in the API's own
  camelCase shape, so the planners work on the same dicts whether they come from a cluster, the lab twin or
  a fixture.
* Every call has a request timeout and bounded retries with backoff (plugins/module_utils/retry.py)
  for 409 Conflict, 429, 5xx, timeouts and network faults; read-modify-write helpers re-read the
  object on a 409 before trying again. Every failure is a classified ``K8sError``.

The import of ``kubernetes`` is guarded: ``HAS_K8S`` / ``K8S_IMPORT_ERROR`` let a module fail with
``missing_required_lib('kubernetes')`` and let ansible-test's import sanity pass without it.
"""

from __future__ import annotations

import base64
import json
import time
import traceback

from ansible_collections.tazlab.resilience.plugins.module_utils.retry import RetryPolicy, retry_call
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.rest import Transport, apis_for
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.errors import (
    CONFIG, K8sError, classify_exception, is_transient, retry_after_of,
)
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.objects import parse_http_date

try:
    import kubernetes
    from kubernetes import client as k8s_client
    from kubernetes import config as k8s_config
    HAS_K8S = True
    K8S_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - exercised by ansible-test import sanity
    kubernetes = None
    k8s_client = None
    k8s_config = None
    HAS_K8S = False
    K8S_IMPORT_ERROR = traceback.format_exc()

__all__ = ['HAS_K8S', 'K8S_IMPORT_ERROR', 'K8sClient', 'build_configuration', 'client_from_params',
           'STRATEGIC', 'MERGE', 'JSON_PATCH', 'LONGHORN_GROUP', 'LONGHORN_VERSION', 'LONGHORN_NAMESPACE']

STRATEGIC = 'application/strategic-merge-patch+json'
MERGE = 'application/merge-patch+json'
JSON_PATCH = 'application/json-patch+json'

LONGHORN_GROUP = 'longhorn.io'
LONGHORN_VERSION = 'v1beta2'
LONGHORN_NAMESPACE = 'longhorn-system'

FIELD_MANAGER = 'tazlab.resilience'


def build_configuration(auth):
    """A kubernetes.client.Configuration from auth settings (see args.auth_from_params).

    Raises K8sError(kind=config) when nothing usable is found.
    """
    if not HAS_K8S:
        raise K8sError(CONFIG, 'the kubernetes Python client is not installed')
    auth = dict(auth or {})
    host = (auth.get('host') or '').rstrip('/') or None
    configuration = k8s_client.Configuration()
    explicit = host and (auth.get('api_key') or (auth.get('username') and auth.get('password'))
                         or (auth.get('client_cert') and auth.get('client_key')))
    try:
        if explicit:
            pass
        elif auth.get('kubeconfig') or auth.get('context'):
            _load_kubeconfig(auth, configuration)
        else:
            try:
                k8s_config.load_incluster_config(client_configuration=configuration)
            except k8s_config.ConfigException:
                _load_kubeconfig(auth, configuration)
    except K8sError:
        raise
    except Exception as exc:  # ConfigException, IOError, YAML errors
        raise K8sError(CONFIG, 'cannot load Kubernetes client configuration: {0}'.format(exc))

    if host:
        configuration.host = host
    if auth.get('api_key'):
        configuration.api_key = {'authorization': 'Bearer {0}'.format(auth['api_key'])}
        configuration.api_key_prefix = {}
    if auth.get('username') is not None:
        configuration.username = auth['username']
    if auth.get('password') is not None:
        configuration.password = auth['password']
    if auth.get('validate_certs') is not None:
        configuration.verify_ssl = bool(auth['validate_certs'])
    if auth.get('ca_cert'):
        configuration.ssl_ca_cert = auth['ca_cert']
    if auth.get('client_cert'):
        configuration.cert_file = auth['client_cert']
    if auth.get('client_key'):
        configuration.key_file = auth['client_key']
    if auth.get('proxy'):
        configuration.proxy = auth['proxy']
    if auth.get('no_proxy'):
        configuration.no_proxy = auth['no_proxy']
    if auth.get('proxy_headers'):
        headers = dict((k, v) for k, v in auth['proxy_headers'].items() if v)
        if headers:
            import urllib3
            configuration.proxy_headers = urllib3.util.make_headers(**headers)
    # One attempt per request at the urllib3 level: our RetryPolicy owns retries and their bounds.
    configuration.retries = 0
    if not configuration.host:
        raise K8sError(CONFIG, 'no Kubernetes API host: give host, kubeconfig or K8S_AUTH_* settings')
    return configuration


def _load_kubeconfig(auth, configuration):
    kubeconfig = auth.get('kubeconfig')
    context = auth.get('context')
    # persist_config (kubernetes.core): write refreshed tokens (OIDC, exec) back to a kubeconfig file.
    persist = bool(auth.get('persist_config')) and not isinstance(kubeconfig, dict)
    if isinstance(kubeconfig, dict):
        k8s_config.load_kube_config_from_dict(config_dict=kubeconfig, context=context,
                                              client_configuration=configuration, persist_config=False)
    else:
        k8s_config.load_kube_config(config_file=kubeconfig or None, context=context,
                                    client_configuration=configuration, persist_config=persist)


def build_api_client(auth):
    """A kubernetes.client.ApiClient with the auth settings applied (headers for basic auth, impersonation)."""
    configuration = build_configuration(auth)
    api = k8s_client.ApiClient(configuration)
    if configuration.username and configuration.password and not configuration.api_key:
        token = base64.b64encode('{0}:{1}'.format(configuration.username, configuration.password).encode()).decode()
        api.set_default_header('Authorization', 'Basic ' + token)
    if auth.get('impersonate_user'):
        api.set_default_header('Impersonate-User', auth['impersonate_user'])
    groups = auth.get('impersonate_groups') or []
    if isinstance(groups, str):
        groups = [g.strip() for g in groups.split(',') if g.strip()]
    if len(groups) > 1:
        # The API server takes one Impersonate-Group header per group; the Python client sends one value per
        # header name, and a comma-joined value would name a single group "a,b".
        raise K8sError(CONFIG, 'impersonate_groups: the kubernetes Python client can send one impersonated group, '
                               'not {0} ({1})'.format(len(groups), ', '.join(groups)))
    if groups:
        if not auth.get('impersonate_user'):
            raise K8sError(CONFIG, 'impersonate_groups needs impersonate_user (the API server impersonates a user '
                                   'with groups, not groups alone)')
        api.set_default_header('Impersonate-Group', groups[0])
    api.user_agent = 'tazlab.resilience/kubernetes-python-{0}'.format(getattr(kubernetes, '__version__', '?'))
    return api


def client_from_params(params, sleep=time.sleep):
    """A K8sClient from validated module params (auth options + request_timeout + api_retries)."""
    from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.args import auth_from_params
    api = build_api_client(auth_from_params(params))
    # Bounded by a deadline (tens of seconds, so an apiserver restart or a throttling burst is ridden out),
    # not by a handful of quick tries.
    deadline = params.get('api_retry_deadline')
    policy = RetryPolicy(attempts=max(1, int(params.get('api_retries') or 1)), base_delay=0.5, max_delay=8.0,
                         jitter=0.5, deadline=None if deadline is None else float(deadline))
    return K8sClient(api, request_timeout=params.get('request_timeout') or 30.0, retry_policy=policy, sleep=sleep)


class K8sClient(object):
    """Bounded, retried access to the few Kubernetes resources this collection touches; dicts in, dicts out."""

    def __init__(self, api_client, request_timeout=30.0, retry_policy=None, sleep=time.sleep):
        self.api_client = api_client
        self.request_timeout = request_timeout
        self.retry_policy = retry_policy or RetryPolicy(attempts=4, base_delay=0.5, max_delay=8.0)
        self.sleep = sleep
        # The slim REST layer (k8s/rest.py) answers the typed APIs' method names without importing their
        # model tree: core, apps, storage, discovery, coordination, policy, autoscaling, custom, apis.
        self.transport = Transport(api_client)
        for attr, api in apis_for(self.transport).items():
            setattr(self, attr, api)
        self.writes = 0          # write requests sent (for reports and tests)
        self.server_time = None  # the API server's clock at the last response (epoch seconds)
        self._groups = None
        self._in_rmw = 0         # inside read_modify_write: a 409 means re-read, not re-send

    # -- plumbing ---------------------------------------------------------------------------------
    def _once(self, what, func, kwargs):
        try:
            response = func(_preload_content=False, _request_timeout=self.request_timeout, **kwargs)
            self._note_server_time(response)
            data = response.data if hasattr(response, 'data') else response.read()
            if not data:
                return None
            return json.loads(data)
        except Exception as exc:  # noqa: BLE001 - classified below
            raise classify_exception(exc, what=what)

    def _note_server_time(self, response):
        """Keep the API server's clock (its Date header): durations of cluster objects are judged with it."""
        headers = getattr(response, 'headers', None) or {}
        date = headers.get('Date') or headers.get('date')
        when = parse_http_date(date)
        if when is not None:
            self.server_time = when

    def call(self, what, func, write=False, **kwargs):
        """func(**kwargs) with the request timeout, retried within the policy; returns the decoded body."""
        if write:
            self.writes += 1
        predicate = _transient_but_conflict if self._in_rmw else is_transient
        return retry_call(lambda: self._once(what, func, kwargs), is_transient=predicate,
                          policy=self.retry_policy, sleep=self.sleep, retry_after=retry_after_of)

    def read_modify_write(self, what, read, modify, write, attempts=5):
        """Re-read, modify and write until the write is not a 409 Conflict (at most `attempts` rounds).

        modify(obj) returns the new object (or None when nothing needs writing, which ends the loop);
        write(new) sends it with the resourceVersion it was read at, so a concurrent writer makes the
        apiserver answer 409 and we start over from a fresh read. Returns (written: bool, obj).
        """
        last = None
        for _attempt in range(max(1, attempts)):
            current = read()
            new = modify(current)
            if new is None:
                return False, current
            self._in_rmw += 1
            try:
                return True, write(new)
            except K8sError as exc:
                if exc.kind != 'conflict':
                    raise
                last = exc
                self.sleep(0.1)
            finally:
                self._in_rmw -= 1
        raise K8sError('conflict', '{0}: still conflicting after {1} read-modify-write rounds: {2}'.format(
            what, attempts, last), status=409, what=what)

    def get_raw(self, path):
        """(status, text) of a GET of a non-resource path (``/readyz``, ``/metrics``) with the client's
        credentials, whatever the status; one request, no retry (the callers poll)."""
        try:
            response = self.transport.request('GET', path, timeout=self.request_timeout, accept='*/*',
                                              raise_for_status=False)
        except Exception as exc:  # noqa: BLE001 - classified below
            raise classify_exception(exc, what='GET {0}'.format(path))
        self._note_server_time(response)
        return response.status, (response.data or b'').decode('utf-8', 'replace')

    @staticmethod
    def items(listing):
        return list((listing or {}).get('items') or [])

    # -- discovery --------------------------------------------------------------------------------
    def api_groups(self, refresh=False):
        """{group name: [versions]} from GET /apis (cached)."""
        if self._groups is None or refresh:
            data = self.call('list API groups', self.apis.get_api_versions)
            groups = {}
            for group in (data or {}).get('groups') or []:
                groups[group.get('name')] = [v.get('version') for v in group.get('versions') or []]
            self._groups = groups
        return self._groups

    def has_api(self, group, version):
        return version in self.api_groups().get(group, [])

    # -- nodes ------------------------------------------------------------------------------------
    def get_node(self, name):
        return self.call('get node {0}'.format(name), self.core.read_node, name=name)

    def list_nodes(self, label_selector=None):
        kwargs = {'label_selector': label_selector} if label_selector else {}
        return self.items(self.call('list nodes', self.core.list_node, **kwargs))

    def patch_node(self, name, body, content_type=STRATEGIC):
        return self.call('patch node {0}'.format(name), self.core.patch_node, write=True, name=name, body=body,
                         field_manager=FIELD_MANAGER, _content_type=content_type)

    def patch_node_status(self, name, body, content_type=MERGE):
        return self.call('patch node {0} status'.format(name), self.core.patch_node_status, write=True, name=name,
                         body=body, field_manager=FIELD_MANAGER, _content_type=content_type)

    def get_node_lease(self, name):
        """The kubelet's heartbeat Lease kube-node-lease/<node> (None when there is none)."""
        try:
            return self.call('get lease kube-node-lease/{0}'.format(name), self.coordination.read_namespaced_lease,
                             namespace='kube-node-lease', name=name)
        except K8sError as exc:
            if exc.kind == 'not_found':
                return None
            raise

    def node_system_uuid(self, name):
        """status.nodeInfo.systemUUID of the node called `name` (the SMBIOS UUID of its VM)."""
        return system_uuid_of(self.get_node(name))

    # -- pods -------------------------------------------------------------------------------------
    def list_pods(self, namespace=None, field_selector=None, label_selector=None):
        kwargs = {}
        if field_selector:
            kwargs['field_selector'] = field_selector
        if label_selector:
            kwargs['label_selector'] = label_selector
        if namespace:
            return self.items(self.call('list pods in {0}'.format(namespace), self.core.list_namespaced_pod,
                                        namespace=namespace, **kwargs))
        return self.items(self.call('list pods', self.core.list_pod_for_all_namespaces, **kwargs))

    def pods_on_node(self, node):
        return self.list_pods(field_selector='spec.nodeName={0}'.format(node))

    def delete_pod(self, namespace, name, grace_period_seconds=None):
        kwargs = {'propagation_policy': 'Background'}
        if grace_period_seconds is not None:
            kwargs['grace_period_seconds'] = int(grace_period_seconds)
        return self.call('delete pod {0}/{1}'.format(namespace, name), self.core.delete_namespaced_pod, write=True,
                         namespace=namespace, name=name, **kwargs)

    # -- volumes ----------------------------------------------------------------------------------
    def list_pvs(self):
        return self.items(self.call('list persistentvolumes', self.core.list_persistent_volume))

    def list_volume_attachments(self):
        # No field selector: spec.nodeName is not a VolumeAttachment field selector (HTTP 400).
        return self.items(self.call('list volumeattachments', self.storage.list_volume_attachment))

    def delete_volume_attachment(self, name):
        return self.call('delete volumeattachment {0}'.format(name), self.storage.delete_volume_attachment,
                         write=True, name=name, propagation_policy='Background')

    def patch_volume_attachment(self, name, body, content_type=MERGE):
        return self.call('patch volumeattachment {0}'.format(name), self.storage.patch_volume_attachment,
                         write=True, name=name, body=body, field_manager=FIELD_MANAGER, _content_type=content_type)

    # -- custom resources (Longhorn) --------------------------------------------------------------
    def list_custom(self, plural, namespace=LONGHORN_NAMESPACE, group=LONGHORN_GROUP, version=LONGHORN_VERSION):
        return self.items(self.call('list {0}.{1}'.format(plural, group), self.custom.list_namespaced_custom_object,
                                    group=group, version=version, namespace=namespace, plural=plural))

    def get_custom(self, plural, name, namespace=LONGHORN_NAMESPACE, group=LONGHORN_GROUP, version=LONGHORN_VERSION):
        return self.call('get {0}.{1} {2}'.format(plural, group, name), self.custom.get_namespaced_custom_object,
                         group=group, version=version, namespace=namespace, plural=plural, name=name)

    def patch_custom(self, plural, name, body, namespace=LONGHORN_NAMESPACE, group=LONGHORN_GROUP,
                     version=LONGHORN_VERSION):
        # Custom resources reject strategic merge patch (415): always a JSON merge patch.
        return self.call('patch {0}.{1} {2}'.format(plural, group, name), self.custom.patch_namespaced_custom_object,
                         write=True, group=group, version=version, namespace=namespace, plural=plural, name=name,
                         body=body, field_manager=FIELD_MANAGER, _content_type=MERGE)

    # -- workloads --------------------------------------------------------------------------------
    _APPS_READ = {'Deployment': 'read_namespaced_deployment', 'DaemonSet': 'read_namespaced_daemon_set',
                  'StatefulSet': 'read_namespaced_stateful_set', 'ReplicaSet': 'read_namespaced_replica_set'}
    _APPS_PATCH = {'Deployment': 'patch_namespaced_deployment', 'DaemonSet': 'patch_namespaced_daemon_set',
                   'StatefulSet': 'patch_namespaced_stateful_set'}

    _APPS_LIST = {'Deployment': 'list_namespaced_deployment', 'DaemonSet': 'list_namespaced_daemon_set',
                  'StatefulSet': 'list_namespaced_stateful_set', 'ReplicaSet': 'list_namespaced_replica_set'}

    def list_workloads(self, kind, namespace):
        """Every workload of a kind in a namespace, in one request."""
        return self.items(self.call('list {0}s in {1}'.format(kind, namespace),
                                    getattr(self.apps, self._APPS_LIST[kind]), namespace=namespace))

    def get_workload(self, kind, namespace, name):
        return self.call('get {0} {1}/{2}'.format(kind, namespace, name), getattr(self.apps, self._APPS_READ[kind]),
                         namespace=namespace, name=name)

    def patch_workload(self, kind, namespace, name, body):
        return self.call('patch {0} {1}/{2}'.format(kind, namespace, name), getattr(self.apps, self._APPS_PATCH[kind]),
                         write=True, namespace=namespace, name=name, body=body, field_manager=FIELD_MANAGER,
                         _content_type=STRATEGIC)

    # -- endpoints --------------------------------------------------------------------------------
    def get_endpoints(self, namespace, name):
        return self.call('get endpoints {0}/{1}'.format(namespace, name), self.core.read_namespaced_endpoints,
                         namespace=namespace, name=name)

    def replace_endpoints(self, namespace, name, body):
        return self.call('replace endpoints {0}/{1}'.format(namespace, name), self.core.replace_namespaced_endpoints,
                         write=True, namespace=namespace, name=name, body=body, field_manager=FIELD_MANAGER)

    def create_endpoints(self, namespace, body):
        return self.call('create endpoints {0}/{1}'.format(namespace, body['metadata']['name']),
                         self.core.create_namespaced_endpoints, write=True, namespace=namespace, body=body,
                         field_manager=FIELD_MANAGER)

    def list_endpoint_slices(self, namespace, label_selector=None):
        kwargs = {'label_selector': label_selector} if label_selector else {}
        return self.items(self.call('list endpointslices in {0}'.format(namespace),
                                    self.discovery.list_namespaced_endpoint_slice, namespace=namespace, **kwargs))

    def replace_endpoint_slice(self, namespace, name, body):
        return self.call('replace endpointslice {0}/{1}'.format(namespace, name),
                         self.discovery.replace_namespaced_endpoint_slice, write=True, namespace=namespace,
                         name=name, body=body, field_manager=FIELD_MANAGER)

    def create_endpoint_slice(self, namespace, body):
        return self.call('create endpointslice {0}/{1}'.format(namespace, body['metadata']['name']),
                         self.discovery.create_namespaced_endpoint_slice, write=True, namespace=namespace,
                         body=body, field_manager=FIELD_MANAGER)

    def delete_endpoint_slice(self, namespace, name):
        return self.call('delete endpointslice {0}/{1}'.format(namespace, name),
                         self.discovery.delete_namespaced_endpoint_slice, write=True, namespace=namespace, name=name)


def _transient_but_conflict(exc):
    """Inside a read-modify-write a 409 Conflict goes back to the caller, who re-reads before writing again."""
    return is_transient(exc) and classify_exception(exc).kind != 'conflict'


def system_uuid_of(node):
    """status.nodeInfo.systemUUID of a node dict ('' when absent)."""
    return (((node or {}).get('status') or {}).get('nodeInfo') or {}).get('systemUUID') or ''


def node_system_uuid(client, name):
    """The systemUUID of the Kubernetes node called `name` (what proxmox_fence matches a VM's SMBIOS UUID to)."""
    return client.node_system_uuid(name)
