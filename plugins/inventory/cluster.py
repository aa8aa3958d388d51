# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: cluster
short_description: Kubernetes nodes of a Talos-on-Proxmox cluster, each matched to the VM that carries its SMBIOS UUID
version_added: 0.1.0
description:
  - Builds the inventory the runbooks (V(tazlab.resilience.dr_recover), V(tazlab.resilience.dr_restore),
    V(tazlab.resilience.ip_migrate)) need from the Kubernetes API and the Proxmox VE API, read only.
  - One host per Kubernetes node with its role, Ready condition, InternalIP and C(status.nodeInfo.systemUUID), and
    the VM whose C(smbios1) UUID equals that systemUUID (vmid, PVE host, name, whether HA manages it). The VM
    is found by UUID across all VMs of the PVE cluster, never by name.
  - Groups C(control_plane), C(workers), C(unfenceable) (no VM or several VMs carry the node's UUID, or no
    VM matched while some VM configs could not be read), and one group per PVE host (O(host_group_prefix)
    + host name) with the nodes whose VM runs there.
  - The group C(all) gets the connection settings as the runbooks take them, C(tazlab_kubernetes),
    C(tazlab_proxmox) and C(tazlab_talos), made only of what this file configures (templates and vaulted
    values are passed on unrendered); settings taken from the environment are left to the modules,
    which read the same environment variables. So no secret reaches the host variables unless it is
    written in this file.
  - The host C(localhost) is added with C(ansible_connection=local) and the playbook's own Python.
  - The file must be named C(cluster.yml), C(cluster.yaml) or end in C(.cluster.yml) / C(.cluster.yaml).
  - Option values may be Jinja templates (for example C(lookup) calls, with C(inventory_dir) and C(inventory_file)
    defined as at run time) and inline vaulted strings.
author:
  - TazLab resilience engineers (@tazlab)
extends_documentation_fragment:
  - constructed
  - inventory_cache
options:
  plugin:
    description: The name of this plugin; the file is only read when it names it.
    type: str
    required: true
    choices: [ tazlab.resilience.cluster ]
  kubernetes:
    description:
      - Kubernetes connection options, the same as the modules' (doc fragment C(tazlab.resilience.k8s_auth),
        the names of M(kubernetes.core.k8s)) - C(kubeconfig), C(context), C(host), C(api_key), C(username),
        C(password), C(validate_certs) (alias C(verify_ssl)), C(ca_cert), C(client_cert), C(client_key),
        C(proxy), C(no_proxy), C(proxy_headers), C(persist_config), C(impersonate_user), C(impersonate_groups),
        C(request_timeout), C(api_retries).
      - Options not given here are taken from the E(K8S_AUTH_*) environment variables as the modules do
        (E(K8S_AUTH_KUBECONFIG), E(K8S_AUTH_HOST), E(K8S_AUTH_API_KEY), E(K8S_AUTH_VERIFY_SSL),
        E(K8S_AUTH_SSL_CA_CERT) ...); with none at all, C(~/.kube/config) is used.
    type: dict
    default: {}
  proxmox:
    description:
      - Proxmox VE connection options, the same as the modules' (doc fragment C(tazlab.resilience.proxmox_auth),
        the names of community.proxmox) - C(api_host), C(api_port), C(api_user), C(api_password), C(api_otp),
        C(api_token_id), C(api_token_secret), C(validate_certs), C(ca_path), C(api_timeout).
      - Options not given here are taken from E(PROXMOX_HOST), E(PROXMOX_PORT), E(PROXMOX_USER),
        E(PROXMOX_PASSWORD), E(PROXMOX_TOKEN_ID), E(PROXMOX_TOKEN_SECRET), E(PROXMOX_VALIDATE_CERTS),
        E(PROXMOX_CA_PATH), E(PROXMOX_API_TIMEOUT).
      - The inventory only reads (C(/cluster/status), C(/cluster/resources), each VM's C(config)); a token with
        VM.Audit on C(/vms) and Sys.Audit on C(/) is enough for it.
    type: dict
    default: {}
  talos:
    description:
      - Talos connection options for C(tazlab_talos) (doc fragment C(tazlab.resilience.talos_auth)) - C(talosconfig),
        C(context), C(endpoints).
      - C(port) is the Talos API port of the nodes for C(talos_endpoint); without it the port of the
        talosconfig's endpoints is used (E(TALOSCONFIG) and C(~/.talos/config) are looked up as C(talosctl)
        does), else 50000.
    type: dict
    default: {}
  host_group_prefix:
    description: Prefix of the per-PVE-host groups (a node whose VM runs on C(pve1) is in C(pve_pve1)).
    type: str
    default: pve_
  connection_vars:
    description: Set C(tazlab_kubernetes), C(tazlab_proxmox) and C(tazlab_talos) on the group C(all).
    type: bool
    default: true
