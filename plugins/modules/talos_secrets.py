#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: talos_secrets
short_description: Generate a Talos cluster's secrets bundle once, natively (no talosctl)
version_added: 0.2.0
description:
  - Writes the secrets bundle of a new Talos cluster (the C(secrets.yaml) of C(talosctl gen secrets), the Terraform
    provider's C(talos_machine_secrets)) with the C(cryptography) library - the Talos API CA (Ed25519), the Kubernetes,
    front-proxy and etcd CAs (ECDSA P-256), the service-account key (RSA 4096 for version contracts 1.7 and later),
    the kubelet bootstrap token, the secretbox encryption secret, the cluster id and secret and the trustd token.
  - The bundle is written once, atomically, with mode 0600, and never regenerated - a rerun reads and validates the
    existing file and reports no change (a file readable by others is tightened to 0600, a change).
  - A bundle made by C(talosctl gen secrets), talhelper or Omni can be placed at O(path) instead; it is validated the
    same way.
  - The bundle's content is never returned; only fingerprints and validity dates.
author:
  - TazLab resilience engineers (@tazlab)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  platform:
    platforms: all
  check_mode:
    support: full
    details: Reports whether the bundle would be generated; nothing is written.
  diff_mode:
    support: none
options:
  path:
    description:
      - The secrets bundle file (YAML, as C(talosctl gen secrets) writes it). Its directory must exist.
    type: path
    required: true
  talos_version:
    description:
      - The Talos version whose version contract the bundle follows (C(v1.13.9), C(v1.13)); before 1.7 the
        service-account key is ECDSA, before 1.3 an AES-CBC secret is made instead of the secretbox secret.
    type: str
    default: v1.13.9
requirements:
  - cryptography
"""

EXAMPLES = r"""
- name: The cluster's secrets, made once
  tazlab.resilience.talos_secrets:
    path: "{{ playbook_dir }}/secrets/tazlab.secrets.yaml"
"""

RETURN = r"""
path:
  description: The bundle file.
  returned: always
  type: str
generated:
  description: Whether this run generated the bundle.
  returned: always
  type: bool
action:
  description: V(generate) (no file), V(keep) (valid file left as it is) or V(fix_mode) (file readable by others).
  returned: always
  type: str
os_ca_fingerprint:
  description: Base64 SHA-256 of the Talos API CA's SubjectPublicKeyInfo.
  returned: unless the bundle would only be generated in check mode
  type: str
certs:
  description: Per CA (os, k8s, k8saggregator, etcd) its subject, key type and expiry.
  returned: unless the bundle would only be generated in check mode
  type: dict
"""

from ansible_collections.tazlab.resilience.plugins.module_utils.runner import run_module
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.secrets import (
    DEFAULT_TALOS_VERSION, cryptography_library, run_secrets_module)


def main():
    run_module(dict(
        path=dict(type='path', required=True),
        talos_version=dict(type='str', default=DEFAULT_TALOS_VERSION),
    ), run_secrets_module, requires=[cryptography_library])


if __name__ == '__main__':
    main()
