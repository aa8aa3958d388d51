"""timeline_report's module call: errors of the report in the runner's shape, warnings to Ansible."""

from __future__ import annotations

import pytest

from ansible_collections.tazlab.resilience.plugins.module_utils import runner
from ansible_collections.tazlab.resilience.plugins.module_utils.report import run as report_run


class Run(object):
    def __init__(self, params, check_mode=False):
        self.params, self.check_mode, self.warnings = params, check_mode, []

    def warn(self, message):
        self.warnings.append(message)


@pytest.mark.parametrize('raised, kind', [(ValueError('timeline has no entries'), 'invalid'),
                                          (OSError('cannot write /x'), 'io'),
                                          (RuntimeError('renderer died'), 'render')])
def test_report_errors_become_collection_errors(monkeypatch, raised, kind):
    def boom(params, check_mode=False):
        raise raised
    monkeypatch.setattr(report_run, 'run_report', boom)
    with pytest.raises(report_run.ReportError) as info:
        report_run.run_timeline_report(Run({}))
    assert runner.is_collection_error(info.value)
    assert runner.error_dict(info.value) == {'kind': kind, 'message': str(raised)}


def test_warnings_stay_under_warnings_for_the_runner(monkeypatch):
    """The report's warnings keep the collection's one key; the module runner makes each an Ansible warning
    (test_runner.py), so the call does not warn itself."""
    monkeypatch.setattr(report_run, 'run_report', lambda params, check_mode=False: {
        'changed': True, 'warnings': ['no picture: chromium missing'], 'files': ['a.svg'], 'check': check_mode})
    run = Run({}, check_mode=True)
    out = report_run.run_timeline_report(run)
    assert out == {'changed': True, 'warnings': ['no picture: chromium missing'], 'files': ['a.svg'], 'check': True}
    assert run.warnings == []
