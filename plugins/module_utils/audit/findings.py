# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The resilience audit's judgement: pure functions over collected facts, no I/O.

``audit(facts, options)`` returns the findings, each a dict::

    {code, severity, object, why, fix, node (or None)}

``facts`` is what ``collect.py`` gathers (every key optional: a part that could not be read is
``None`` and gives an ``info`` finding saying so instead of a silent pass):

* ``kubernetes``: ``nodes``, ``deployments``, ``statefulsets``, ``replicasets``, ``pods``, ``pvcs``,
  ``pdbs``, ``hpas``, ``namespaces`` (names), ``endpoints`` (the ``default/kubernetes`` Endpoints);
* ``longhorn``: ``namespace`` (found or None), ``volumes``, ``settings`` ({name: value});
* ``proxmox``: ``vms`` ([{vmid, name, node, status, hastate, smbios_uuid}]);
* ``clients``: ``kubeconfig_server``, ``talosconfig_endpoints``, ``vip``, ``node_addresses``
  ({address: node} of what clients may name: InternalIPs and Talos endpoints of every node);
* ``talos``: {node: {secretbox, aescbc, volumes: {STATE|EPHEMERAL: {encrypted, source}}, error}}.

Severities, lowest to highest: info, low, medium, high, critical. ``critical`` means a real node
loss (or a drill) cannot be recovered safely or will lose data: the drill refuses to start on it.
"""

from __future__ import annotations

from ansible_collections.tazlab.resilience.plugins.module_utils import names

__all__ = ['SEVERITIES', 'severity_rank', 'audit', 'summarize', 'at_or_above', 'CRITICAL_ANNOTATION',
           'LEGACY_CRITICAL_ANNOTATION', 'is_rwo_claim', 'pod_template_claims']

SEVERITIES = ('info', 'low', 'medium', 'high', 'critical')

CRITICAL_ANNOTATION = names.CRITICAL_ANNOTATION
LEGACY_CRITICAL_ANNOTATION = names.LEGACY_CRITICAL_ANNOTATION

#: What makes a workload "critical" without anyone marking it: ingress controllers and cluster DNS.
CRITICAL_HINTS = ('traefik', 'ingress-nginx', 'ingress-controller', 'haproxy-ingress', 'contour', 'envoy-gateway',
                  'coredns', 'kube-dns')

HARDENING = 'docs: talos-hardening (secretbox on a running cluster; STATE/EPHEMERAL LUKS2, one node at a time)'

LONGHORN_DEFAULTS = {
    'node-down-pod-deletion-policy': 'do-nothing',
    'replica-auto-balance': 'disabled',
    'default-replica-count': '3',
}


def severity_rank(severity):
    try:
        return SEVERITIES.index(severity)
    except ValueError:
        raise ValueError('unknown severity {0!r} (one of {1})'.format(severity, ', '.join(SEVERITIES)))


def at_or_above(findings, severity):
    """The findings whose severity is ``severity`` or higher."""
    rank = severity_rank(severity)
    return [f for f in findings if severity_rank(f['severity']) >= rank]


def _finding(code, severity, obj, why, fix, node=None):
    return {'code': code, 'severity': severity, 'object': obj, 'why': why, 'fix': fix, 'node': node}


def _meta(obj):
    return (obj or {}).get('metadata') or {}


def _ref(kind, obj):
    meta = _meta(obj)
    if meta.get('namespace'):
        return '{0} {1}/{2}'.format(kind, meta['namespace'], meta.get('name'))
    return '{0} {1}'.format(kind, meta.get('name'))


# ------------------------------------------------------------------------------------ workloads
def is_rwo_claim(pvc):
    """A claim only one node can mount at a time (ReadWriteOnce / ReadWriteOncePod, no ReadWriteMany)."""
    modes = set(((pvc or {}).get('spec') or {}).get('accessModes') or [])
    return bool(modes) and not modes & {'ReadWriteMany', 'ReadOnlyMany'}


def pod_template_claims(template):
    """The claim names a pod template mounts."""
    spec = (template or {}).get('spec') or {}
    return [v['persistentVolumeClaim']['claimName'] for v in spec.get('volumes') or []
            if (v.get('persistentVolumeClaim') or {}).get('claimName')]


def _labels_match(selector, labels):
    """A LabelSelector (matchLabels + matchExpressions) against a label dict.

    No selector matches nothing; an empty one matches everything (a policy/v1 PodDisruptionBudget with
    ``selector: {}`` covers every pod of its namespace)."""
    if selector is None:
        return False
    labels = labels or {}
    for key, value in (selector.get('matchLabels') or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get('matchExpressions') or []:
        key, op, values = expr.get('key'), expr.get('operator'), expr.get('values') or []
        if op == 'In' and labels.get(key) not in values:
            return False
        if op == 'NotIn' and labels.get(key) in values:
            return False
        if op == 'Exists' and key not in labels:
            return False
        if op == 'DoesNotExist' and key in labels:
            return False
    return True


def _spread_across_nodes(template):
    """True when the template keeps its replicas on different nodes (anti-affinity or a topology spread
    on the hostname, or any zone key)."""
    spec = (template or {}).get('spec') or {}
    anti = ((spec.get('affinity') or {}).get('podAntiAffinity') or {})
    terms = list(anti.get('requiredDuringSchedulingIgnoredDuringExecution') or [])
    terms += [t.get('podAffinityTerm') or {} for t in anti.get('preferredDuringSchedulingIgnoredDuringExecution') or []]
    if any(t.get('topologyKey') for t in terms):
        return True
    return any(c.get('topologyKey') for c in spec.get('topologySpreadConstraints') or [])


def _critical(obj, kind, marked):
    """'marked' (annotation or option), 'hint' (an ingress controller or DNS by name/labels) or None."""
    meta = _meta(obj)
    ref = '{0}/{1}'.format(meta.get('namespace'), meta.get('name'))
    annotations = meta.get('annotations') or {}
    flagged = any(str(annotations.get(key, '')).lower() == 'true'
                  for key in (CRITICAL_ANNOTATION, LEGACY_CRITICAL_ANNOTATION))
    if flagged or ref in marked \
            or '{0}/{1}'.format(kind, ref) in marked:
        return 'marked'
    words = [meta.get('name') or '', meta.get('namespace') or '']
    words += [str(v) for v in (meta.get('labels') or {}).values()]
    tmpl_labels = ((obj.get('spec') or {}).get('template') or {}).get('metadata', {}).get('labels') or {}
    words += [str(v) for v in tmpl_labels.values()]
    joined = ' '.join(words).lower()
    if any(hint in joined for hint in CRITICAL_HINTS):
        return 'hint'
    return None


def _hpa_max(hpas, kind, namespace, name):
    best = None
    for hpa in hpas or []:
        ref = (hpa.get('spec') or {}).get('scaleTargetRef') or {}
        if _meta(hpa).get('namespace') == namespace and ref.get('kind') == kind and ref.get('name') == name:
            best = max(best or 0, int((hpa.get('spec') or {}).get('maxReplicas') or 0))
    return best


def _owned(obj):
    return bool(_meta(obj).get('ownerReferences'))


def check_workloads(k8s, options):
    out = []
    marked = set(options.get('critical_workloads') or [])
    pvcs = {(_meta(p).get('namespace'), _meta(p).get('name')): p for p in k8s.get('pvcs') or []}
    pdbs = k8s.get('pdbs') or []
    pods = k8s.get('pods') or []
    hpas = k8s.get('hpas') or []
    items = [('Deployment', d) for d in k8s.get('deployments') or []]
    items += [('ReplicaSet', r) for r in k8s.get('replicasets') or [] if not _owned(r)]
    items += [('StatefulSet', s) for s in k8s.get('statefulsets') or []]
    for kind, obj in items:
        meta, spec = _meta(obj), obj.get('spec') or {}
        ns, name = meta.get('namespace'), meta.get('name')
        ref = _ref(kind, obj)
        replicas = spec.get('replicas', 1)
        replicas = 1 if replicas is None else int(replicas)
        hpa_max = _hpa_max(hpas, kind, ns, name)
        template = spec.get('template') or {}
        rwo = [c for c in pod_template_claims(template) if is_rwo_claim(pvcs.get((ns, c)))]
        critical = _critical(obj, kind, marked)
        scaled = max(replicas, hpa_max or 0)
        if kind != 'StatefulSet' and rwo and scaled > 1:
            out.append(_finding(
                'rwo-multi-replica', 'high', ref,
                '{0} replicas{1} share the ReadWriteOnce claim {2}: only one node can attach it, so every replica '
                'on another node stays in ContainerCreating with a Multi-Attach error (the Traefik acme.json '
                'lesson).'.format(scaled, ' (HPA max)' if hpa_max and hpa_max > replicas else '', ', '.join(rwo)),
                'Make the pods stateless: keep certificates in Kubernetes Secrets (cert-manager, or Traefik\'s '
                'certificate store backed by a Secret) and drop the PVC; or, if each replica needs its own disk, '
                'use a StatefulSet with volumeClaimTemplates.'))
        if critical and replicas < 2 and (hpa_max or 0) < 2:
            severity = 'critical' if critical == 'marked' else 'high'
            why = ('a single replica of a critical workload{0}: the node that runs it takes it down, and with '
                   '{1} it stays down until the volume is freed (Multi-Attach after a power loss).').format(
                ' (marked {0})'.format(CRITICAL_ANNOTATION) if critical == 'marked' else
                ' (an ingress controller or cluster DNS)',
                'its ReadWriteOnce claim ' + ', '.join(rwo) if rwo else 'no second copy')
            fix = ('Run at least 2 replicas with pod anti-affinity on kubernetes.io/hostname and a '
                   'PodDisruptionBudget (minAvailable: 1)')
            if rwo:
                fix += ('; first move its state off the RWO volume (certificates into Secrets via cert-manager), '
                        'since a second replica cannot mount it')
            out.append(_finding('critical-single-replica', severity, ref, why, fix + '.'))
        if rwo and kind != 'StatefulSet' and replicas <= 1 and not critical:
            out.append(_finding(
                'rwo-deployment', 'low', ref,
                'a Deployment on the ReadWriteOnce claim {0} cannot scale past one replica and waits for the '
                'volume after a node loss.'.format(', '.join(rwo)),
                'Prefer a StatefulSet (one claim per replica) or stateless pods; keep fencing in place for the '
                'node-loss path.'))
        if scaled >= 2:
            labels = template.get('metadata', {}).get('labels') or {}
            covered = [p for p in pdbs if _meta(p).get('namespace') == ns
                       and _labels_match((p.get('spec') or {}).get('selector'), labels)]
            if not covered:
                out.append(_finding(
                    'no-pdb', 'medium' if critical else 'low', ref,
                    'no PodDisruptionBudget covers its pods: a drain or an upgrade may evict every replica at once.',
                    'Add a PodDisruptionBudget with minAvailable: 1 (or maxUnavailable: 1) selecting its pods.'))
            if not _spread_across_nodes(template):
                placed = sorted(set((p.get('spec') or {}).get('nodeName') for p in pods
                                    if _meta(p).get('namespace') == ns
                                    and _labels_match(spec.get('selector'), _meta(p).get('labels'))
                                    and (p.get('spec') or {}).get('nodeName')))
                one_node = len(placed) == 1
                out.append(_finding(
                    'no-anti-affinity', 'high' if one_node else ('medium' if critical else 'low'), ref,
                    'no pod anti-affinity or topology spread on the hostname: the scheduler may put every replica '
                    'on one node, and one node loss then takes them all down{0}.'.format(
                        ' (all its pods run on {0} now)'.format(placed[0]) if one_node else ''),
                    'Add podAntiAffinity (preferred or required) or a topologySpreadConstraint with '
                    'topologyKey: kubernetes.io/hostname.', node=placed[0] if one_node else None))
    return out


# ------------------------------------------------------------------------------------- Longhorn
def check_longhorn(lh, options):
    if lh is None:
        return [_finding('longhorn-unread', 'info', 'Longhorn', 'Longhorn could not be read.',
                         'Check the credentials can list longhorn.io resources.')]
    if not lh.get('namespace'):
        return [_finding('longhorn-not-found', 'info', 'Longhorn',
                         'no Longhorn namespace was found (looked in {0}): the Longhorn checks did not run.'.format(
                             ', '.join(lh.get('searched') or [])),
                         'Give longhorn_namespace if Longhorn lives elsewhere.')]
    ns = lh['namespace']
    out = [_finding('longhorn-found', 'info', 'namespace ' + ns, 'Longhorn found in namespace {0} ({1} volumes).'.format(
        ns, len(lh.get('volumes') or [])), 'Nothing to do.')]
    minimum = int(options.get('min_replicas') or 3)
    for vol in lh.get('volumes') or []:
        name = _meta(vol).get('name')
        spec, status = vol.get('spec') or {}, vol.get('status') or {}
        pvc = (status.get('kubernetesStatus') or {})
        claim = ' (claim {0}/{1})'.format(pvc.get('namespace'), pvc.get('pvcName')) if pvc.get('pvcName') else ''
        count = spec.get('numberOfReplicas')
        if count is not None and int(count) < minimum:
            out.append(_finding(
                'longhorn-few-replicas', 'medium', 'Longhorn volume {0}{1}'.format(name, claim),
                '{0} replica(s) (fewer than {1}): one more disk or node loss while it rebuilds loses the data.'.format(
                    count, minimum),
                'Set numberOfReplicas to {0} (volume, and the StorageClass for new ones).'.format(minimum)))
        robustness = status.get('robustness')
        if robustness == 'faulted':
            out.append(_finding('longhorn-faulted', 'critical', 'Longhorn volume {0}{1}'.format(name, claim),
                                'the volume is faulted: no healthy replica is left.',
                                'Restore from a backup or salvage a replica before any drill.'))
        elif robustness == 'degraded':
            out.append(_finding('longhorn-degraded', 'critical', 'Longhorn volume {0}{1}'.format(name, claim),
                                'the volume is degraded: losing another node now may lose its last replica.',
                                'Wait until Longhorn has rebuilt the replicas (longhorn_volume_info wait_healthy).'))
    settings = dict(LONGHORN_DEFAULTS)
    present = lh.get('settings') or {}
    settings.update(present)
    policy = settings['node-down-pod-deletion-policy']
    if policy == 'do-nothing':
        out.append(_finding(
            'longhorn-node-down-policy', 'medium', 'Longhorn setting node-down-pod-deletion-policy',
            'value {0}{1}: after a node dies, pods with Longhorn volumes stay Terminating and their replacements '
            'wait for the 6-minute force detach (the seed story: T+8 still blocked).'.format(
                policy, '' if 'node-down-pod-deletion-policy' in present else ' (not set: Longhorn\'s default)'),
            'Keep fencing (dr_recover) as the safe path; delete-both-statefulset-and-deployment-pod shortens '
            'the wait but does no fencing, so only with powered-off nodes.'))
    balance = settings['replica-auto-balance']
    if balance == 'disabled':
        out.append(_finding(
            'longhorn-auto-balance', 'low', 'Longhorn setting replica-auto-balance',
            'value {0}{1}: after a node returns, replicas stay piled on the nodes that rebuilt them.'.format(
                balance, '' if 'replica-auto-balance' in present else ' (not set: Longhorn\'s default)'),
            'Set replica-auto-balance to best-effort (or least-effort).'))
    return out


# -------------------------------------------------------------------------------------- fencing
def _nodes(k8s):
    return k8s.get('nodes') or []


def _role(node):
    labels = _meta(node).get('labels') or {}
    return 'control-plane' if 'node-role.kubernetes.io/control-plane' in labels \
        or 'node-role.kubernetes.io/master' in labels else 'worker'


def _uuid(node):
    return ((((node.get('status') or {}).get('nodeInfo') or {}).get('systemUUID')) or '').lower()


def control_planes(k8s):
    return [n for n in _nodes(k8s) if _role(n) == 'control-plane']


def check_fencing(k8s, px):
    if px is None:
        return [_finding('proxmox-unread', 'info', 'Proxmox', 'Proxmox could not be read: fencing was not checked.',
                         'Give the Proxmox connection (proxmox option).')]
    out = []
    from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox import identity

    vms = px.get('vms') or []
    node_vm = {}
    for node in _nodes(k8s):
        name, uuid = _meta(node).get('name'), _uuid(node)
        found = identity.match_node(vms, uuid, name)
        if found['identity'] == identity.OK:
            node_vm[name] = found['vm']
            continue
        if found['identity'] in (identity.MISSING, identity.NO_UUID):
            why = ('no VM carries its SMBIOS UUID {0}: recovery cannot prove it is powered off, so it refuses to '
                   'free its volumes (the seed story\'s manual cleanup stays the only way).'.format(uuid or '(none)'))
            fix = 'Set smbios1 uuid={0} on its VM (qm set VMID --smbios1 uuid=...), or check the VM is in this PVE ' \
                  'cluster.'.format(uuid or '<systemUUID>')
        elif found['identity'] == identity.DUPLICATE:
            why = 'several VMs carry its SMBIOS UUID {0} ({1}): proving the right one is off is impossible.'.format(
                uuid, ', '.join('{0} {1}'.format(v.get('vmid'), v.get('name')) for v in found['matches']))
            fix = 'Give each VM its own smbios1 uuid (clones get a new one; a hand-copied config does not).'
        else:
            why = found['reason'] + '.'
            fix = 'Bring the PVE host back (or fix the token\'s VM.Audit on the VM) so the VM config can be read.'
        out.append(_finding('unfenceable-node', 'critical', 'Node ' + name, why, fix, node=name))
    cps = [_meta(n).get('name') for n in control_planes(k8s)]
    hosts = {}
    for cp in cps:
        vm = node_vm.get(cp)
        if vm:
            hosts.setdefault(vm.get('node'), []).append(cp)
            if vm.get('hastate') in (None, '', 'ignored'):
                out.append(_finding(
                    'control-plane-not-ha', 'medium', 'VM {0} ({1})'.format(vm.get('vmid'), cp),
                    'the control-plane VM is not HA-managed in Proxmox: if its PVE host dies it stays down until a '
                    'human starts it elsewhere.',
                    'ha-manager add vm:{0} --state started (or POST /cluster/ha/resources).'.format(vm.get('vmid')),
                    node=cp))
    crowded = {h: names for h, names in hosts.items() if len(names) > 1}
    if crowded:
        quorum_at_risk = any(len(names) >= (len(cps) // 2 + 1) for names in crowded.values())
        out.append(_finding(
            'control-planes-same-host', 'high' if quorum_at_risk else 'medium',
            'control planes on PVE host(s) {0}'.format(', '.join(sorted(crowded))),
            'control planes share a PVE host ({0}): one host failure takes down several etcd members{1}.'.format(
                '; '.join('{0}: {1}'.format(h, ', '.join(sorted(n))) for h, n in sorted(crowded.items())),
                ', and etcd loses quorum' if quorum_at_risk else ''),
            'Spread the control-plane VMs over distinct PVE hosts (HA rules / node affinity).'))
    if cps and len(cps) % 2 == 0:
        out.append(_finding(
            'even-control-planes', 'medium', '{0} control planes'.format(len(cps)),
            'an even number of etcd members tolerates no more failures than one fewer ({0} tolerate {1}).'.format(
                len(cps), (len(cps) - 1) // 2),
            'Run an odd number of control planes (3 or 5).'))
    elif len(cps) == 1:
        out.append(_finding('single-control-plane', 'high', '1 control plane',
                            'a single control plane: its loss stops the API and etcd.',
                            'Run 3 control planes.'))
    return out


# -------------------------------------------------------------------------------------- clients
def _host_of(url):
    text = str(url or '')
    if '://' in text:
        text = text.split('://', 1)[1]
    text = text.split('/', 1)[0]
    if text.startswith('['):
        return text[1:].split(']', 1)[0]
    return text.rsplit(':', 1)[0] if text.count(':') == 1 else text


def check_clients(k8s, clients):
    out = []
    clients = clients or {}
    addresses = clients.get('node_addresses') or {}
    vip = clients.get('vip')
    server = clients.get('kubeconfig_server')
    if server:
        host = _host_of(server)
        if host in addresses:
            out.append(_finding(
                'kubeconfig-one-node', 'high', 'kubeconfig server ' + server,
                'the kubeconfig talks to one node ({0}): when it dies (or changes IP, as in the seed story) every '
                'client and runbook loses the API.'.format(addresses[host]),
                'Point the kubeconfig at the control-plane VIP{0} (Talos machine.network...vip).'.format(
                    ' ' + vip if vip else '')))
        elif vip and host != vip:
            out.append(_finding(
                'kubeconfig-not-vip', 'low', 'kubeconfig server ' + server,
                'the kubeconfig does not use the VIP {0}.'.format(vip), 'Use https://{0}:6443.'.format(vip)))
    for endpoint in clients.get('talosconfig_endpoints') or []:
        if vip and _host_of(endpoint) == vip:
            out.append(_finding(
                'talosconfig-vip', 'medium', 'talosconfig endpoint ' + endpoint,
                'the Talos API endpoint is the VIP: the VIP lives only while etcd and the apiserver are healthy, so '
                'talosctl loses the cluster exactly when it is needed to repair it.',
                'List the control-plane node addresses as talosconfig endpoints (not the VIP).'))
    endpoints = k8s.get('endpoints')
    cps = control_planes(k8s)
    if endpoints is not None and cps:
        want = set()
        for node in cps:
            for addr in (node.get('status') or {}).get('addresses') or []:
                if addr.get('type') == 'InternalIP':
                    want.add(addr.get('address'))
        have = set()
        for subset in endpoints.get('subsets') or []:
            for addr in (subset.get('addresses') or []) + (subset.get('notReadyAddresses') or []):
                have.add(addr.get('ip'))
        if have != want:
            out.append(_finding(
                'kubernetes-endpoints-mismatch', 'high', 'Endpoints default/kubernetes',
                'the kubernetes Service endpoints {0} are not the control planes\' addresses {1}: in-cluster '
                'clients (CoreDNS, kube-proxy, Longhorn) reach a stale address (the seed story\'s Phase 2).'.format(
                    sorted(have), sorted(want)),
                'Run k8s_endpoint_fix (or playbooks/ip_migrate.yml after an IP change).'))
    return out


# ---------------------------------------------------------------------------------------- Talos
def check_talos(talos, k8s):
    if talos is None:
        return [_finding('talos-unread', 'info', 'Talos', 'Talos was not queried: encryption was not checked.',
                         'Give the Talos connection (talos option).')]
    out = []
    cps = set(_meta(n).get('name') for n in control_planes(k8s))
    for node in sorted(talos):
        info = talos[node] or {}
        if info.get('error'):
            out.append(_finding('talos-unreachable', 'info', 'Node ' + node,
                                'its Talos API did not answer: {0}'.format(info['error']),
                                'Check the node and the talosconfig.', node=node))
            continue
        if node in cps and not info.get('secretbox'):
            out.append(_finding(
                'secretbox-off', 'medium', 'Node ' + node,
                'no cluster.secretboxEncryptionSecret: Secrets are stored in etcd {0}.'.format(
                    'with aescbc only' if info.get('aescbc') else 'in plaintext'),
                'Enable secretbox on every control plane back to back, then rewrite every Secret ({0}).'.format(
                    HARDENING), node=node))
        plain = [v for v in ('STATE', 'EPHEMERAL') if (info.get('volumes') or {}).get(v) is not None
                 and not info['volumes'][v].get('encrypted')]
        if plain:
            sources = sorted(set(info['volumes'][v].get('source') or '?' for v in plain))
            what = {'STATE': 'the machine config and node secrets',
                    'EPHEMERAL': 'etcd data, kubelet state and Longhorn replicas'}
            out.append(_finding(
                'disk-encryption-off', 'medium', 'Node {0} volume(s) {1}'.format(node, ', '.join(plain)),
                '{0} not encrypted (read from {1}): {2} can be read from a copied disk.'.format(
                    ' and '.join(plain), ', '.join(sources), '; '.join(what[v] for v in plain)),
                'Add a LUKS2 VolumeConfig for {0}, apply STAGED and wipe on reboot, one node at a time '
                '({1}).'.format(' and '.join(plain), HARDENING), node=node))
    return out


# ------------------------------------------------------------------------------------------ all
def audit(facts, options=None):
    """Every finding, sorted by severity (highest first), then object."""
    options = options or {}
    k8s = facts.get('kubernetes') or {}
    findings = []
    findings += check_workloads(k8s, options)
    findings += check_longhorn(facts.get('longhorn'), options)
    findings += check_fencing(k8s, facts.get('proxmox'))
    findings += check_clients(k8s, facts.get('clients'))
    findings += check_talos(facts.get('talos'), k8s)
    findings.sort(key=lambda f: (-severity_rank(f['severity']), f['code'], f['object']))
    return findings


def summarize(findings):
    counts = dict((s, 0) for s in SEVERITIES)
    for f in findings:
        counts[f['severity']] += 1
    worst = None
    for s in SEVERITIES:
        if counts[s]:
            worst = s
    return {'counts': counts, 'max_severity': worst}
