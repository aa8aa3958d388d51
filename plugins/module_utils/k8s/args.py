# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one Kubernetes connection argument spec every module of this collection shares.

Option names, aliases and K8S_AUTH_* environment fallbacks follow kubernetes.core, so a play that
already talks to a cluster with kubernetes.core (or an AWX job with the built-in "OpenShift or
Kubernetes API Bearer Token" credential, which injects K8S_AUTH_HOST, K8S_AUTH_API_KEY,
K8S_AUTH_VERIFY_SSL and K8S_AUTH_SSL_CA_CERT) works unchanged. One difference on purpose: TLS
verification defaults to on.

Documented by the ``tazlab.resilience.k8s_auth`` doc fragment.
"""

from __future__ import annotations

from ansible.module_utils.basic import env_fallback

__all__ = ['K8S_AUTH_ARG_SPEC', 'AUTH_ENV', 'k8s_argument_spec', 'auth_from_params']

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


def auth_from_params(params):
    """The auth settings a client needs, taken from validated module params (None values dropped)."""
    return dict((name, params.get(name)) for name in K8S_AUTH_ARG_SPEC if params.get(name) is not None)
