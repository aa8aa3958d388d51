# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection options shared by the Proxmox modules (tazlab.resilience.proxmox_auth), and the same options nested
in one O(proxmox_auth) dict (tazlab.resilience.proxmox_auth.nested) for modules that also take the Kubernetes
connection at top level."""

from __future__ import annotations

# Doc fragments are string literals (ansible-test's yamllint reads them so): NESTED and the proxmox_connection
# fragment repeat these options (cross-references prefixed there); tests/unit/plugins/module_utils/proxmox/
# test_auth_nested.py keeps the copies equal.


class ModuleDocFragment(object):
    # Same names, environment variables and defaults as community.proxmox, so inventories carry over.
    DOCUMENTATION = r"""
options:
  api_host:
    description:
      - Host name or address of a node of the Proxmox VE cluster (its API endpoint).
      - Uses the E(PROXMOX_HOST) environment variable if not specified.
    type: str
    required: true
  api_port:
    description:
      - Port of the Proxmox VE API.
      - Uses the E(PROXMOX_PORT) environment variable if not specified; PVE's default is 8006.
    type: int
  api_user:
    description:
      - User to authenticate as, with its realm (V(root@pam), V(fence@pve)).
      - Uses the E(PROXMOX_USER) environment variable if not specified.
    type: str
    default: root@pam
  api_password:
    description:
      - Password of O(api_user) (ticket login).
      - Uses the E(PROXMOX_PASSWORD) environment variable if not specified.
      - One of O(api_password) or O(api_token_id) is required; the token wins if both are set.
    type: str
  api_otp:
    description:
      - One-time password for a user with two-factor authentication (password login only).
    type: str
  api_token_id:
    description:
      - Name of an API token of O(api_user) (the part after V(!)), or the full token id V(user@realm!name).
      - Uses the E(PROXMOX_TOKEN_ID) environment variable if not specified.
      - Required together with O(api_token_secret).
    type: str
  api_token_secret:
    description:
      - Secret (UUID) of the API token.
      - Uses the E(PROXMOX_TOKEN_SECRET) environment variable if not specified.
    type: str
  validate_certs:
    description:
      - Verify the TLS certificate of the API endpoint. Leave on outside of throw-away labs.
      - Uses the E(PROXMOX_VALIDATE_CERTS) environment variable if not specified.
    type: bool
    default: true
  ca_path:
    description:
      - PEM file with the CA (or the self-signed certificate) to verify the API endpoint with, instead of the
        system's CA store. Ignored if O(validate_certs=false).
      - Uses the E(PROXMOX_CA_PATH) environment variable if not specified.
    type: path
  api_timeout:
    description:
      - Seconds one API request may take. Reads are retried on network faults within a bounded time.
      - Uses the E(PROXMOX_API_TIMEOUT) environment variable if not specified.
    type: int
    default: 5
requirements:
  - proxmoxer >= 2.0.0
  - requests >= 2.31.0
"""

    # The suboptions of a nested ``proxmox_auth`` dict (module_utils/proxmox/auth.py proxmox_auth_suboptions()):
    # the options above with O(proxmox_auth.api_host) optional (no host, no Proxmox access). A module using it
    # documents O(proxmox_auth) itself (its description, type dict, default {}); Ansible merges these suboptions in.
    NESTED = r"""
options:
  proxmox_auth:
    type: dict
    default: {}
    suboptions:
      api_host:
        description: Host name or address of a node of the PVE cluster (PROXMOX_HOST).
        type: str
      api_port:
        description: Port of the PVE API (PROXMOX_PORT); PVE's default is 8006.
        type: int
      api_user:
        description: User with its realm (PROXMOX_USER).
        type: str
        default: root@pam
      api_password:
        description: Password of O(proxmox_auth.api_user) (PROXMOX_PASSWORD).
        type: str
      api_otp:
        description: One-time password for a user with two-factor authentication.
        type: str
      api_token_id:
        description: API token id, C(name) or C(user@realm!name) (PROXMOX_TOKEN_ID).
        type: str
      api_token_secret:
        description: API token secret (PROXMOX_TOKEN_SECRET).
        type: str
      validate_certs:
        description: Verify the PVE API's TLS certificate (PROXMOX_VALIDATE_CERTS).
        type: bool
        default: true
      ca_path:
        description: CA bundle to verify the PVE certificate with (PROXMOX_CA_PATH).
        type: path
      api_timeout:
        description: Seconds per PVE API request (PROXMOX_API_TIMEOUT).
        type: int
        default: 5
"""
