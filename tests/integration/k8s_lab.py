"""Helpers for the Kubernetes modules' integration tests against the lab world (KubeTwin + fakepve).

The modules run for real: their main() in-process (AnsibleModule with patched arguments, the real
kubernetes client over HTTPS to the twin, TLS verified with the twin's CA from its kubeconfig), or
packaged by Ansible (`ansible localhost -m`). The world's clock runs in real time at TIME_SCALE real
seconds per simulated second, so module wait bounds and poll intervals are given in real seconds.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

from module_harness import run_main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ANSIBLE = os.path.join(os.path.dirname(sys.executable), 'ansible')
RESULT = re.compile(r'^localhost \| (CHANGED|SUCCESS|FAILED!) => (\{.*\})\s*$', re.S | re.M)

#: Real seconds per simulated second while a module runs.
TIME_SCALE = 0.05
WRITE_VERBS = ('create', 'update', 'patch', 'delete', 'deletecollection')
#: The seed workload: traefik's one pod, with a Longhorn volume.
TRAEFIK = 'app.kubernetes.io/name=traefik'


def sim(real_seconds):
    return real_seconds / TIME_SCALE


def real(sim_seconds):
    return sim_seconds * TIME_SCALE


def run_module(module, args, check_mode=False, diff=False):
    """Run a module's main() in-process; returns (failed, result)."""
    code, result = run_main(module, args, check_mode=check_mode, diff=diff)
    assert (code != 0) == bool(result.get('failed')), result
    return bool(result.get('failed')), result


def adhoc(tmp_path, module, args, options=(), env=None, clear='K8S_AUTH_', timeout=300):
    """`ansible localhost -m tazlab.resilience.<module>` with `options` (--check, --diff), in the environment without
    the variables starting with `clear`, plus `env`: (exit code, status word, result, stdout)."""
    cfg = tmp_path / 'ansible.cfg'
    cfg.write_text('[defaults]\ncallback_result_format = json\nnocolor = true\n')
    environ = dict(os.environ, ANSIBLE_CONFIG=str(cfg), ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, 'collections'),
                   ANSIBLE_NOCOLOR='1', ANSIBLE_DEPRECATION_WARNINGS='0')
    for var in list(environ):
        if var.startswith(clear):
            del environ[var]
    environ.update(env or {})
    cmd = [ANSIBLE, 'localhost', '-i', 'localhost,', '-c', 'local', '-e',
           'ansible_python_interpreter={0}'.format(sys.executable), '-m', 'tazlab.resilience.' + module,
           '-a', json.dumps(args)] + list(options)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=str(tmp_path), env=environ,
                          check=False)
    found = RESULT.search(proc.stdout)
    assert found, proc.stdout + proc.stderr
    return proc.returncode, found.group(1), json.loads(found.group(2)), proc.stdout


def ansible_adhoc(tmp_path, module, args, check=False, diff=False):
    """`ansible localhost -m tazlab.resilience.<module>`: (exit code, status word, result)."""
    return adhoc(tmp_path, module, args, options=(['--check'] if check else []) + (['--diff'] if diff else []))[:3]


class Lab(object):
    """Convenience around the lab_world handle (a WorldThread)."""

    def __init__(self, handle):
        self.handle = handle
        self.world = handle.world
        self.kube = handle.world.kube
        self.store = self.kube.store

    # -- reading the twin on its own loop -----------------------------------------------------------
    def on_loop(self, fn, *args, **kw):
        async def call():
            return fn(*args, **kw)
        return self.handle.call(call())

    def get(self, res, namespace, name):
        def read():
            try:
                return self.store.get(res, namespace, name)
            except Exception as exc:  # NotFound
                if getattr(exc, 'code', None) == 404:
                    return None
                raise
        return self.on_loop(read)

    def list(self, res, namespace=None, **kw):
        return self.on_loop(self.store.list, res, namespace, **kw)

    def now(self):
        return self.world.clock.now()

    def requests(self):
        return self.on_loop(lambda: dict(self.store.requests))

    def writes_since(self, before):
        after = self.requests()
        return dict((k, v - before.get(k, 0)) for k, v in after.items()
                    if k[0] in WRITE_VERBS and v != before.get(k, 0))

    def wait(self, predicate, sim_timeout, what='condition'):
        deadline = time.monotonic() + real(sim_timeout) + 5
        while time.monotonic() < deadline:
            if predicate():
                return self.now()
            time.sleep(0.02)
        raise AssertionError('{0} not reached within {1} simulated seconds'.format(what, sim_timeout))

    # -- connection settings ------------------------------------------------------------------------
    def k8s_auth(self):
        return {'kubeconfig': self.world.paths()['kubeconfig']}

    def proxmox_auth(self):
        px = self.world.proxmox
        return {'api_host': px.host, 'api_port': px.port, 'api_user': px.user, 'api_token_id': px.token_name,
                'api_token_secret': px.token_secret, 'validate_certs': True, 'ca_path': px.cafile, 'api_timeout': 10}

    # -- module runs ------------------------------------------------------------------------------------
    def fence(self, node, **kw):
        """proxmox_fence by Kubernetes node name (the VM matched by the node's systemUUID before any write), run
        in-process: (failed, result)."""
        from ansible_collections.tazlab.resilience.plugins.modules import proxmox_fence
        args = dict(self.proxmox_auth(), k8s_node=node, k8s_auth=self.k8s_auth(), poll_interval=0.05)
        args.update(kw)
        return run_module(proxmox_fence, args)

    def force_detach_args(self, node, proof, **kw):
        """csi_force_detach's arguments to free `node`'s volumes with the fence `proof` (waits in real seconds)."""
        args = dict(self.k8s_auth(), node=node, fence=proof, proxmox_auth=self.proxmox_auth(), poll_interval=0.05,
                    wait_timeout=real(240), stall_timeout=real(60), finalizer_timeout=real(60))
        args.update(kw)
        return args

    # -- cluster facts ----------------------------------------------------------------------------------
    def node_ready(self, name):
        node = self.get('nodes', None, name)
        for cond in node['status'].get('conditions') or []:
            if cond['type'] == 'Ready':
                return cond['status']
        return 'Unknown'

    def pods(self, namespace, label_selector=None):
        return self.list('pods', namespace, label_selector=label_selector)

    def running_pods(self, namespace, label_selector=None):
        return [p for p in self.pods(namespace, label_selector) if is_running(p)]

    def traefik_node(self):
        """The node traefik's one running pod is on."""
        pods = self.running_pods('traefik', TRAEFIK)
        assert len(pods) == 1
        return pods[0]['spec']['nodeName']

    def taints(self, node):
        """The keys of the node's taints."""
        return [t['key'] for t in self.get('nodes', None, node)['spec'].get('taints') or []]


def is_running(pod):
    if not pod or pod['metadata'].get('deletionTimestamp') or pod['status'].get('phase') != 'Running':
        return False
    return any(c['type'] == 'Ready' and c['status'] == 'True' for c in pod['status'].get('conditions') or [])


def ready_since(pod):
    """Simulated epoch seconds of the pod's Ready transition (the twin stamps it with its clock)."""
    from tazlab_lab.k8s.controllers.util import parse_ts
    for cond in pod['status'].get('conditions') or []:
        if cond['type'] == 'Ready' and cond['status'] == 'True':
            return parse_ts(cond['lastTransitionTime'])
    return None
