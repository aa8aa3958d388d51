"""Driving the hardening logic (module_utils) against a lab world running in scaled real time."""

from __future__ import annotations

import asyncio
import time

from ansible_collections.tazlab.resilience.plugins.module_utils.hardening.disk import NodeRoll
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.client import client_from_params
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.client import TalosClient
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.talosconfig import resolve_auth


def talos_auth(world):
    return resolve_auth(talosconfig=world.paths()['talosconfig'])


def k8s(world):
    return client_from_params({'kubeconfig': world.paths()['kubeconfig']})


def node_params(world, name, tmp_path, **extra):
    node = next(n for n in world.cluster_nodes() if n['name'] == name)
    params = dict(node=world.nodes[name].address, node_name=name,
                  role='controlplane' if node['role'] == 'control-plane' else 'worker',
                  control_planes=[world.nodes[n['name']].address for n in world.cluster_nodes()
                                  if n['role'] == 'control-plane'],
                  encryption_key={'type': 'nodeID'}, state_dir=str(tmp_path), poll_interval=0.05, wait_timeout=60,
                  drain_timeout=30)
    params.update(extra)
    return params


def roll(world, name, tmp_path, check_mode=False, **extra):
    params = node_params(world, name, tmp_path, **extra)
    port = world.talos.port
    kube = k8s(world)

    def maintenance():
        return TalosClient(resolve_auth(endpoints=['%s:%s' % (params['node'], port)], insecure=True),
                           timeout=5, connect_timeout=2, retries=0)

    async def go():
        async with TalosClient(talos_auth(world), timeout=10, connect_timeout=2, retry_delay=0.05) as talos:
            return await NodeRoll(talos, kube, params, maintenance=maintenance, clock=time.monotonic).run(check_mode)
    return asyncio.run(go())
