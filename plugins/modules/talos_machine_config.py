#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: talos_machine_config
short_description: Render Talos machine configs and the admin talosconfig from a secrets bundle (no talosctl)
version_added: 0.2.0
description:
  - Renders the machine config of a control plane or a worker as C(talosctl gen config) (the Terraform provider's
    C(talos_machine_configuration)) does for the version contract, from the bundle of M(tazlab.resilience.talos_secrets),
    with the cluster endpoint (the control-plane VIP), the install disk and image, the node's network and VIP, then
    the O(config_patches) (Talos strategic merge or JSON6902, the collection's patch code).
  - Workers get the OS and Kubernetes CA certificates without their keys, no etcd, service-account key or
    encryption secret.
  - Writes the admin talosconfig (an Ed25519 C(os:admin) client certificate valid 365 days, signed by the OS CA) with
    the control planes' addresses as endpoints; an existing client certificate is kept until it expires within 30
    days, then renewed.
  - Rendering is deterministic - a rerun with the same inputs writes nothing. Files are written atomically with mode
    0600. The content is never returned (it carries the cluster's keys); the diff masks secret values.
  - Users who bring their own configs (C(talosctl gen config), talhelper, Omni) skip this module.
author:
  - TazLab resilience engineers (@tazlab)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  platform:
    platforms: all
  check_mode:
    support: full
    details: Renders and compares; nothing is written.
  diff_mode:
    support: full
    details: The rendered config with secret values masked.
options:
  secrets:
    description:
      - The secrets bundle file (M(tazlab.resilience.talos_secrets) or C(talosctl gen secrets)).
    type: path
    required: true
  cluster_name:
    description:
      - The cluster's name (C(cluster.clusterName), the talosconfig context by default).
    type: str
    required: true
  cluster_endpoint:
    description:
      - The Kubernetes API endpoint, C(https://<host>:<port>), normally on the control-plane VIP.
      - Required with O(dest).
    type: str
  machine_type:
    description:
      - The kind of machine config to render. Required with O(dest).
    type: str
    choices: [controlplane, worker]
  dest:
    description:
      - The machine config file to write.
    type: path
  talos_version:
    description:
      - The Talos version (version contract and default installer tag).
    type: str
    default: v1.13.9
  kubernetes_version:
    description:
      - The Kubernetes version of the images (kubelet, apiserver, ...).
    type: str
    default: 1.36.3
  install_disk:
    description:
      - The disk Talos installs to (C(/dev/sda) on VirtIO SCSI, C(/dev/vda) on VirtIO block).
    type: str
    default: /dev/sda
  install_image:
    description:
      - The installer image (default C(ghcr.io/siderolabs/installer:<talos_version>)); use the Image Factory installer
        of the ISO's schematic to keep extensions such as the QEMU guest agent.
    type: str
  hostname:
    description:
      - The node's hostname (a C(HostnameConfig) document for contracts 1.12 and later, C(machine.network.hostname)
        before); without it Talos picks a stable one.
    type: str
  network:
    description:
      - The node's network, rendered into C(machine.network).
    type: dict
    suboptions:
      interface:
        description: The link name (C(eth0)); without it and O(network.device_selector) any physical link.
        type: str
      device_selector:
        description: A Talos C(deviceSelector) (e.g. C(hardwareAddr)).
        type: dict
      addresses:
        description: Static addresses with prefix (C(10.0.0.11/24)).
        type: list
        elements: str
      gateway:
        description: The default gateway.
        type: str
      dhcp:
        description: Use DHCP on the link.
        type: bool
      vip:
        description: The shared control-plane VIP (control planes only).
        type: str
      nameservers:
        description: DNS servers.
        type: list
        elements: str
  cert_sans:
    description:
      - Extra SANs of the Talos API and Kubernetes API certificates.
    type: list
    elements: str
  config_patches:
    description:
      - Patches applied in order to the rendered config (see M(tazlab.resilience.talos_node)).
    type: list
    elements: raw
  talosconfig_dest:
    description:
      - The admin talosconfig file to write.
    type: path
  talosconfig_endpoints:
    description:
      - The talosconfig endpoints - node addresses of the control planes, never the VIP. Required with
        O(talosconfig_dest).
    type: list
    elements: str
  talosconfig_nodes:
    description:
      - The talosconfig's default nodes.
    type: list
    elements: str
  context:
    description:
      - The talosconfig context (default O(cluster_name)).
    type: str
requirements:
  - cryptography
"""

EXAMPLES = r"""
- name: Control-plane config on the VIP
  tazlab.resilience.talos_machine_config:
    secrets: secrets/tazlab.secrets.yaml
    cluster_name: tazlab
    cluster_endpoint: https://192.168.1.70:6443
    machine_type: controlplane
    hostname: cp1
    network:
      interface: eth0
      addresses: [192.168.1.71/24]
      gateway: 192.168.1.1
      vip: 192.168.1.70
    config_patches:
      - machine:
          time:
            servers: [pool.ntp.org]
    dest: configs/cp1.yaml

- name: The admin talosconfig
  tazlab.resilience.talos_machine_config:
    secrets: secrets/tazlab.secrets.yaml
    cluster_name: tazlab
    talosconfig_dest: talosconfig
    talosconfig_endpoints: [192.168.1.71, 192.168.1.72, 192.168.1.73]
"""

RETURN = r"""
dest:
  description: The machine config file.
  returned: when O(dest) is given
  type: str
machine_type:
  description: The type rendered.
  returned: when O(dest) is given
  type: str
talosconfig_dest:
  description: The talosconfig file.
  returned: when O(talosconfig_dest) is given
  type: str
client_cert_renewed:
  description: Whether a new admin client certificate was minted (none yet, other CA, or expiring within 30 days).
  returned: when O(talosconfig_dest) is given
  type: bool
"""

from ansible_collections.tazlab.resilience.plugins.module_utils.runner import run_module
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.machineconfig import (
    DEFAULT_INSTALL_DISK, DEFAULT_KUBERNETES_VERSION, MACHINE_TYPES, run_machine_config_module)
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.secrets import (
    DEFAULT_TALOS_VERSION, cryptography_library)


def main():
    run_module(dict(
        secrets=dict(type='path', required=True),
        cluster_name=dict(type='str', required=True),
        cluster_endpoint=dict(type='str'),
        machine_type=dict(type='str', choices=list(MACHINE_TYPES)),
        dest=dict(type='path'),
        talos_version=dict(type='str', default=DEFAULT_TALOS_VERSION),
        kubernetes_version=dict(type='str', default=DEFAULT_KUBERNETES_VERSION),
        install_disk=dict(type='str', default=DEFAULT_INSTALL_DISK),
        install_image=dict(type='str'),
        hostname=dict(type='str'),
        network=dict(type='dict', options=dict(
            interface=dict(type='str'),
            device_selector=dict(type='dict'),
            addresses=dict(type='list', elements='str'),
            gateway=dict(type='str'),
            dhcp=dict(type='bool'),
            vip=dict(type='str'),
            nameservers=dict(type='list', elements='str'),
        ), mutually_exclusive=[('interface', 'device_selector')]),
        cert_sans=dict(type='list', elements='str'),
        config_patches=dict(type='list', elements='raw'),
        talosconfig_dest=dict(type='path'),
        talosconfig_endpoints=dict(type='list', elements='str'),
        talosconfig_nodes=dict(type='list', elements='str'),
        context=dict(type='str'),
    ), run_machine_config_module, requires=[cryptography_library],
        required_one_of=[('dest', 'talosconfig_dest')],
        required_by=dict(dest=('machine_type', 'cluster_endpoint'), talosconfig_dest=('talosconfig_endpoints',)),
    )


if __name__ == '__main__':
    main()
