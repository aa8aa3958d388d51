# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""timeline_report's one call for the module runner."""

from __future__ import annotations

from ansible_collections.tazlab.resilience.plugins.module_utils.report.report import run_report

__all__ = ['ReportError', 'run_timeline_report']


class ReportError(Exception):
    """The timeline could not be read, drawn or written (bad timeline, file error, renderer failure)."""

    def __init__(self, kind, message):
        super(ReportError, self).__init__(message)
        self.kind = kind


def run_timeline_report(run):
    """timeline_report: the module runner's one call (the runner makes the report's ``warnings`` Ansible warnings)."""
    try:
        result = run_report(run.params, check_mode=run.check_mode)
    except ValueError as exc:
        raise ReportError('invalid', str(exc))
    except OSError as exc:
        raise ReportError('io', str(exc))
    except RuntimeError as exc:
        raise ReportError('render', str(exc))
    return result
