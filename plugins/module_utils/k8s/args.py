# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one Kubernetes connection argument spec every module of this collection shares.

Option names, aliases and K8S_AUTH_* environment fallbacks follow kubernetes.core, so a play that
already talks to a cluster with kubernetes.core (or an AWX job with the built-in "OpenShift or
Kubernetes API Bearer Token" credential, which injects K8S_AUTH_HOST, K8S_AUTH_API_KEY,
K8S_AUTH_VERIFY_SSL and K8S_AUTH_SSL_CA_CERT) works unchanged. One difference on purpose: TLS
verification defaults to on.

Documented by the ``tazlab.resilience.k8s_auth`` doc fragment. A module that takes another connection at top
level nests them in one ``k8s_auth`` dict: ``options=k8s_auth_suboptions()``, documented by
tazlab.resilience.k8s_auth.nested (tazlab.resilience.k8s_auth.nested_auth without the request bounds).
"""

from __future__ import annotations

import os

from ansible.module_utils.basic import env_fallback
from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.tazlab.resilience.plugins.module_utils.runner import at_least, positive

__all__ = ['K8S_AUTH_ARG_SPEC', 'AUTH_ENV', 'K8S_BOUNDS', 'k8s_argument_spec', 'k8s_auth_suboptions',
           'auth_from_params', 'auth_env_fallbacks', 'k8s_libraries']

# option -> environment variables, first match wins (kubernetes.core reads K8S_AUTH_<OPTION> and
# K8S_AUTH_<CLIENT ATTRIBUTE>, e.g. both K8S_AUTH_VALIDATE_CERTS and K8S_AUTH_VERIFY_SSL).
AUTH_ENV = {
    'kubeconfig': ['K8S_AUTH_KUBECONFIG'],
    'context': ['K8S_AUTH_CONTEXT'],
    'host': ['K8S_AUTH_HOST'],
    'api_key': ['K8S_AUTH_API_KEY'],
    'username': ['K8S_AUTH_USERNAME'],
    'password': ['K8S_AUTH_PASSWORD'],
    'validate_certs': ['K8S_AUTH_VALIDATE_CERTS', 'K8S_AUTH_VERIFY_SSL'],
    'ca_cert': ['K8S_AUTH_CA_CERT', 'K8S_AUTH_SSL_CA_CERT'],
    'client_cert': ['K8S_AUTH_CLIENT_CERT', 'K8S_AUTH_CERT_FILE'],
    'client_key': ['K8S_AUTH_CLIENT_KEY', 'K8S_AUTH_KEY_FILE'],
    'proxy': ['K8S_AUTH_PROXY'],
    'impersonate_user': ['K8S_AUTH_IMPERSONATE_USER'],
    'impersonate_groups': ['K8S_AUTH_IMPERSONATE_GROUPS'],
    'no_proxy': ['K8S_AUTH_NO_PROXY'],
    'persist_config': ['K8S_AUTH_PERSIST_CONFIG'],
}

K8S_AUTH_ARG_SPEC = {
    'kubeconfig': {'type': 'raw', 'fallback': (env_fallback, AUTH_ENV['kubeconfig'])},
    'context': {'type': 'str', 'fallback': (env_fallback, AUTH_ENV['context'])},
    'host': {'type': 'str', 'fallback': (env_fallback, AUTH_ENV['host'])},
    'api_key': {'type': 'str', 'no_log': True, 'fallback': (env_fallback, AUTH_ENV['api_key'])},
    'username': {'type': 'str', 'fallback': (env_fallback, AUTH_ENV['username'])},
    'password': {'type': 'str', 'no_log': True, 'fallback': (env_fallback, AUTH_ENV['password'])},
    'validate_certs': {'type': 'bool', 'default': True, 'aliases': ['verify_ssl'],
                       'fallback': (env_fallback, AUTH_ENV['validate_certs'])},
    'ca_cert': {'type': 'path', 'aliases': ['ssl_ca_cert'], 'fallback': (env_fallback, AUTH_ENV['ca_cert'])},
    'client_cert': {'type': 'path', 'aliases': ['cert_file'], 'fallback': (env_fallback, AUTH_ENV['client_cert'])},
    'client_key': {'type': 'path', 'aliases': ['key_file'], 'no_log': False,
                   'fallback': (env_fallback, AUTH_ENV['client_key'])},
    'proxy': {'type': 'str', 'fallback': (env_fallback, AUTH_ENV['proxy'])},
    'impersonate_user': {'type': 'str', 'fallback': (env_fallback, AUTH_ENV['impersonate_user'])},
    'impersonate_groups': {'type': 'list', 'elements': 'str',
                           'fallback': (env_fallback, AUTH_ENV['impersonate_groups'])},
    'no_proxy': {'type': 'str', 'fallback': (env_fallback, AUTH_ENV['no_proxy'])},
    'proxy_headers': {'type': 'dict', 'options': {
        'proxy_basic_auth': {'type': 'str', 'no_log': True},
        'basic_auth': {'type': 'str', 'no_log': True},
        'user_agent': {'type': 'str'},
    }},
    'persist_config': {'type': 'bool', 'fallback': (env_fallback, AUTH_ENV['persist_config'])},
}

# Bounds every module shares for single API calls.
K8S_REQUEST_ARG_SPEC = {
    'request_timeout': {'type': 'float', 'default': 30.0},
    'api_retries': {'type': 'int', 'default': 20},
    'api_retry_deadline': {'type': 'float', 'default': 45.0},
}


def k8s_argument_spec(**extra):
    """A fresh argument spec: the shared auth options + request bounds + the module's own options."""
    spec = {}
    for source in (K8S_AUTH_ARG_SPEC, K8S_REQUEST_ARG_SPEC):
        for name, option in source.items():
            spec[name] = dict(option)
    spec.update(extra)
    return spec


