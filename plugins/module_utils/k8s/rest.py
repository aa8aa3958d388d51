# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A slim REST layer for the few Kubernetes resources the collection touches (issue 21: module start-up).

The official client's typed APIs (``CoreV1Api``, ``AppsV1Api``, ...) import their whole model tree when first
touched: about a second per module run with kubernetes 37, for classes whose answers this collection never
uses (every call asks for ``_preload_content=False`` and decodes the JSON itself). This layer keeps what is
worth keeping from the official client (its ``Configuration``: kubeconfig, exec and OIDC token refresh,
in-cluster config, TLS, proxies; and its urllib3 pool) and sends the requests itself.

:class:`RestApi` answers the typed APIs' method names (``read_node``, ``list_namespaced_pod``,
``patch_namespaced_lease``, ``create_namespaced_pod_eviction``, ``list_deployment_for_all_namespaces``,
``get_namespaced_custom_object``, ...) with the same keyword arguments, so the callers read as they did::

    client.call('get node n1', client.core.read_node, name='n1')

A method name is ``<verb>_[namespaced_]<kind>[_<subresource>][_for_all_namespaces]`` with verb one of
``list read create replace patch delete`` (``get`` for custom objects), and kind one of the group's kinds in
:data:`GROUPS`; anything else is an ``AttributeError``, as on the typed client. Answers are urllib3 responses
(``status``, ``data``, ``headers``); an HTTP error status raises :class:`HttpStatusError`, which
``errors.classify_exception`` reads as it reads the official client's ``ApiException``.

Nothing here imports ``kubernetes``: the transport is given the ``ApiClient`` already built.
"""

from __future__ import annotations

import json
import re
from urllib.parse import quote, urlencode

__all__ = ['GROUPS', 'HttpStatusError', 'RestApi', 'Transport', 'apis_for', 'parse_method', 'query_name']

#: API attribute name -> (group, version, {kind in snake_case: (plural, namespaced)}).
GROUPS = {
    'core': ('', 'v1', {
        'node': ('nodes', False), 'namespace': ('namespaces', False), 'pod': ('pods', True),
        'persistent_volume': ('persistentvolumes', False),
        'persistent_volume_claim': ('persistentvolumeclaims', True), 'secret': ('secrets', True),
        'config_map': ('configmaps', True), 'endpoints': ('endpoints', True), 'event': ('events', True),
        'service': ('services', True),
    }),
    'apps': ('apps', 'v1', {
        'deployment': ('deployments', True), 'daemon_set': ('daemonsets', True),
        'stateful_set': ('statefulsets', True), 'replica_set': ('replicasets', True),
    }),
    'storage': ('storage.k8s.io', 'v1', {'volume_attachment': ('volumeattachments', False)}),
    'discovery': ('discovery.k8s.io', 'v1', {'endpoint_slice': ('endpointslices', True)}),
    'coordination': ('coordination.k8s.io', 'v1', {'lease': ('leases', True)}),
    'policy': ('policy', 'v1', {'pod_disruption_budget': ('poddisruptionbudgets', True)}),
    'autoscaling': ('autoscaling', 'v2', {'horizontal_pod_autoscaler': ('horizontalpodautoscalers', True)}),
}

VERBS = {'list': 'GET', 'read': 'GET', 'get': 'GET', 'create': 'POST', 'replace': 'PUT', 'patch': 'PATCH',
         'delete': 'DELETE'}

#: Keyword arguments of the typed methods that are not query parameters.
_NOT_QUERY = ('name', 'namespace', 'body', 'group', 'version', 'plural')
#: Query parameters whose Python name is not the camelCase of the wire name.
_QUERY_NAMES = {'_continue': 'continue'}


class HttpStatusError(Exception):
    """An HTTP error status from the API server (what the official client raises as ApiException)."""

    def __init__(self, status, reason, body, headers):
        super(HttpStatusError, self).__init__('({0}) {1}'.format(status, reason or ''))
        self.status = status
        self.reason = reason
        self.body = body
        self.headers = headers


def query_name(key):
    """The wire name of a typed method's query keyword: label_selector -> labelSelector."""
    if key in _QUERY_NAMES:
        return _QUERY_NAMES[key]
    head, *rest = key.split('_')
    return head + ''.join(part.title() for part in rest)


def parse_method(method, kinds):
    """(verb, kind, subresource, namespaced, all_namespaces) of a typed method name, or None. Pure."""
    verb, sep, rest = method.partition('_')
    if verb not in VERBS or not sep or not rest:
        return None
    all_namespaces = rest.endswith('_for_all_namespaces')
    if all_namespaces:
        rest = rest[:-len('_for_all_namespaces')]
    namespaced = rest.startswith('namespaced_')
    if namespaced:
        rest = rest[len('namespaced_'):]
    for kind in sorted(kinds, key=len, reverse=True):
        if rest == kind:
            sub = None
        elif rest.startswith(kind + '_'):
            sub = rest[len(kind) + 1:]
        else:
            continue
        if namespaced != kinds[kind][1] and not all_namespaces:
            return None
        if all_namespaces and (verb != 'list' or namespaced or not kinds[kind][1]):
            return None
        return verb, kind, sub, kinds[kind][1], all_namespaces
    return None


