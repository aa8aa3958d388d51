# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Release the storage of a node that is confirmed powered off (issue 6): the logic of ``csi_force_detach``.

THE ONE RULE: never detach storage from, taint out-of-service, or force-delete the pods of a node that
is not confirmed powered off (see :mod:`.plan` for what "confirmed" means).

Layers, one module each:

* :mod:`.plan` - ``plan_force_detach(observed, params)``, a pure function from an observed snapshot to a plan
  (refusals, fence verdict, taint, pods, VolumeAttachments of any CSI driver, Longhorn tickets, volumes and
  workloads to verify, ordered actions), and the rules it applies (``check_fence``, ``proof_predates_lease``,
  ``stale_ready_threshold``).
* :mod:`.observe` - ``Observer``: the snapshot read through a K8sClient.
* :mod:`.verify` - ``Verifier``: recovery per volume and per workload, with times.
* :mod:`.execute` - ``ForceDetach``: observe, plan and carry the plan out, each destructive write guarded.
* :mod:`.module` - ``run_force_detach``, csi_force_detach's one call for the module runner.

Every name the former ``k8s/force_detach.py`` module had is importable from here.
"""

from __future__ import annotations

from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.force_detach.execute import ForceDetach
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.force_detach.observe import Observer
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.force_detach.plan import (
    APPLIED_AT, APPLIED_BY, DEFAULT_ACTOR, DEFAULT_LEASE_DURATION, DEFAULT_LONGHORN_NAMESPACE, LEGACY_APPLIED_AT,
    LONGHORN_DRIVER, OOS_TAINT_EFFECT, OOS_TAINT_KEY, OOS_TAINT_VALUE, RENEW_FRACTION, RENEW_IN_FLIGHT, RENEW_JITTER,
    STALE_READY_AFTER, STRATEGIES, check_fence, cleanup_remaining, direct_actions, oos_taint, plan_force_detach,
    plan_like, proof_predates_lease, public_plan, stale_ready_threshold,
)
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.force_detach.verify import (
    VerificationFailed, Verifier,
)

__all__ = ['OOS_TAINT_KEY', 'OOS_TAINT_VALUE', 'OOS_TAINT_EFFECT', 'APPLIED_BY', 'APPLIED_AT', 'LEGACY_APPLIED_AT',
           'DEFAULT_ACTOR', 'DEFAULT_LONGHORN_NAMESPACE', 'LONGHORN_DRIVER', 'STRATEGIES', 'STALE_READY_AFTER',
           'RENEW_FRACTION', 'RENEW_JITTER', 'RENEW_IN_FLIGHT', 'DEFAULT_LEASE_DURATION', 'check_fence',
           'plan_force_detach', 'cleanup_remaining', 'direct_actions', 'plan_like', 'public_plan', 'oos_taint',
           'proof_predates_lease', 'stale_ready_threshold', 'Observer', 'Verifier', 'VerificationFailed',
           'ForceDetach']
