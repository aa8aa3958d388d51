# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    """Talos API connection options shared by the Talos modules of the collection."""

    DOCUMENTATION = r"""
options:
  talosconfig:
    description:
      - Path to a talosconfig file (as written by C(talosctl)).
      - If not given, E(TALOSCONFIG), then C(~/.talos/config), then C(/var/run/secrets/talos.dev/config) are tried,
        as C(talosctl) does.
      - Ignored when O(ca), O(crt) and O(key) are given.
    type: path
  context:
    description:
      - The talosconfig context to use (default its current C(context)).
    type: str
  endpoints:
    description:
      - Talos API endpoints (node addresses, C(host) or C(host:port), port 50000 by default) to connect to.
      - Overrides the endpoints of the talosconfig context; required with O(ca)/O(crt)/O(key).
      - Never use the control-plane VIP as an endpoint, it only lives on a healthy, bootstrapped cluster.
    type: list
    elements: str
  ca:
    description:
      - The Talos OS CA certificate (PEM text, base64 of PEM as in a talosconfig, or a path to a PEM file).
      - Server certificates are always verified against it, and must cover the address connected to.
    type: str
  crt:
    description:
      - The client certificate (PEM, base64 of PEM or a path). Its Organization is the role
        (C(os:admin), C(os:operator), C(os:reader), C(os:etcd:backup)). Reading the machine config and
        C(ApplyConfiguration) need C(os:admin); a reboot or shutdown C(os:admin) or C(os:operator).
    type: str
  key:
    description:
      - The client key (PEM, base64 of PEM or a path). Talos' C(ED25519 PRIVATE KEY) label is accepted.
    type: str
  timeout:
    description:
      - Seconds one API call may take.
    type: float
    default: 30.0
  connect_timeout:
    description:
      - Seconds to wait for an endpoint to accept the connection before trying the next one.
    type: float
    default: 10.0
  retries:
    description:
      - Extra rounds over the endpoints when none answers (and, for reads, when the target node is
        unavailable), with exponential backoff. Changes are never re-sent after the request went out.
    type: int
    default: 3
requirements:
  - grpclib >= 0.4.7 (Python, speaks gRPC over the standard C(ssl) module; C(grpcio) cannot do Talos' Ed25519 TLS)
  - protobuf >= 7.35.1 (Python)
notes:
  - The Talos API is reached natively over gRPC with mutual TLS; C(talosctl) is not needed.
  - Calls go to the first endpoint that answers and are routed to O(node) with the C(node) metadata (apid's
    one-to-one proxying).
"""
