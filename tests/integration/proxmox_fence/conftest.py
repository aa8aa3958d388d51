"""Fixtures for the proxmox_fence tests: a fakepve with a plain and an HA-managed VM, and connection arguments."""

from __future__ import annotations

import pytest

from proxmox_fence_helpers import PASSWORD, TOKEN_ID, TOKEN_SECRET, add_vm


@pytest.fixture
def pve(fakepve):
    """fakepve with two nodes, a plain VM (100) on pve1 and an HA-managed VM (101) on pve2, and an API token."""
    fakepve.apitokens[TOKEN_ID] = TOKEN_SECRET
    add_vm(fakepve, 100, 'pve1')
    add_vm(fakepve, 101, 'pve2', ha=True)
    return fakepve


@pytest.fixture
def auth(pve, fakepve_cafile):
    """auth('password'|'token', **overrides) -> the module's connection arguments (TLS verified)."""
    host, port = pve.url.split('://')[1].rsplit(':', 1)

    def make(kind='password', **overrides):
        args = dict(api_host=host, api_port=int(port), validate_certs=True, ca_path=fakepve_cafile, api_timeout=3)
        if kind == 'token':
            args.update(api_user='root@pam', api_token_id='fence', api_token_secret=TOKEN_SECRET)
        else:
            args.update(api_user='root@pam', api_password=PASSWORD)
        args.update(overrides)
        return args
    return make
