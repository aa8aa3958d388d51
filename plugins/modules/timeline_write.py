#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: timeline_write
short_description: Write a runbook's timeline as JSON on the controller
version_added: 0.1.0
description:
  - Writes the timeline a runbook keeps (a list of entries, see the C(tazlab.resilience.timeline_entry) filter)
    as indented JSON - C(actor), C(check_mode), C(finished), C(timeline) - to O(path) on the controller.
  - The write is atomic (a temporary file renamed over the old one) and makes the folder, so a run that is
    killed between steps leaves the timeline of the steps done so far, never half a file.
  - This module is implemented as an action plugin and runs on the controller, in the controller process -
    no module is sent anywhere, so writing after every step costs milliseconds, not a module run.
  - Written in check mode too (a report of the run, not a change); C(check_mode) in the file says which.
author:
  - TazLab resilience engineers (@tazlab)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
attributes:
  action:
    support: full
  async:
    support: none
  bypass_host_loop:
    support: none
  platform:
    platforms: all
  check_mode:
    support: full
    details: The file is written in check mode too; it records C(check_mode=true).
  diff_mode:
    support: none
options:
  path:
    description: The JSON file to write (on the controller).
    type: path
    required: true
  timeline:
    description: The entries.
    type: list
    elements: dict
    default: []
  actor:
    description: Who ran the runbook (the lease holder identity), recorded as C(actor).
    type: str
  finished:
    description: Whether the run has finished (the last write of a run says true).
    type: bool
    default: false
  extra:
    description: More top-level keys for the document.
    type: dict
    default: {}
  mode:
    description: The file's permissions, octal.
    type: str
    default: "0644"
"""

EXAMPLES = r"""
- name: Write the timeline so far
  tazlab.resilience.timeline_write:
    path: "{{ disaster_recovery_timeline_dir }}/dr-timeline.json"
    actor: "{{ disaster_recovery_actor }}"
    timeline: "{{ disaster_recovery_timeline }}"
"""

RETURN = r"""
path:
  description: The file written.
  returned: success
  type: str
  sample: /runner/artifacts/dr-timeline.json
entries:
  description: Number of entries written.
  returned: success
  type: int
"""
