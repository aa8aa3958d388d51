# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place for the taint keys, annotation and label names the collection writes or reads.

Everything the collection itself puts on a Node, a Lease or a workload lives under one domain,
``remediation.tazlab.io``. Kubernetes' own names (the out-of-service taint) and other projects' names
(medik8s' exclude label) are here too, so that no module spells a key of its own.

Names an earlier release wrote under ``resilience.tazlab.io`` are still read (``LEGACY_*``): a node tainted
by an older release is cleaned up, and a workload marked critical the old way still counts.
"""

from __future__ import annotations

DOMAIN = 'remediation.tazlab.io'
_LEGACY_DOMAIN = 'resilience.tazlab.io'

# Kubernetes (non-graceful node shutdown, KEP-2268): the taint and the value the docs use.
OUT_OF_SERVICE_TAINT = 'node.kubernetes.io/out-of-service'
OUT_OF_SERVICE_VALUE = 'nodeshutdown'
OUT_OF_SERVICE_EFFECT = 'NoExecute'
# Who applied the out-of-service taint (kept under the name earlier releases wrote, which clusters carry).
OUT_OF_SERVICE_APPLIED_BY = 'node.kubernetes.io/out-of-service-applied-by'
OUT_OF_SERVICE_APPLIED_AT = DOMAIN + '/out-of-service-applied-at'
LEGACY_OUT_OF_SERVICE_APPLIED_AT = _LEGACY_DOMAIN + '/out-of-service-applied-at'

# The remediation claim: a NoSchedule taint, a cordon, annotations on the Node, a Lease per node.
REMEDIATION_TAINT = DOMAIN + '/fencing'
ANNOTATION_ACTOR = DOMAIN + '/actor'
ANNOTATION_CLAIMED_AT = DOMAIN + '/claimed-at'
ANNOTATION_CORDONED = DOMAIN + '/cordoned'
ANNOTATION_RUN = DOMAIN + '/run'

# Labels that keep a node out of remediation: ours and medik8s' (so clusters that use it need not relabel).
EXCLUDE_LABEL = DOMAIN + '/exclude'
MEDIK8S_EXCLUDE_LABEL = 'remediation.medik8s.io/exclude-from-remediation'
DEFAULT_EXCLUDE_LABELS = (EXCLUDE_LABEL, MEDIK8S_EXCLUDE_LABEL)

# A workload the audit treats as critical ("true").
CRITICAL_ANNOTATION = DOMAIN + '/critical'
LEGACY_CRITICAL_ANNOTATION = _LEGACY_DOMAIN + '/critical'
