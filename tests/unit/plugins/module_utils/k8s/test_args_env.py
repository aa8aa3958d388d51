"""auth_env_fallbacks: a dict of Kubernetes options completed from K8S_AUTH_* as AnsibleModule would."""

from __future__ import annotations

from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.args import auth_env_fallbacks

AWX_BEARER = {'K8S_AUTH_HOST': 'https://10.0.0.1:6443', 'K8S_AUTH_API_KEY': 'tok', 'K8S_AUTH_VERIFY_SSL': 'False',
              'K8S_AUTH_SSL_CA_CERT': '/runner/env/tmpabc'}


def test_the_awx_bearer_token_credential_fills_an_empty_dict():
    assert auth_env_fallbacks({}, AWX_BEARER) == {'host': 'https://10.0.0.1:6443', 'api_key': 'tok',
                                                  'validate_certs': False, 'ca_cert': '/runner/env/tmpabc'}
    assert auth_env_fallbacks({}, dict(AWX_BEARER, K8S_AUTH_VERIFY_SSL='True'))['validate_certs'] is True


def test_given_options_win_and_the_first_variable_wins():
    out = auth_env_fallbacks({'kubeconfig': '/k', 'validate_certs': True, 'host': None},
                             dict(AWX_BEARER, K8S_AUTH_KUBECONFIG='/other', K8S_AUTH_VALIDATE_CERTS='yes'))
    assert out['kubeconfig'] == '/k' and out['validate_certs'] is True and out['host'] == 'https://10.0.0.1:6443'
    assert auth_env_fallbacks({}, {'K8S_AUTH_CA_CERT': '/a', 'K8S_AUTH_SSL_CA_CERT': '/b'})['ca_cert'] == '/a'


def test_nothing_in_the_environment_changes_nothing():
    assert auth_env_fallbacks({}, {}) == {}
    assert auth_env_fallbacks(None, {'K8S_AUTH_CONTEXT': ''}) == {}
