# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

# Doc fragments are string literals (ansible-test's yamllint reads them so): NESTED and NESTED_AUTH repeat the
# options of DOCUMENTATION; tests/unit/plugins/module_utils/k8s/test_k8s_auth_nested.py keeps them equal to
# module_utils/k8s/args.py k8s_auth_suboptions().


class ModuleDocFragment(object):
    """Kubernetes connection options shared by every module of the collection (kubernetes.core compatible)."""

    DOCUMENTATION = r"""
options:
  kubeconfig:
    description:
      - Path to a kubeconfig file, or the kubeconfig itself as a dictionary.
      - If neither this, O(context) nor O(host) with credentials is given, the in-cluster service account is
        tried, then C(~/.kube/config).
      - Can also be set with the E(K8S_AUTH_KUBECONFIG) environment variable.
    type: raw
  context:
    description:
      - The kubeconfig context to use. Can also be set with E(K8S_AUTH_CONTEXT).
    type: str
  host:
    description:
      - URL of the Kubernetes API server, for example V(https://192.168.1.250:6443).
      - Can also be set with E(K8S_AUTH_HOST) (AWX's Kubernetes bearer-token credential injects it).
    type: str
  api_key:
    description:
      - Bearer token to authenticate with. Can also be set with E(K8S_AUTH_API_KEY).
    type: str
  username:
    description:
      - User name for HTTP basic authentication. Can also be set with E(K8S_AUTH_USERNAME).
    type: str
  password:
    description:
      - Password for HTTP basic authentication. Can also be set with E(K8S_AUTH_PASSWORD).
    type: str
  validate_certs:
    description:
      - Whether to verify the API server's TLS certificate.
      - Can also be set with E(K8S_AUTH_VALIDATE_CERTS) or E(K8S_AUTH_VERIFY_SSL).
    type: bool
    default: true
    aliases: [ verify_ssl ]
  ca_cert:
    description:
      - Path to the CA certificate (full chain) that signed the API server's certificate.
      - Can also be set with E(K8S_AUTH_CA_CERT) or E(K8S_AUTH_SSL_CA_CERT).
    type: path
    aliases: [ ssl_ca_cert ]
  client_cert:
    description:
      - Path to a client certificate. Can also be set with E(K8S_AUTH_CLIENT_CERT) or E(K8S_AUTH_CERT_FILE).
    type: path
    aliases: [ cert_file ]
  client_key:
    description:
      - Path to the key of O(client_cert). Can also be set with E(K8S_AUTH_CLIENT_KEY) or E(K8S_AUTH_KEY_FILE).
    type: path
    aliases: [ key_file ]
  proxy:
    description:
      - URL of an HTTP proxy for the API connection. Can also be set with E(K8S_AUTH_PROXY).
    type: str
  impersonate_user:
    description:
      - User name to impersonate. Can also be set with E(K8S_AUTH_IMPERSONATE_USER).
    type: str
  impersonate_groups:
    description:
      - Groups to impersonate (with O(impersonate_user)). Can also be set with E(K8S_AUTH_IMPERSONATE_GROUPS)
        (comma separated).
      - The kubernetes Python client sends one C(Impersonate-Group) header, so one group is supported; several
        fail with a clear error.
    type: list
    elements: str
  no_proxy:
    description:
      - Comma-separated hosts and domains the API connection reaches without O(proxy) (for example
        V(localhost,.svc,10.0.0.0/8)). Can also be set with E(K8S_AUTH_NO_PROXY).
    type: str
  proxy_headers:
    description:
      - Headers for the proxy, as M(kubernetes.core.k8s) takes them.
    type: dict
    suboptions:
      proxy_basic_auth:
        description: C(user:password) for the proxy's basic authentication.
        type: str
      basic_auth:
        description: C(user:password) for basic authentication through the proxy.
        type: str
      user_agent:
        description: The User-Agent header sent to the proxy.
        type: str
  persist_config:
    description:
      - Write refreshed credentials (OIDC or exec tokens) back to the O(kubeconfig) file, as kubernetes.core does.
        Can also be set with E(K8S_AUTH_PERSIST_CONFIG).
    type: bool
  request_timeout:
    description:
      - Seconds one API request may take before it counts as failed (and is retried).
    type: float
    default: 30.0
  api_retries:
    description:
      - Most attempts per API request. Conflicts (409), throttling (429), server errors (5xx), timeouts and
        network faults are retried with exponential backoff and jitter (0.5 s doubling up to 8 s), honouring
        a C(Retry-After) header; other errors fail at once. O(api_retry_deadline) bounds them in time.
    type: int
    default: 20
  api_retry_deadline:
    description:
      - Seconds after the first attempt of a request when no new attempt starts.
    type: float
    default: 45.0
requirements:
  - kubernetes >= 30.1.0 (Python client)
notes:
  - Option names, aliases and E(K8S_AUTH_*) variables match M(kubernetes.core.k8s), so existing inventories,
    C(module_defaults) and AWX credentials work unchanged. Unlike kubernetes.core, O(validate_certs) defaults
    to V(true).
"""

    # The same options nested in one O(k8s_auth) dict, for modules that also take another connection (Talos,
    # Proxmox) at top level. A module using it documents O(k8s_auth) itself (description, aliases, default);
    # Ansible merges these suboptions in. NESTED: k8s_auth_suboptions(), with the request bounds;
    # NESTED_AUTH: k8s_auth_suboptions(request_bounds=False), the connection alone.
    NESTED = r"""
options:
  k8s_auth:
    type: dict
    suboptions:
      kubeconfig:
        description: Path to a kubeconfig, or the kubeconfig as a dict (K8S_AUTH_KUBECONFIG).
        type: raw
      context:
        description: Context of the kubeconfig to use (K8S_AUTH_CONTEXT).
        type: str
      host:
        description: URL of the API server (K8S_AUTH_HOST).
        type: str
      api_key:
        description: Bearer token (K8S_AUTH_API_KEY).
        type: str
      username:
        description: User for basic authentication (K8S_AUTH_USERNAME).
        type: str
      password:
        description: Password for basic authentication (K8S_AUTH_PASSWORD).
        type: str
      validate_certs:
        description: Verify the API server's certificate (K8S_AUTH_VALIDATE_CERTS, K8S_AUTH_VERIFY_SSL).
        type: bool
        default: true
        aliases: [verify_ssl]
      ca_cert:
        description: CA certificate to verify the API server with (K8S_AUTH_SSL_CA_CERT).
        type: path
        aliases: [ssl_ca_cert]
      client_cert:
        description: Client certificate (K8S_AUTH_CERT_FILE).
        type: path
        aliases: [cert_file]
      client_key:
        description: Key of the client certificate (K8S_AUTH_KEY_FILE).
        type: path
        aliases: [key_file]
      proxy:
        description: HTTP proxy URL (K8S_AUTH_PROXY).
        type: str
      impersonate_user:
        description: User to impersonate (K8S_AUTH_IMPERSONATE_USER).
        type: str
      impersonate_groups:
        description: One group to impersonate with O(k8s_auth.impersonate_user) (K8S_AUTH_IMPERSONATE_GROUPS).
        type: list
        elements: str
      no_proxy:
        description: Hosts reached without the proxy (K8S_AUTH_NO_PROXY).
        type: str
      proxy_headers:
        description: Headers for the proxy, as kubernetes.core takes them.
        type: dict
        suboptions:
          proxy_basic_auth:
            description: C(user:password) for the proxy.
            type: str
          basic_auth:
            description: C(user:password) for basic authentication through the proxy.
            type: str
          user_agent:
            description: User-Agent sent to the proxy.
            type: str
      persist_config:
        description: Write refreshed credentials back to the kubeconfig file (K8S_AUTH_PERSIST_CONFIG).
        type: bool
      request_timeout:
        description: Seconds one API request may take before it counts as failed (and is retried).
        type: float
        default: 30.0
      api_retries:
        description: Most attempts per API request (transient errors are retried with backoff).
        type: int
        default: 20
      api_retry_deadline:
        description: Seconds after the first attempt of a request when no new attempt starts.
        type: float
        default: 45.0
"""
    NESTED_AUTH = r"""
options:
  k8s_auth:
    type: dict
    suboptions:
      kubeconfig:
        description: Path to a kubeconfig, or the kubeconfig as a dict (K8S_AUTH_KUBECONFIG).
        type: raw
      context:
        description: Context of the kubeconfig to use (K8S_AUTH_CONTEXT).
        type: str
      host:
        description: URL of the API server (K8S_AUTH_HOST).
        type: str
      api_key:
        description: Bearer token (K8S_AUTH_API_KEY).
        type: str
      username:
        description: User for basic authentication (K8S_AUTH_USERNAME).
        type: str
      password:
        description: Password for basic authentication (K8S_AUTH_PASSWORD).
        type: str
      validate_certs:
        description: Verify the API server's certificate (K8S_AUTH_VALIDATE_CERTS, K8S_AUTH_VERIFY_SSL).
        type: bool
        default: true
        aliases: [verify_ssl]
      ca_cert:
        description: CA certificate to verify the API server with (K8S_AUTH_SSL_CA_CERT).
        type: path
        aliases: [ssl_ca_cert]
      client_cert:
        description: Client certificate (K8S_AUTH_CERT_FILE).
        type: path
        aliases: [cert_file]
      client_key:
        description: Key of the client certificate (K8S_AUTH_KEY_FILE).
        type: path
        aliases: [key_file]
      proxy:
        description: HTTP proxy URL (K8S_AUTH_PROXY).
        type: str
      impersonate_user:
        description: User to impersonate (K8S_AUTH_IMPERSONATE_USER).
        type: str
      impersonate_groups:
        description: One group to impersonate with O(k8s_auth.impersonate_user) (K8S_AUTH_IMPERSONATE_GROUPS).
        type: list
        elements: str
      no_proxy:
        description: Hosts reached without the proxy (K8S_AUTH_NO_PROXY).
        type: str
      proxy_headers:
        description: Headers for the proxy, as kubernetes.core takes them.
        type: dict
        suboptions:
          proxy_basic_auth:
            description: C(user:password) for the proxy.
            type: str
          basic_auth:
            description: C(user:password) for basic authentication through the proxy.
            type: str
          user_agent:
            description: User-Agent sent to the proxy.
            type: str
      persist_config:
        description: Write refreshed credentials back to the kubeconfig file (K8S_AUTH_PERSIST_CONFIG).
        type: bool
"""