def k8s_auth_suboptions(request_bounds=True):
    """The options of a nested ``k8s_auth`` dict, a fresh dict each call: the auth options with their fallbacks and
    defaults, and the request bounds unless ``request_bounds=False``."""
    if request_bounds:
        return k8s_argument_spec()
    return dict((name, dict(option)) for name, option in K8S_AUTH_ARG_SPEC.items())


def auth_from_params(params):
    """The auth settings a client needs, taken from validated module params (None values dropped)."""
    return dict((name, params.get(name)) for name in K8S_AUTH_ARG_SPEC if params.get(name) is not None)


def auth_env_fallbacks(options, environ=None):
    """The auth options given as a dict (a module's ``kubernetes: {...}`` option), completed from the
    K8S_AUTH_* environment variables for the options not given, converted as AnsibleModule would.

    A dict-typed option gets no fallbacks from AnsibleModule; without this an AWX job whose Kubernetes
    credential injects K8S_AUTH_* (the built-in bearer-token one, or a kubeconfig file) would reach no cluster.
    """
    environ = os.environ if environ is None else environ
    out = dict((k, v) for k, v in (options or {}).items() if v is not None)
    given = set(out)
    for name, option in K8S_AUTH_ARG_SPEC.items():
        given.update(a for a in option.get('aliases', []) if a in out)
        if name in given or any(a in out for a in option.get('aliases', [])):
            continue
        for var in AUTH_ENV.get(name, ()):
            if var in environ:
                value = environ[var]
                if option['type'] == 'bool':
                    value = boolean(value, strict=False)
                elif option['type'] == 'path':
                    value = os.path.expanduser(os.path.expandvars(value)) if value else value
                if value != '':
                    out[name] = value
                break
    return out


#: Bounds of the shared connection options, for the module runner.
K8S_BOUNDS = {'request_timeout': positive(), 'api_retries': at_least(1)}


def k8s_libraries(params=None):
    """The module runner's dependency probe: (library, present, import traceback); imports the client lazily."""
    from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.client import HAS_K8S, K8S_IMPORT_ERROR
    return [('kubernetes', HAS_K8S, K8S_IMPORT_ERROR)]
