# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The timeline_lines filter (documented in timeline_lines.yml)."""

from __future__ import annotations

from ansible_collections.tazlab.resilience.plugins.module_utils.report.timeline import timeline_lines


def _timeline_lines(timeline, header=True):
    return timeline_lines(timeline, header=header)


class FilterModule(object):
    def filters(self):
        return {'timeline_lines': _timeline_lines}
