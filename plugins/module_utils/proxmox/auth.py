# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shared Proxmox connection options (names, environment variables and defaults as community.proxmox).

Every Proxmox module of the collection merges proxmox_auth_argument_spec() into its own spec and
passes PROXMOX_AUTH_KWARGS (required_together / required_one_of) to AnsibleModule; the matching
documentation is the doc fragment tazlab.resilience.proxmox_auth. A module that takes the Kubernetes
connection at top level nests them in one ``proxmox_auth`` dict: ``options=proxmox_auth_suboptions()``,
documented by tazlab.resilience.proxmox_auth.nested.
"""

from __future__ import annotations

from ansible.module_utils.basic import env_fallback

__all__ = ['ConnectionSettings', 'PROXMOX_AUTH_KWARGS', 'merge_auth_kwargs', 'proxmox_auth_argument_spec',
           'proxmox_auth_suboptions', 'proxmox_libraries', 'check_connection']

AUTH_OPTIONS = ('api_host', 'api_port', 'api_user', 'api_password', 'api_otp', 'api_token_id', 'api_token_secret',
                'validate_certs', 'ca_path', 'api_timeout')


def proxmox_auth_argument_spec():
    """The connection options, as a fresh dict each call."""
    return dict(
        api_host=dict(type='str', required=True, fallback=(env_fallback, ['PROXMOX_HOST'])),
        api_port=dict(type='int', fallback=(env_fallback, ['PROXMOX_PORT'])),
        api_user=dict(type='str', default='root@pam', fallback=(env_fallback, ['PROXMOX_USER'])),
        api_password=dict(type='str', no_log=True, fallback=(env_fallback, ['PROXMOX_PASSWORD'])),
        api_otp=dict(type='str', no_log=True),
        api_token_id=dict(type='str', no_log=False, fallback=(env_fallback, ['PROXMOX_TOKEN_ID'])),
        api_token_secret=dict(type='str', no_log=True, fallback=(env_fallback, ['PROXMOX_TOKEN_SECRET'])),
        validate_certs=dict(type='bool', default=True, fallback=(env_fallback, ['PROXMOX_VALIDATE_CERTS'])),
        ca_path=dict(type='path', fallback=(env_fallback, ['PROXMOX_CA_PATH'])),
        api_timeout=dict(type='int', default=5, fallback=(env_fallback, ['PROXMOX_API_TIMEOUT'])),
    )


def proxmox_auth_suboptions():
    """The connection options as the suboptions of a nested ``proxmox_auth`` dict, a fresh dict each call:
    api_host is optional there (no host, no Proxmox access; the module decides what that means)."""
    spec = proxmox_auth_argument_spec()
    spec['api_host'] = dict(spec['api_host'], required=False)
    return spec


PROXMOX_AUTH_KWARGS = dict(
    required_together=[('api_token_id', 'api_token_secret')],
    required_one_of=[('api_password', 'api_token_id')],
)


def merge_auth_kwargs(**kwargs):
    """AnsibleModule keyword arguments with the connection constraints added to the module's own."""
    out = dict(kwargs)
    for key, rules in PROXMOX_AUTH_KWARGS.items():
        out[key] = list(rules) + list(out.get(key) or [])
    return out


class ConnectionSettings(object):
    """The connection options as plain values (from module.params or a dict), checked and normalised."""

    def __init__(self, api_host, api_user='root@pam', api_password=None, api_token_id=None, api_token_secret=None,
                 api_port=None, api_otp=None, validate_certs=True, ca_path=None, api_timeout=5):
        if not api_host:
            raise ValueError('api_host is required')
        if bool(api_token_id) != bool(api_token_secret):
            raise ValueError('api_token_id and api_token_secret are required together')
        if not api_password and not api_token_id:
            raise ValueError('one of api_password or api_token_id is required')
        if api_timeout is not None and api_timeout <= 0:
            raise ValueError('api_timeout must be a positive number of seconds')
        user = api_user or 'root@pam'
        token_name = api_token_id
        if token_name and '!' in token_name:
            # A full token id (user@realm!name) names its user too.
            token_user, token_name = token_name.split('!', 1)
            user = token_user
        self.host = api_host
        self.port = api_port
        self.user = user
        # With both given the token wins (as in community.proxmox and proxmoxer).
        self.password = None if token_name else api_password
        self.otp = api_otp
        self.token_name = token_name
        self.token_secret = api_token_secret
        self.validate_certs = validate_certs
        self.ca_path = ca_path
        self.timeout = api_timeout or 5

    @classmethod
    def from_params(cls, params):
        return cls(**dict((k, params.get(k)) for k in AUTH_OPTIONS if k in params and params.get(k) is not None))

    @property
    def uses_token(self):
        return bool(self.token_name)

    @property
    def token_id(self):
        """user@realm!name, or None for a password login."""
        return '{0}!{1}'.format(self.user, self.token_name) if self.token_name else None

    @property
    def is_root_password_login(self):
        """True only for a password (ticket) login as root@pam: the one PVE lets use skiplock."""
        return not self.uses_token and self.user == 'root@pam'

    @property
    def verify(self):
        """The value for requests' `verify`: False, True (system CAs) or the CA bundle path."""
        if not self.validate_certs:
            return False
        return self.ca_path or True


def check_connection(params):
    """The module runner's input check of the connection options (raises ValueError), before any request."""
    ConnectionSettings.from_params(params)
    return []


def proxmox_libraries(params=None):
    """The module runner's dependency probe: (library, present, import traceback); imports the client lazily."""
    from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.client import (
        HAS_PROXMOXER, PROXMOXER_IMPORT_ERROR)
    return [('proxmoxer', HAS_PROXMOXER, PROXMOXER_IMPORT_ERROR)]
