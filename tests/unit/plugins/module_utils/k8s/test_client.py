"""K8sClient through the real kubernetes Python client against a scripted HTTP server on loopback:
auth headers, decoding, content types, field selectors, bounded retries and error classification."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.tazlab.resilience.plugins.module_utils.k8s import errors
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.args import auth_from_params
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.client import (
    K8sClient, build_api_client, build_configuration,
)
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.errors import K8sError
from ansible_collections.tazlab.resilience.plugins.module_utils.retry import RetryPolicy


def status(code, reason, message):
    return {'kind': 'Status', 'apiVersion': 'v1', 'metadata': {}, 'status': 'Failure', 'message': message,
            'reason': reason, 'code': code}


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _serve(self):
        length = int(self.headers.get('Content-Length') or 0)
        body = self.rfile.read(length) if length else b''
        self.server.requests.append({'method': self.command, 'path': self.path, 'headers': dict(self.headers),
                                     'body': json.loads(body) if body else None})
        code, payload, delay = self.server.script.pop(0) if self.server.script else (200, {'items': []}, 0)
        if delay:
            time.sleep(delay)
        data = json.dumps(payload).encode()
        try:
            self.send_response(code)
            self.send_header('Content-Type', 'application/json')
            self.send_header('Content-Length', str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    srv.script = []
    srv.requests = []
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def client_for(server, attempts=3, timeout=5.0, **auth):
    auth = dict({'host': 'http://127.0.0.1:{0}'.format(server.server_address[1]), 'api_key': 'tok'}, **auth)
    sleeps = []
    client = K8sClient(build_api_client(auth), request_timeout=timeout,
                       retry_policy=RetryPolicy(attempts=attempts, base_delay=0.01, max_delay=0.02, jitter=0),
                       sleep=sleeps.append)
    client.sleeps = sleeps
    return client


def test_bearer_token_and_decoding(server):
    server.script = [(200, {'metadata': {'name': 'w1'}, 'status': {'nodeInfo': {'systemUUID': 'ABC'}}}, 0)]
    client = client_for(server)
    assert client.node_system_uuid('w1') == 'ABC'
    req = server.requests[0]
    assert req['path'] == '/api/v1/nodes/w1'
    assert req['headers']['authorization'] == 'Bearer tok'


def test_basic_auth_and_impersonation(server):
    server.script = [(200, {'items': []}, 0)]
    client = client_for(server, api_key=None, username='u', password='p', impersonate_user='ops')
    client.list_nodes()
    headers = server.requests[0]['headers']
    assert headers['Authorization'] == 'Basic dTpw' and headers['Impersonate-User'] == 'ops'


def test_impersonated_group_is_sent_and_several_groups_fail_clearly(server):
    server.script = [(200, {'items': []}, 0)]
    client = client_for(server, impersonate_user='ops', impersonate_groups=['system:masters'])
    client.list_nodes()
    headers = server.requests[0]['headers']
    assert headers['Impersonate-User'] == 'ops' and headers['Impersonate-Group'] == 'system:masters'
    with pytest.raises(K8sError) as info:
        client_for(server, impersonate_user='ops', impersonate_groups='a,b')
    assert info.value.kind == 'config' and 'one impersonated group' in str(info.value)
    with pytest.raises(K8sError):
        client_for(server, impersonate_groups=['a'])


def test_no_proxy_proxy_headers_and_persist_config(tmp_path, monkeypatch):
    cfg = build_configuration({'host': 'https://10.0.0.9:6443', 'api_key': 't', 'proxy': 'http://proxy:3128',
                               'no_proxy': 'localhost,.svc', 'proxy_headers': {'proxy_basic_auth': 'u:p',
                                                                               'user_agent': 'x'}})
    assert cfg.proxy == 'http://proxy:3128' and cfg.no_proxy == 'localhost,.svc'
    assert cfg.proxy_headers['proxy-authorization'] == 'Basic dTpw' and cfg.proxy_headers['user-agent'] == 'x'
    seen = {}
    from ansible_collections.tazlab.resilience.plugins.module_utils.k8s import client as client_module

    def load(**kwargs):
        seen.update(kwargs)
        kwargs['client_configuration'].host = 'https://10.0.0.1:6443'
    monkeypatch.setattr(client_module.k8s_config, 'load_kube_config', load)
    build_configuration({'kubeconfig': str(tmp_path / 'kubeconfig'), 'persist_config': True})
    assert seen['persist_config'] is True
    build_configuration({'kubeconfig': str(tmp_path / 'kubeconfig')})
    assert seen['persist_config'] is False


def test_the_auth_spec_accepts_every_kubernetes_core_option():
    from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.args import AUTH_ENV, K8S_AUTH_ARG_SPEC
    for option in ('kubeconfig', 'context', 'host', 'api_key', 'username', 'password', 'validate_certs', 'ca_cert',
                   'client_cert', 'client_key', 'proxy', 'no_proxy', 'proxy_headers', 'persist_config',
                   'impersonate_user', 'impersonate_groups'):
        assert option in K8S_AUTH_ARG_SPEC, option
    assert AUTH_ENV['no_proxy'] == ['K8S_AUTH_NO_PROXY']
    assert K8S_AUTH_ARG_SPEC['proxy_headers']['options']['proxy_basic_auth']['no_log'] is True


def test_pods_on_node_uses_field_selector_but_vas_are_filtered_client_side(server):
    server.script = [(200, {'items': [{'metadata': {'name': 'p'}}]}, 0), (200, {'items': []}, 0)]
    client = client_for(server)
    assert client.pods_on_node('w1') == [{'metadata': {'name': 'p'}}]
    client.list_volume_attachments()
    assert 'fieldSelector=spec.nodeName%3Dw1' in server.requests[0]['path']
    assert server.requests[1]['path'] == '/apis/storage.k8s.io/v1/volumeattachments'


def test_content_types(server):
    server.script = [(200, {}, 0), (200, {}, 0), (200, {}, 0)]
    client = client_for(server)
    client.patch_node('w1', {'spec': {'taints': []}})
    client.patch_custom('volumeattachments', 'pvc-1', {'spec': {'attachmentTickets': {'csi-a': None}}})
    client.delete_pod('ns', 'p', grace_period_seconds=0)
    node, custom, delete = server.requests
    assert node['headers']['Content-Type'] == 'application/strategic-merge-patch+json'
    assert custom['headers']['Content-Type'] == 'application/merge-patch+json'
    assert custom['path'].startswith('/apis/longhorn.io/v1beta2/namespaces/longhorn-system/volumeattachments/pvc-1')
    assert custom['body'] == {'spec': {'attachmentTickets': {'csi-a': None}}}
    assert delete['method'] == 'DELETE' and 'gracePeriodSeconds=0' in delete['path']
    assert client.writes == 3


@pytest.mark.parametrize('code', [429, 500, 503, 409])
def test_transient_errors_retried(server, code):
    server.script = [(code, status(code, 'X', 'try again'), 0), (200, {'items': []}, 0)]
    client = client_for(server)
    assert client.list_nodes() == []
    assert len(server.requests) == 2 and len(client.sleeps) == 1


def test_retries_are_bounded(server):
    server.script = [(503, status(503, 'ServiceUnavailable', 'down'), 0)] * 5
    client = client_for(server, attempts=3)
    with pytest.raises(K8sError) as info:
        client.list_nodes()
    assert info.value.kind == 'server' and info.value.status == 503
    assert len(server.requests) == 3


def test_not_found_not_retried(server):
    server.script = [(404, status(404, 'NotFound', 'nodes "x" not found'), 0)]
    client = client_for(server)
    with pytest.raises(K8sError) as info:
        client.get_node('x')
    assert info.value.kind == 'not_found' and 'nodes "x" not found' in str(info.value)
    assert len(server.requests) == 1


def test_already_exists_not_retried(server):
    server.script = [(409, status(409, 'AlreadyExists', 'exists'), 0)]
    client = client_for(server)
    with pytest.raises(K8sError) as info:
        client.create_endpoint_slice('default', {'metadata': {'name': 'kubernetes'}, 'addressType': 'IPv4',
                                                 'endpoints': [], 'ports': []})
    assert info.value.kind == 'already_exists' and len(server.requests) == 1


def test_timeout_classified_and_retried(server):
    server.script = [(200, {'items': []}, 1.0), (200, {'items': []}, 0)]
    client = client_for(server, timeout=0.2)
    assert client.list_nodes() == []
    assert len(server.requests) == 2


def test_connection_refused_is_network_and_bounded():
    auth = {'host': 'http://127.0.0.1:9', 'api_key': 'tok'}
    client = K8sClient(build_api_client(auth), request_timeout=1,
                       retry_policy=RetryPolicy(attempts=2, base_delay=0.01, jitter=0), sleep=lambda s: None)
    with pytest.raises(K8sError) as info:
        client.list_nodes()
    assert info.value.kind == 'network' and info.value.transient


def test_read_modify_write_rereads_on_conflict(server):
    server.script = [(200, {'metadata': {'resourceVersion': '1'}}, 0), (409, status(409, 'Conflict', 'modified'), 0),
                     (200, {'metadata': {'resourceVersion': '2'}}, 0), (200, {'ok': True}, 0)]
    client = client_for(server, attempts=3)
    written, obj = client.read_modify_write(
        'node', lambda: client.get_node('w1'),
        lambda node: {'metadata': {'resourceVersion': node['metadata']['resourceVersion']}},
        lambda body: client.patch_node('w1', body))
    assert written and obj == {'ok': True}
    # the stale PATCH is not re-sent: the conflict goes back to a fresh read at once
    assert [r['method'] for r in server.requests] == ['GET', 'PATCH', 'GET', 'PATCH']
    assert client.sleeps == [0.1]
    assert server.requests[3]['body'] == {'metadata': {'resourceVersion': '2'}}


def test_api_groups_discovery(server):
    server.script = [(200, {'kind': 'APIGroupList', 'groups': [
        {'name': 'longhorn.io', 'versions': [{'groupVersion': 'longhorn.io/v1beta2', 'version': 'v1beta2'}]}]}, 0)]
    client = client_for(server)
    assert client.has_api('longhorn.io', 'v1beta2') and not client.has_api('longhorn.io', 'v1beta1')
    assert not client.has_api('snapshot.storage.k8s.io', 'v1')
    assert len(server.requests) == 1


# -- configuration ----------------------------------------------------------------------------------------

def test_configuration_from_kubeconfig_dict_and_context():
    kubeconfig = {
        'apiVersion': 'v1', 'kind': 'Config', 'current-context': 'a',
        'clusters': [{'name': 'c1', 'cluster': {'server': 'https://10.0.0.1:6443'}},
                     {'name': 'c2', 'cluster': {'server': 'https://10.0.0.2:6443'}}],
        'users': [{'name': 'u', 'user': {'token': 'kubeconfig-token'}}],
        'contexts': [{'name': 'a', 'context': {'cluster': 'c1', 'user': 'u'}},
                     {'name': 'b', 'context': {'cluster': 'c2', 'user': 'u'}}],
    }
    cfg = build_configuration({'kubeconfig': kubeconfig, 'context': 'b'})
    assert cfg.host == 'https://10.0.0.2:6443'
    assert cfg.verify_ssl is True
    cfg = build_configuration({'kubeconfig': kubeconfig, 'validate_certs': False, 'ca_cert': '/x/ca.pem'})
    assert cfg.host == 'https://10.0.0.1:6443' and cfg.verify_ssl is False and cfg.ssl_ca_cert == '/x/ca.pem'


def test_configuration_explicit_host_token():
    cfg = build_configuration({'host': 'https://10.0.0.9:6443/', 'api_key': 't', 'validate_certs': True})
    assert cfg.host == 'https://10.0.0.9:6443'
    assert cfg.api_key == {'authorization': 'Bearer t'}
    assert cfg.retries == 0


def test_configuration_missing_is_config_error(tmp_path, monkeypatch):
    monkeypatch.setenv('KUBECONFIG', str(tmp_path / 'none'))
    monkeypatch.delenv('KUBERNETES_SERVICE_HOST', raising=False)
    with pytest.raises(K8sError) as info:
        build_configuration({'kubeconfig': str(tmp_path / 'missing.yaml')})
    assert info.value.kind == 'config'


def test_auth_from_params_drops_none():
    assert auth_from_params({'host': 'h', 'api_key': None, 'validate_certs': True, 'node': 'x'}) == \
        {'host': 'h', 'validate_certs': True}


# -- classification without the client -----------------------------------------------------------------

class ApiException(Exception):
    def __init__(self, status, reason, body=None):
        super(ApiException, self).__init__(reason)
        self.status = status
        self.reason = reason
        self.body = body


def test_classify_ssl_status_zero_not_transient():
    err = errors.classify_exception(ApiException(0, 'SSLError\n[SSL: CERTIFICATE_VERIFY_FAILED]'))
    assert err.kind == 'tls' and not err.transient


def test_classify_status_reason_and_message():
    err = errors.classify_exception(ApiException(409, 'Conflict', json.dumps(status(409, 'AlreadyExists', 'x'))))
    assert err.kind == 'already_exists'
    err = errors.classify_exception(ApiException(415, 'Unsupported Media Type',
                                                 json.dumps(status(415, 'UnsupportedMediaType', 'smp'))))
    assert err.kind == 'invalid' and not err.transient
    err = errors.classify_exception(ApiException(400, 'Bad Request', json.dumps(status(
        400, 'BadRequest', '"spec.nodeName" is not a known field selector'))))
    assert err.kind == 'invalid' and 'known field selector' in str(err)


def test_classify_plain_exceptions():
    assert errors.classify_exception(ConnectionRefusedError('refused')).kind == 'network'
    assert errors.classify_exception(TimeoutError('slow')).kind == 'timeout'
    assert errors.classify_exception(ValueError('x')).kind == 'api'
    assert errors.is_transient(ConnectionResetError('reset'))
    assert not errors.is_transient(ValueError('x'))


# -- the slim REST layer (k8s/rest.py) -------------------------------------------------------------------

def test_rest_method_grammar():
    from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.rest import GROUPS, parse_method
    core = GROUPS['core'][2]
    assert parse_method('read_node', core) == ('read', 'node', None, False, False)
    assert parse_method('read_namespace', core) == ('read', 'namespace', None, False, False)
    assert parse_method('list_namespaced_pod', core) == ('list', 'pod', None, True, False)
    assert parse_method('list_pod_for_all_namespaces', core) == ('list', 'pod', None, True, True)
    assert parse_method('patch_node_status', core) == ('patch', 'node', 'status', False, False)
    assert parse_method('create_namespaced_pod_eviction', core) == ('create', 'pod', 'eviction', True, False)
    assert parse_method('list_persistent_volume', core)[1] == 'persistent_volume'
    assert parse_method('list_persistent_volume_claim_for_all_namespaces', core)[1] == 'persistent_volume_claim'
    # a namespaced kind without "namespaced", a cluster kind with it, a listing of a cluster kind "for all
    # namespaces", unknown verbs and kinds: not methods of the typed client either
    for wrong in ('read_pod', 'read_namespaced_node', 'list_node_for_all_namespaces', 'watch_node', 'read_widget',
                  'read_namespaced_pod_for_all_namespaces'):
        assert parse_method(wrong, core) is None, wrong


def test_rest_paths_queries_and_subresources(server):
    server.script = [(200, {}, 0)] * 8
    client = client_for(server)
    client.call('evict', client.core.create_namespaced_pod_eviction, write=True, namespace='ns', name='p',
                body={'apiVersion': 'policy/v1', 'kind': 'Eviction', 'metadata': {'name': 'p', 'namespace': 'ns'}})
    client.call('status', client.core.patch_node_status, name='w1', body={'status': {}},
                _content_type='application/merge-patch+json')
    client.call('pods', client.core.list_pod_for_all_namespaces, label_selector='app=x', limit=5, _continue='abc')
    client.call('leases', client.coordination.read_namespaced_lease, namespace='kube-node-lease', name='w 1')
    client.call('pdbs', client.policy.list_pod_disruption_budget_for_all_namespaces)
    client.call('hpas', client.autoscaling.list_horizontal_pod_autoscaler_for_all_namespaces)
    client.call('lh', client.custom.get_namespaced_custom_object, group='longhorn.io', version='v1beta2',
                namespace='longhorn-system', plural='volumes', name='pvc-1')
    client.call('delete', client.storage.delete_volume_attachment, name='csi-1', propagation_policy='Background',
                dry_run='All')
    evict, status_patch, pods, lease, pdbs, hpas, custom, delete = server.requests
    assert (evict['method'], evict['path']) == ('POST', '/api/v1/namespaces/ns/pods/p/eviction')
    assert evict['body']['kind'] == 'Eviction' and evict['headers']['Content-Type'] == 'application/json'
    assert (status_patch['method'], status_patch['path']) == ('PATCH', '/api/v1/nodes/w1/status')
    assert status_patch['headers']['Content-Type'] == 'application/merge-patch+json'
    assert pods['path'] == '/api/v1/pods?continue=abc&labelSelector=app%3Dx&limit=5'
    assert lease['path'] == '/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/w%201'
    assert pdbs['path'] == '/apis/policy/v1/poddisruptionbudgets'
    assert hpas['path'] == '/apis/autoscaling/v2/horizontalpodautoscalers'
    assert custom['path'] == '/apis/longhorn.io/v1beta2/namespaces/longhorn-system/volumes/pvc-1'
    assert delete['path'] == '/apis/storage.k8s.io/v1/volumeattachments/csi-1?dryRun=All&propagationPolicy=Background'
    assert all(r['headers']['Accept'] == 'application/json' for r in server.requests)
    assert server.requests[0]['headers']['User-Agent'].startswith('tazlab.resilience/')
    with pytest.raises(AttributeError):
        client.core.read_widget
    with pytest.raises(AttributeError):
        client.custom.read_namespaced_custom_object


def test_rest_token_refresh_hook_runs_per_request(server):
    server.script = [(200, {'items': []}, 0)] * 2
    client = client_for(server)
    tokens = iter(['Bearer one', 'Bearer two'])
    configuration = client.api_client.configuration

    def refresh(config):
        config.api_key['authorization'] = next(tokens)
    configuration.refresh_api_key_hook = refresh
    client.list_nodes()
    client.list_nodes()
    assert [r['headers']['authorization'] for r in server.requests] == ['Bearer one', 'Bearer two']


def test_rest_error_status_is_classified_with_retry_after(server):
    server.script = [(429, status(429, 'TooManyRequests', 'slow down'), 0)]
    client = client_for(server, attempts=1)
    with pytest.raises(K8sError) as info:
        client.list_nodes()
    assert info.value.kind == 'throttled' and info.value.status == 429 and 'slow down' in str(info.value)


def test_server_time_from_the_date_header(server):
    server.script = [(200, {'items': []}, 0)]
    client = client_for(server)
    client.list_nodes()
    assert client.server_time is not None and abs(client.server_time - time.time()) < 5


def test_the_client_does_not_load_the_typed_apis_or_their_models():
    """The point of k8s/rest.py: a module run does not pay for kubernetes' typed APIs and their model tree."""
    import os
    import subprocess
    import sys
    code = ('import sys\n'
            'from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.client import K8sClient, '
            'build_api_client\n'
            "c = K8sClient(build_api_client({'host': 'http://127.0.0.1:9', 'api_key': 't'}))\n"
            'c.core.read_node, c.apps.list_namespaced_deployment, c.custom.list_namespaced_custom_object\n'
            "print(sorted(m for m in sys.modules if m.startswith(('kubernetes.client.api.', "
            "'kubernetes.client.models.'))))\n")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p)))
    assert out.stdout.strip() == '[]', out.stdout


def test_get_raw_answers_any_status_with_the_credentials(server):
    server.script = [(200, {'ok': 1}, 0), (503, status(503, 'ServiceUnavailable', 'not ready'), 0)]
    client = client_for(server)
    assert client.get_raw('/metrics') == (200, '{"ok": 1}')
    code, text = client.get_raw('/readyz')
    assert code == 503 and 'not ready' in text
    assert [r['path'] for r in server.requests] == ['/metrics', '/readyz']
    assert all(r['headers']['authorization'] == 'Bearer tok' and r['headers']['Accept'] == '*/*'
               for r in server.requests)
