#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: timeline_report
short_description: The report of a recovery a person reads - lines in words and an SVG/PNG timeline picture
version_added: 0.1.0
description:
  - Turns a recovery timeline (what the P(tazlab.resilience.disaster_recovery#role) role writes to
    C(dr-timeline.json), the drill and the benchmarks too) into one line per step (wall time, cluster time,
    node, changed, what it did in words) and a timeline picture of the recovery (fault, NotReady, detect,
    claim, fence, detach, attach, Running) as SVG and PNG files that open in a browser.
  - The input shape is documented in C(plugins/module_utils/report/timeline.py).
  - Only writes report files on the controller; it never talks to the cluster.
author:
  - TazLab resilience engineers (@tazlab)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  platform:
    platforms: all
  check_mode:
    support: full
    details: In check mode the lines and the picture's data are returned and no file is written.
  diff_mode:
    support: none
options:
  timeline:
    description:
      - The timeline, as a list of entries or the whole document (a dict with a C(timeline) list).
      - One of O(timeline) or O(src) is required.
    type: raw
  src:
    description:
      - A timeline JSON file to read instead of O(timeline).
    type: path
  dest:
    description:
      - Where to write the picture, without extension (C(.svg) and C(.png) are added per O(formats)).
      - Default the path of O(src) without its C(.json); without O(src) no picture is written.
    type: path
  formats:
    description: The picture formats to write.
    type: list
    elements: str
    choices: [ svg, png ]
    default: [ svg, png ]
  plan:
    description:
      - The result of M(tazlab.resilience.remediation_plan) for the same run; its C(remediate) entries'
        C(ready_since) place NotReady on the picture.
    type: dict
  faults:
    description:
      - When each node failed, on the cluster clock (RFC 3339), if known (for example by a drill that caused it).
    type: dict
  title:
    description: Title of the picture.
    type: str
    default: Recovery timeline
  picture_required:
    description:
      - Fail when the picture cannot be drawn (matplotlib missing). By default the lines are still returned,
        with a warning.
    type: bool
    default: false
requirements:
  - matplotlib >= 3.8.0 (Python, for the picture only)
"""

EXAMPLES = r"""
- name: Report of the last recovery
  tazlab.resilience.timeline_report:
    src: /var/log/tazlab/dr-timeline.json
  register: report

- name: Print it
  ansible.builtin.debug:
    msg: "{{ report.lines }}"

- name: The lines alone, with the filter
  ansible.builtin.debug:
    msg: "{{ (lookup('ansible.builtin.file', '/var/log/tazlab/dr-timeline.json') | from_json) | tazlab.resilience.timeline_lines }}"
"""

RETURN = r"""
lines:
  description: One line per step, with a header line first.
  returned: always
  type: list
  elements: str
  sample:
    - "  +6.3 s          -  worker-new-03  changed  fence           fenced VM 106 on pve3: hard stop, confirmed stopped after 2.4 s"
files:
  description: The picture files written (none in check mode or without O(dest)).
  returned: always
  type: list
  elements: str
picture:
  description: The picture's data (lanes of events per node), as documented in C(plugins/module_utils/report/timeline.py).
  returned: always
  type: dict
warnings:
  description:
    - What the report warns of (for example no picture without matplotlib), each also shown as an Ansible warning.
      The collection's one key for warnings, kept by C(register).
  returned: when there is one
  type: list
  elements: str
"""

from ansible_collections.tazlab.resilience.plugins.module_utils.report.run import run_timeline_report
from ansible_collections.tazlab.resilience.plugins.module_utils.runner import run_module


def main():
    run_module(dict(
        timeline=dict(type='raw'),
        src=dict(type='path'),
        dest=dict(type='path'),
        formats=dict(type='list', elements='str', choices=['svg', 'png'], default=['svg', 'png']),
        plan=dict(type='dict'),
        faults=dict(type='dict'),
        title=dict(type='str', default='Recovery timeline'),
        picture_required=dict(type='bool', default=False),
    ), run_timeline_report, required_one_of=[('timeline', 'src')], mutually_exclusive=[('timeline', 'src')])


if __name__ == '__main__':
    main()
