# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The timeline_entry filter (documented in timeline_entry.yml)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.tazlab.resilience.plugins.module_utils.report.entries import timeline_entry


def _timeline_entry(result, step, node='', started=None, keys=None, detail=None, failed=False):
    if not step:
        raise AnsibleFilterError('timeline_entry: step must not be empty')
    if keys is not None and not isinstance(keys, (list, tuple)):
        raise AnsibleFilterError('timeline_entry: keys must be a list of result keys')
    try:
        return timeline_entry(result, step, node=node, started=started, keys=keys, detail=detail, failed=failed)
    except (TypeError, ValueError) as exc:
        raise AnsibleFilterError('timeline_entry: {0}'.format(exc))


class FilterModule(object):
    def filters(self):
        return {'timeline_entry': _timeline_entry}
