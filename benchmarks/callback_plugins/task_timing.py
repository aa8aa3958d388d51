# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Task timing for scripts/bench_dr.py: when each task started and ended, written as JSON.

Enabled by the benchmark with ANSIBLE_CALLBACK_PLUGINS=benchmarks/callback_plugins and
ANSIBLE_CALLBACKS_ENABLED=task_timing; the file is named by TAZLAB_TASK_TIMING. Not part of the collection
(benchmarks/ is in galaxy.yml's build_ignore): ansible.posix.profile_tasks is not installed here.
"""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: task_timing
    type: aggregate
    short_description: Start and end of every task, as JSON (benchmark use)
    description: Writes the wall clock start and end of every task to the file named by TAZLAB_TASK_TIMING.
    requirements: [enable in configuration]
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'task_timing'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super(CallbackModule, self).__init__()
        self.process_start = time.time()
        self.tasks = []
        self.current = None

    def _close(self):
        if self.current is not None:
            self.current['end'] = time.time()
            self.current = None

    def _start(self, task, kind):
        self._close()
        self.current = {'name': task.get_name(), 'action': task.action, 'kind': kind, 'start': time.time(),
                        'end': None}
        self.tasks.append(self.current)

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._start(task, 'task')

    def v2_playbook_on_handler_task_start(self, task):
        self._start(task, 'handler')

    def v2_playbook_on_stats(self, stats):
        self._close()
        path = os.environ.get('TAZLAB_TASK_TIMING')
        if not path:
            return
        with open(path, 'w', encoding='utf-8') as fh:
            json.dump({'process_start': self.process_start, 'end': time.time(), 'tasks': self.tasks}, fh)