notes:
  - Host variables per node are C(node_name), C(node_role) (V(control-plane) or V(worker)), C(node_ready),
    C(node_internal_ip), C(ansible_host), C(system_uuid), C(proxmox_vmid), C(proxmox_node), C(proxmox_vm_name),
    C(proxmox_ha_managed), C(proxmox_vmids) (every VM carrying the UUID), C(talos_node), C(talos_endpoint), and
    C(unfenceable_reason) for the nodes in C(unfenceable). Use O(compose) to change any of them (for example
    C(talos_node) when the Talos API is reached through other addresses than the InternalIP).
  - With O(cache) the discovered nodes and VMs (no credentials) are kept by an inventory cache plugin.
requirements:
  - kubernetes >= 30.1.0 (Python client)
  - proxmoxer >= 2.0.0
seealso:
  - module: tazlab.resilience.proxmox_fence
  - module: tazlab.resilience.remediation_plan
"""

EXAMPLES = r"""
# inventory/tazlab.cluster.yml
plugin: tazlab.resilience.cluster
kubernetes:
  kubeconfig: ~/.kube/config
proxmox:
  api_host: pve1.example.org
  api_user: dr@pve
  api_token_id: inventory
  # or inline vaulted: ansible-vault encrypt_string --name api_token_secret
  api_token_secret: "{{ lookup('ansible.builtin.env', 'PVE_INVENTORY_TOKEN_SECRET') }}"
  ca_path: /etc/ssl/pve-root-ca.pem
talos:
  talosconfig: ~/.talos/config
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/tazlab-inventory
cache_timeout: 600
keyed_groups:
  - key: proxmox_ha_managed
    prefix: ha
    separator: "_"

