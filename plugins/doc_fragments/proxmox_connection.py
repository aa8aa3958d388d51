# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Proxmox connection as one dict option (tazlab.resilience.proxmox_connection), for modules that also
take the Kubernetes connection at top level (whose names, e.g. validate_certs, would collide)."""

from __future__ import annotations

from ansible_collections.tazlab.resilience.plugins.doc_fragments.proxmox_auth import REQUIREMENTS, connection_options


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
""" + connection_options(prefix='proxmox.', indent=6) + REQUIREMENTS
