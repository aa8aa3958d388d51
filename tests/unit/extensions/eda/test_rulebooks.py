"""The rulebooks against ansible-rulebook's own schema, and the AWX rulebook against the job template it launches
(playbooks/vars/awx_configuration.yml): AWX keeps only survey answers, so every launch variable must be a survey
variable of the survey's type and length."""

from __future__ import annotations

import os

import pytest
import yaml
from ansible_rulebook.util import substitute_variables
from ansible_rulebook.validators import Validate

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
RULEBOOKS = os.path.join(ROOT, "extensions", "eda", "rulebooks")
SURVEY_TYPES = {"text": str, "textarea": str, "password": str, "multiplechoice": str, "multiselect": str,
                "integer": int, "float": (int, float)}


def load(name):
    with open(os.path.join(RULEBOOKS, name), encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def rule(rulebook, startswith):
    return next(r for r in rulebook[0]["rules"] if r["name"].startswith(startswith))


@pytest.mark.parametrize("name", sorted(os.listdir(RULEBOOKS)))
def test_every_rulebook_is_valid_for_ansible_rulebook(name):
    Validate.rulebook(load(name))


class VarsLoader(yaml.SafeLoader):  # pylint: disable=too-many-ancestors
    """Ansible's vars files mark templates !unsafe: read them as the plain strings they are."""


VarsLoader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))


def survey(template):
    with open(os.path.join(ROOT, "playbooks", "vars", "awx_configuration.yml"), encoding="utf-8") as fh:
        config = yaml.load(fh, Loader=VarsLoader)  # noqa: S506 - a SafeLoader with one more tag
    jt = next(t for t in config["controller_templates"] if t["name"] == template)
    return jt, dict((q["variable"], q) for q in jt["survey_spec"]["spec"])


@pytest.mark.parametrize("event", [
    {"type": "node_unhealthy", "node": "worker-new-03", "nodes": ["worker-new-03"], "not_ready_seconds": 51.7},
    {"type": "node_unhealthy", "node": "worker-new-02", "nodes": ["worker-new-02", "worker-new-03"]},
    {"type": "node_unhealthy", "node": "worker-new-03"},   # an event without the storm list
])
@pytest.mark.parametrize("given", [{}, {"unhealthy_seconds": "90", "max_unhealthy": "1"}])
def test_the_awx_rulebook_passes_only_what_the_job_template_survey_accepts(event, given):
    action = rule(load("auto_recover_awx.yml"), "Launch")["action"]["run_job_template"]
    jt, questions = survey(action["name"].split("'")[1])
    assert jt["ask_variables_on_launch"] is False and jt["survey_enabled"] is True
    # the event itself would be dropped (ansible_eda is no survey variable): not sent
    assert action["include_events"] is False
    extra = substitute_variables(action["job_args"]["extra_vars"], dict(given, event=event))
    for var, value in extra.items():
        assert var in questions, "{0} is no survey variable: AWX would drop it".format(var)
        q = questions[var]
        assert isinstance(value, SURVEY_TYPES[q["type"]]), (var, value, q["type"])
        if isinstance(value, str):
            assert q.get("min", 0) <= len(value) <= q.get("max", 1024), (var, value)
        else:
            assert q.get("min", value) <= value <= q.get("max", value), (var, value)
    wanted = event.get("nodes") or [event["node"]]
    # the job template turns the text back into the role's list
    assert [n.strip() for n in extra["tazlab_nodes"].split(",")] == wanted
    # the source already waited its window: the runbook waits no longer than Kubernetes has shown it not Ready
    assert extra["disaster_recovery_unhealthy_seconds"] == int(event.get("not_ready_seconds", 0))


def test_the_local_rulebook_runs_every_node_of_a_storm_in_one_run():
    action = rule(load("auto_recover.yml"), "Run dr_recover")["action"]["run_playbook"]
    extra = substitute_variables(action["extra_vars"], {"event": {"node": "a", "nodes": ["a", "b"]}})
    assert extra["disaster_recovery_nodes"] == ["a", "b"]
    assert extra["disaster_recovery_unhealthy_seconds"] == 0
    extra = substitute_variables(action["extra_vars"], {"event": {"node": "a", "not_ready_seconds": 12.9}})
    assert extra["disaster_recovery_nodes"] == ["a"] and extra["disaster_recovery_unhealthy_seconds"] == 12
    assert action["post_events"] is True
