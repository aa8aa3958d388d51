# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: run_identity
short_description: The identity of this playbook run, for remediation leases
version_added: 0.1.0
description:
  - Returns who this run is, so a remediation lease can tell two concurrent runs of the same actor apart
    (O(tazlab.resilience.k8s_remediation#module:run_id)).
  - Under AWX or AAP the identity is C(awx-job-<id>), from O(job_id) (give it the C(awx_job_id) or
    C(tower_job_id) extra var) or the C(JOB_ID) environment variable AWX sets for the job.
  - Otherwise it is C(<host>/<pid>/<start>) - the controller's host name, the pid of the
    C(ansible-playbook) process and its start time (epoch seconds); on the same host a run whose process
    has ended is then known to be gone.
  - Runs on the controller.
author:
  - TazLab resilience engineers (@tazlab)
options:
  job_id:
    description: The AWX job id, when known from the extra vars; empty means read C(JOB_ID) from the environment.
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: Who is this run
  ansible.builtin.set_fact:
    run: "{{ lookup('tazlab.resilience.run_identity', job_id=awx_job_id | default(tower_job_id) | default('')) }}"

- name: Claim the node for this run
  tazlab.resilience.k8s_remediation:
    node: worker-new-03
    actor: tazlab-dr_recover
    run_id: "{{ run.id }}"
"""

RETURN = r"""
_raw:
  description: One dict.
  type: list
  elements: dict
  contains:
    id:
      description: The run identity as recorded on a lease.
      type: str
      sample: ctl-01/48213/1796643382.55
    host:
      description: The controller's host name.
      type: str
    pid:
      description: The pid of the ansible-playbook process.
      type: int
    started:
      description: Its start time (epoch seconds), null when it cannot be read.
      type: float
    awx_job_id:
      description: The AWX job id, null outside AWX.
      type: str
"""

from ansible.plugins.lookup import LookupBase

from ansible_collections.tazlab.resilience.plugins.module_utils.remediation.run import controller_pid, run_identity


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        return [run_identity(job_id=self.get_option('job_id'), pid=controller_pid())]