class Transport(object):
    """One request over the ApiClient's urllib3 pool, with its configuration's headers and credentials."""

    def __init__(self, api_client):
        self.api_client = api_client
        self.configuration = api_client.configuration

    def headers(self, content_type=None, has_body=False, accept=None):
        headers = dict(getattr(self.api_client, 'default_headers', None) or {})
        headers['Accept'] = accept or 'application/json'
        if has_body:
            headers['Content-Type'] = content_type or 'application/json'
        # auth_settings() refreshes an expiring token (exec plugins, OIDC) through the configuration's hook.
        for setting in (self.configuration.auth_settings() or {}).values():
            if setting.get('in') == 'header' and setting.get('value'):
                headers[setting['key']] = setting['value']
        return headers

    def request(self, method, path, query=None, body=None, content_type=None, timeout=None, accept=None,
                raise_for_status=True):
        """The urllib3 response of one request; an error status raises HttpStatusError unless told not to."""
        import urllib3

        url = self.configuration.host.rstrip('/') + path
        pairs = [(k, _query_value(v)) for k, v in (query or []) if v is not None]
        if pairs:
            url += '?' + urlencode(pairs)
        data = None if body is None else json.dumps(body)
        response = self.api_client.rest_client.pool_manager.request(
            method, url, body=data, headers=self.headers(content_type, body is not None, accept),
            timeout=urllib3.Timeout(total=timeout) if timeout else None, preload_content=True)
        if raise_for_status and not 200 <= response.status <= 299:
            raise HttpStatusError(response.status, response.reason, response.data, response.headers)
        return response


def _query_value(value):
    if isinstance(value, bool):
        return 'true' if value else 'false'
    return value


def _segment(value):
    return quote(str(value), safe='')


class RestApi(object):
    """One API group/version, answering the typed client's method names (see the module docstring)."""

    def __init__(self, transport, attr):
        self._transport = transport
        self._group, self._version, self._kinds = GROUPS[attr]
        self._attr = attr

    def _base(self, group=None, version=None):
        group = self._group if group is None else group
        version = version or self._version
        return '/api/{0}'.format(version) if not group else '/apis/{0}/{1}'.format(group, version)

    def __getattr__(self, method):
        if method.startswith('_'):
            raise AttributeError(method)
        parsed = parse_method(method, self._kinds)
        if parsed is None:
            raise AttributeError('{0} API has no method {1}'.format(self._attr, method))
        verb, kind, sub, namespaced, all_namespaces = parsed
        plural = self._kinds[kind][0]

        def call(**kwargs):
            path = self._base()
            if namespaced and not all_namespaces:
                path += '/namespaces/' + _segment(kwargs['namespace'])
            path += '/' + plural
            if verb not in ('list', 'create') or sub:
                path += '/' + _segment(kwargs['name'])
            if sub:
                path += '/' + sub
            return self._send(VERBS[verb], path, kwargs)

        call.__name__ = method
        return call

    def _send(self, http_method, path, kwargs):
        timeout = kwargs.pop('_request_timeout', None)
        content_type = kwargs.pop('_content_type', None)
        kwargs.pop('_preload_content', None)
        query = [(query_name(k), v) for k, v in sorted(kwargs.items()) if k not in _NOT_QUERY]
        return self._transport.request(http_method, path, query, kwargs.get('body'), content_type, timeout)


class CustomObjectsApi(RestApi):
    """Custom resources: ``{list,get,patch,replace,create,delete}_[cluster|namespaced]_custom_object``."""

    _METHOD = re.compile(r'^(list|get|create|replace|patch|delete)_(namespaced|cluster)_custom_object$')

    def __init__(self, transport):
        self._transport = transport
        self._attr = 'custom'

    def __getattr__(self, method):
        match = self._METHOD.match(method)
        if not match:
            raise AttributeError('custom objects API has no method {0}'.format(method))
        verb, scope = match.groups()

        def call(**kwargs):
            path = '/apis/{0}/{1}'.format(kwargs['group'], kwargs['version'])
            if scope == 'namespaced':
                path += '/namespaces/' + _segment(kwargs['namespace'])
            path += '/' + kwargs['plural']
            if verb not in ('list', 'create'):
                path += '/' + _segment(kwargs['name'])
            return self._send(VERBS[verb], path, kwargs)

        call.__name__ = method
        return call


class ApisApi(object):
    """``get_api_versions``: GET /apis (the API groups and their versions)."""

    def __init__(self, transport):
        self._transport = transport

    def get_api_versions(self, _request_timeout=None, _preload_content=None):
        return self._transport.request('GET', '/apis', timeout=_request_timeout)


def apis_for(transport):
    """{attr: api} for every group of :data:`GROUPS`, plus ``custom`` and ``apis``, over one transport."""
    apis = dict((attr, RestApi(transport, attr)) for attr in GROUPS)
    apis['custom'] = CustomObjectsApi(transport)
    apis['apis'] = ApisApi(transport)
    return apis
