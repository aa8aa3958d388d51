# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Proxmox connection as one dict option (tazlab.resilience.proxmox_connection), for modules that also
take the Kubernetes connection at top level (whose names, e.g. validate_certs, would collide)."""

from __future__ import annotations


class ModuleDocFragment(object):
    # The suboptions are the proxmox_auth fragment's options (its text, cross-references pointing into the dict).
    DOCUMENTATION = r"""
options:
  proxmox:
    description:
      - Proxmox VE connection options, with the names, environment variables and defaults of the
        C(tazlab.resilience.proxmox_auth) fragment (C(tazlab_proxmox) in the lab's inventory).
    type: dict
    suboptions:
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
            - Password of O(proxmox.api_user) (ticket login).
            - Uses the E(PROXMOX_PASSWORD) environment variable if not specified.
            - One of O(proxmox.api_password) or O(proxmox.api_token_id) is required; the token wins if both are set.
          type: str
        api_otp:
          description:
            - One-time password for a user with two-factor authentication (password login only).
          type: str
        api_token_id:
          description:
            - Name of an API token of O(proxmox.api_user) (the part after V(!)), or the full token id V(user@realm!name).
            - Uses the E(PROXMOX_TOKEN_ID) environment variable if not specified.
            - Required together with O(proxmox.api_token_secret).
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
              system's CA store. Ignored if O(proxmox.validate_certs=false).
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