# Everything from the environment (AWX credentials inject K8S_AUTH_* and PROXMOX_*):
# plugin: tazlab.resilience.cluster
"""

import os

from ansible.errors import AnsibleParserError
from ansible.module_utils.common.text.converters import to_native
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable
from ansible.template import trust_as_template

from ansible_collections.tazlab.resilience.plugins.module_utils.inventory.cluster import (
    TALOS_DEFAULT_PORT, build_inventory, read_cluster,
)

try:
    from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.args import K8S_AUTH_ARG_SPEC, auth_env_fallbacks
    from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.client import (
        HAS_K8S, K8S_IMPORT_ERROR, client_from_params,
    )
    from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.errors import K8sError
    from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.auth import (
        ConnectionSettings, proxmox_auth_argument_spec,
    )
    from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.client import (
        HAS_PROXMOXER, PROXMOXER_IMPORT_ERROR, ProxmoxClient,
    )
    from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.errors import ProxmoxError
    from ansible_collections.tazlab.resilience.plugins.module_utils.talos.errors import TalosConfigError
    from ansible_collections.tazlab.resilience.plugins.module_utils.talos.talosconfig import (
        find_talosconfig, load_talosconfig,
    )
except ImportError as import_error:  # pragma: no cover - a broken install
    IMPORT_ERROR = import_error
else:
    IMPORT_ERROR = None

NAME = 'tazlab.resilience.cluster'
K8S_EXTRA = {'request_timeout': 'float', 'api_retries': 'int'}
TALOS_OPTIONS = ('talosconfig', 'context', 'endpoints', 'port')
SECRET_KEYS = ('api_key', 'password', 'api_password', 'api_otp', 'api_token_secret', 'key')


def _k8s_names():
    """option or alias -> option name, for the Kubernetes options."""
    names = dict((k, k) for k in K8S_AUTH_ARG_SPEC)
    for key, spec in K8S_AUTH_ARG_SPEC.items():
        for alias in spec.get('aliases') or []:
            names[alias] = key
    names.update((k, k) for k in K8S_EXTRA)
    return names


def _env_names(spec):
    fallback = spec.get('fallback')
    return list(fallback[1]) if fallback else []


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    NAME = NAME

    def verify_file(self, path):
        if not super(InventoryModule, self).verify_file(path):
            return False
        base = os.path.basename(path)
        return base in ('cluster.yml', 'cluster.yaml') or base.endswith(('.cluster.yml', '.cluster.yaml'))

    # ------------------------------------------------------------------ options
    def _fail(self, message):
        raise AnsibleParserError('{0}: {1}'.format(NAME, message))

    def _render(self, value):
        """A configured value ready to use: templates rendered, vaulted strings decrypted."""
        if isinstance(value, str) and ('{{' in value or '{%' in value):
            # inventory_dir / inventory_file as at run time, so the same template works in both places.
            templar = self.templar.copy_with_new_env(available_variables={
                'inventory_dir': os.path.dirname(os.path.abspath(self._path)),
                'inventory_file': os.path.abspath(self._path)})
            value = templar.template(value)
        if isinstance(value, str):
            return str(value)   # a vaulted string decrypts here
        return value

    def _section(self, key, known):
        section = self.get_option(key) or {}
        if not isinstance(section, dict):
            self._fail('{0} must be a dictionary of options, not {1}'.format(key, type(section).__name__))
        unknown = sorted(set(section) - set(known))
        if unknown:
            self._fail('unknown {0} option(s) {1}; known: {2}'.format(key, ', '.join(unknown), ', '.join(sorted(known))))
        return section

    def _kubernetes_params(self, configured):
        names = _k8s_names()
        given = dict((names[key], self._render(value)) for key, value in configured.items() if value is not None)
        try:
            for flag in ('validate_certs', 'persist_config'):
                if flag in given:
                    given[flag] = boolean(given[flag], strict=True)
            # The options not configured come from K8S_AUTH_*, converted as AnsibleModule would (the one reader).
            params = auth_env_fallbacks(given)
            params['request_timeout'] = float(params.get('request_timeout') or 30.0)
            params['api_retries'] = int(params.get('api_retries') or 4)
        except (TypeError, ValueError) as exc:
            self._fail('kubernetes: {0}'.format(to_native(exc)))
        for path_key in ('ca_cert', 'client_cert', 'client_key'):
            if isinstance(params.get(path_key), str):
                params[path_key] = os.path.expanduser(params[path_key])
        if isinstance(params.get('kubeconfig'), str):
            params['kubeconfig'] = os.path.expanduser(params['kubeconfig'])
        return params

    def _proxmox_settings(self, configured):
        spec = proxmox_auth_argument_spec()
        params = {}
        for key, option in spec.items():
            value = configured.get(key)
            if value is None:
                for env in _env_names(option):
                    if os.environ.get(env):
                        value = os.environ[env]
                        break
            else:
                value = self._render(value)
            if value is None:
                value = option.get('default')
            if value is None:
                continue
            try:
                if option['type'] == 'bool':
                    value = boolean(value, strict=True)
                elif option['type'] == 'int':
                    value = int(value)
                elif option['type'] == 'path':
                    value = os.path.expanduser(str(value))
            except (TypeError, ValueError) as exc:
                self._fail('proxmox {0}: {1}'.format(key, to_native(exc)))
            params[key] = value
        if not params.get('api_host'):
            self._fail('no Proxmox API host: set proxmox.api_host in {0} or PROXMOX_HOST'.format(self._path))
        try:
            return ConnectionSettings.from_params(params)
        except ValueError as exc:
            self._fail('proxmox: {0} (in {1} or the PROXMOX_* environment)'.format(exc, self._path))

    def _talos_port(self, configured):
        if configured.get('port'):
            try:
                return int(self._render(configured['port']))
            except (TypeError, ValueError):
                self._fail('talos port must be a number, not {0!r}'.format(configured['port']))
        path = configured.get('talosconfig')
        path = self._render(path) if path else None
        if path or find_talosconfig():
            try:
                auth = load_talosconfig(path, self._render(configured['context']) if configured.get('context') else None)
            except TalosConfigError as exc:
                if path:
                    self._fail('talos: {0}'.format(exc))
                return TALOS_DEFAULT_PORT
            ports = set(port for dummy, port in auth.endpoints)
            if len(ports) == 1:
                return ports.pop()
        return TALOS_DEFAULT_PORT

    # ------------------------------------------------------------------ discovery
    def _discover(self, kubernetes, proxmox, talos):
        if not HAS_K8S:
            self._fail('the kubernetes Python library is required: {0}'.format(K8S_IMPORT_ERROR))
        if not HAS_PROXMOXER:
            self._fail('the proxmoxer Python library is required: {0}'.format(PROXMOXER_IMPORT_ERROR))
        params = self._kubernetes_params(kubernetes)
        settings = self._proxmox_settings(proxmox)
        port = self._talos_port(talos)
        try:
            k8s = client_from_params(params)
        except K8sError as exc:
            self._fail('cannot configure the Kubernetes client: {0}'.format(exc))
        pve = ProxmoxClient(settings)
        try:
            cluster = read_cluster(k8s, pve)
        except K8sError as exc:
            self._fail('cannot read the Kubernetes nodes from {0}: {1}'.format(
                k8s.api_client.configuration.host, exc))
        except ProxmoxError as exc:
            self._fail('cannot read the Proxmox VMs from {0}: {1}'.format(settings.host, exc))
        built = build_inventory(cluster, talos_port=port, host_group_prefix=self.get_option('host_group_prefix'))
        built['unreadable_vms'] = cluster['unreadable_vms']
        return built

    # ------------------------------------------------------------------ populate
    def _connection_vars(self, kubernetes, proxmox, talos):
        """What this file configures, unrendered (templates and vaulted values stay as written)."""
        names = _k8s_names()
        k8s = dict((names[k], v) for k, v in kubernetes.items() if v is not None and k not in K8S_EXTRA)
        pve = dict((k, v) for k, v in proxmox.items() if v is not None)
        tal = dict((k, v) for k, v in talos.items() if v is not None and k != 'port')
        return {'tazlab_kubernetes': k8s, 'tazlab_proxmox': pve, 'tazlab_talos': tal}

    def _populate(self, built, kubernetes, proxmox, talos):
        inv = self.inventory
        strict = self.get_option('strict')
        for group in ('control_plane', 'workers', 'unfenceable'):
            inv.add_group(group)
        for group, members in sorted(built['groups'].items()):
            inv.add_group(group)
            for host in members:
                inv.add_host(host, group=group)
        for host, hostvars in built['hosts'].items():
            inv.add_host(host)
            inv.set_variable(host, 'ansible_connection', 'local')
            for key, value in hostvars.items():
                inv.set_variable(host, key, value)
            self._set_composite_vars(self.get_option('compose'), hostvars, host, strict=strict)
            self._add_host_to_composed_groups(self.get_option('groups'), hostvars, host, strict=strict)
            self._add_host_to_keyed_groups(self.get_option('keyed_groups'), hostvars, host, strict=strict)
        inv.add_host('localhost')
        inv.set_variable('localhost', 'ansible_connection', 'local')
        inv.set_variable('localhost', 'ansible_python_interpreter', trust_as_template('{{ ansible_playbook_python }}'))
        inv.set_variable('all', 'tazlab_unreadable_vms', built.get('unreadable_vms') or [])
        if self.get_option('connection_vars'):
            for key, value in self._connection_vars(kubernetes, proxmox, talos).items():
                inv.set_variable('all', key, value)

    def parse(self, inventory, loader, path, cache=True):
        super(InventoryModule, self).parse(inventory, loader, path, cache)
        if IMPORT_ERROR is not None:
            self._fail('cannot import the collection code: {0}'.format(IMPORT_ERROR))
        self._path = path
        self._read_config_data(path)
        kubernetes = self._section('kubernetes', _k8s_names())
        proxmox = self._section('proxmox', proxmox_auth_argument_spec())
        talos = self._section('talos', TALOS_OPTIONS)

        cache_key = self.get_cache_key(path)
        use_cache = self.get_option('cache') and cache
        update_cache = self.get_option('cache') and not cache
        built = None
        if use_cache:
            try:
                built = self._cache[cache_key]
            except KeyError:
                update_cache = True
        if built is None:
            built = self._discover(kubernetes, proxmox, talos)
        if update_cache:
            self._cache[cache_key] = built
        self._populate(built, kubernetes, proxmox, talos)
