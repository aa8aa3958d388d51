# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""timeline_write: write a runbook's timeline JSON on the controller, in the controller process (no module run)."""

from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase

from ansible_collections.tazlab.resilience.plugins.module_utils.report.entries import (
    timeline_document, write_timeline,
)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(('path', 'timeline', 'actor', 'finished', 'extra', 'mode'))
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        args = self._task.args
        path = args.get('path')
        if not path:
            raise AnsibleActionFail('path is required')
        timeline = args.get('timeline')
        if timeline is None:
            timeline = []
        if not isinstance(timeline, list):
            raise AnsibleActionFail('timeline must be a list of entries')
        extra = args.get('extra') or {}
        if not isinstance(extra, dict):
            raise AnsibleActionFail('extra must be a dict')
        mode = args.get('mode', '0644')
        try:
            mode = int(str(mode), 8)
        except ValueError:
            raise AnsibleActionFail('mode must be octal, like 0644')
        # A report of the run, written in check mode too (the same as before: check_mode false on the write).
        check_mode = (task_vars or {}).get('ansible_check_mode', self._play_context.check_mode)
        document = timeline_document(timeline, actor=args.get('actor'), check_mode=check_mode,
                                     finished=boolean(args.get('finished', False), strict=False), extra=extra)
        try:
            written = write_timeline(path, document, mode=mode)
        except (OSError, TypeError, ValueError) as exc:
            raise AnsibleActionFail('cannot write the timeline to {0}: {1}'.format(path, exc))
        result.update(changed=False, path=written, entries=len(timeline))
        return result
