# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The timeline_lines filter (documented in timeline_lines.yml)."""

from __future__ import annotations


def _timeline_lines(timeline, header=True):
    # Imported when used: report.timeline imports matplotlib (0.4s), and Ansible loads every filter file of the
    # collection to resolve any one of its filters (timeline_entry runs after every runbook step).
    from ansible_collections.tazlab.resilience.plugins.module_utils.report.timeline import timeline_lines
    return timeline_lines(timeline, header=header)


class FilterModule(object):
    def filters(self):
        return {'timeline_lines': _timeline_lines}
