"""What AWX does when a job template is launched, done here without AWX, so its job templates can be run for real.

Read from ansible/awx 24.6.1 (../shared/reference/awx-eda.md):

- surveys: the spec checks of ``JobTemplateSurveySpec._validate_spec_data`` and the answer checks of
  ``SurveyJobTemplateMixin._survey_element_validation`` (same messages), defaults applied as
  ``_update_unified_job_kwargs`` does, launch variables outside the survey dropped (``ignored_fields``)
  unless the template asks for variables;
- credential types: the checks of ``CredentialTypeInputField`` / ``CredentialTypeInjectorField`` (kind,
  field ids and keys, env names, templates rendered with ``StrictUndefined`` against example values), and
  ``CredentialType.inject_credential`` at launch: Jinja in an ``ImmutableSandboxedEnvironment``, files in
  ``<private_data_dir>/env/tmpXXXX`` (0600) named by ``tower.filename[.<name>]`` with their path inside the
  execution environment, env values rendered twice (``**********`` for secret fields in the stored
  ``job_env``), extra_vars in another env file (0400) passed as ``-e @file``; one credential per type;
- the private data dir: ``env/extravars`` (survey answers tagged ``!unsafe``: only top-level values the
  template itself defines may carry Jinja), ``inventory/hosts`` (an executable script printing the inventory
  JSON with ``_meta.hostvars``), ``project/``; no ``env/envvars`` (``AWX_RUNNER_OMIT_ENV_FILES``: the
  variables travel in the stream);
- the run: ``ansible_runner.run(streamer='transmit')`` piped into ``ansible-runner worker
  --private-data-dir=<dir>`` (the execution environment's side, here a subprocess with a clean environment
  and only the installed collection on its collections path) and its output into ``streamer='process'``;
  the job's ``artifacts`` are the ``artifact_data`` of the ``playbook_on_stats`` event (set_stats).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile

import ansible_runner
import yaml
from jinja2 import StrictUndefined, sandbox
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError

HIDDEN_PASSWORD = '**********'
SURVEY_TYPE_MAPPING = {'text': str, 'textarea': str, 'password': str, 'multiplechoice': str, 'multiselect': str,
                       'integer': int, 'float': (float, int)}
# awx/main/constants.py ENV_BLOCKLIST
ENV_BLOCKLIST = frozenset((
    'VIRTUAL_ENV', 'PATH', 'PYTHONPATH', 'JOB_ID', 'INVENTORY_ID', 'INVENTORY_SOURCE_ID', 'INVENTORY_UPDATE_ID',
    'AD_HOC_COMMAND_ID', 'REST_API_URL', 'REST_API_TOKEN', 'MAX_EVENT_RES', 'CALLBACK_QUEUE', 'CALLBACK_CONNECTION',
    'CACHE', 'JOB_CALLBACK_DEBUG', 'INVENTORY_HOSTVARS', 'AWX_HOST', 'PROJECT_REVISION', 'SUPERVISOR_CONFIG_PATH',
))
FIELD_KEYS = {'id', 'label', 'type', 'help_text', 'secret', 'multiline', 'format', 'choices', 'default',
              'ask_at_runtime'}
# The container path AWX gives the private data dir inside the execution environment.
CONTAINER_ROOT = '/runner'


class LaunchRefused(Exception):
    """AWX answers the launch with 400: no job is created."""

    def __init__(self, errors):
        super().__init__('; '.join(errors))
        self.errors = list(errors)


# ------------------------------------------------------------------------------------------------ data
def _unsafe(loader, node):
    return loader.construct_scalar(node)


class ConfigLoader(yaml.SafeLoader):
    """YAML with Ansible's !unsafe tag read as the plain string it marks."""


ConfigLoader.add_constructor('!unsafe', _unsafe)


def load_configuration(path):
    with open(path) as fh:
        return yaml.load(fh, Loader=ConfigLoader)  # noqa: S506 - SafeLoader subclass


def by_name(items, name):
    for item in items:
        if item['name'] == name:
            return item
    raise KeyError(name)


# ------------------------------------------------------------------------------------------------ surveys
def validate_survey_spec(survey):
    """The errors AWX's survey_spec endpoint answers a POST of this spec with ([] = accepted)."""
    errors = []
    for key, kind in (('name', str), ('description', str), ('spec', list)):
        if key not in survey:
            errors.append("'{0}' missing from survey spec.".format(key))
        elif not isinstance(survey[key], kind):
            errors.append("'{0}' in survey spec must be {1}.".format(key, kind.__name__))
    if errors:
        return errors
    if not survey['spec']:
        return ["'spec' doesn't contain any items."]
    variables = set()
    for idx, element in enumerate(survey['spec']):
        if not isinstance(element, dict):
            errors.append('Survey question {0} is not a json object.'.format(idx))
            continue
        for key in ('question_name', 'variable', 'type', 'required'):
            if key not in element:
                errors.append("'{0}' missing from survey question {1}.".format(key, idx))
        if any(key not in element for key in ('variable', 'type', 'required')):
            continue
        if element['variable'] in variables:
            errors.append("'variable' '{0}' duplicated in survey question {1}.".format(element['variable'], idx))
        variables.add(element['variable'])
        qtype = element['type']
        if qtype not in SURVEY_TYPE_MAPPING:
            errors.append("'{0}' in survey question {1} is not one of '{2}' allowed question types.".format(
                qtype, idx, ', '.join(SURVEY_TYPE_MAPPING)))
            continue
        if not isinstance(element['required'], bool):
            errors.append("'required' in survey question {0} must be a boolean.".format(idx))
        for key in ('min', 'max'):
            if key in element and element[key] not in ('', None) and not _is_int(element[key]):
                errors.append("'{0}' in survey question {1} expected to be integer.".format(key, idx))
        default = element.get('default')
        if qtype in ('multiplechoice', 'multiselect'):
            choices = element.get('choices')
            if isinstance(choices, str):
                choices = [c for c in choices.splitlines() if c.strip() != '']
            if not isinstance(choices, list) or not choices:
                errors.append("'choices' missing or empty in survey question {0} of type {1}.".format(idx, qtype))
                continue
            if default not in (None, ''):
                defaults = default if isinstance(default, list) else str(default).splitlines()
                if qtype == 'multiplechoice' and len(defaults) > 1:
                    errors.append("Multiple Choice (Single Select) can only have one default value.")
                for value in defaults:
                    if value not in choices:
                        errors.append("Default choice must be answered from the choices listed.")
        elif default not in (None, '') and not isinstance(default, SURVEY_TYPE_MAPPING[qtype]):
            errors.append("Value {0} for '{1}' expected to be {2}.".format(default, element['variable'], qtype))
    return errors


def _is_int(value):
    """AWX checks type(value) == int: a bool is not an int answer."""
    return isinstance(value, int) and not isinstance(value, bool)


def _choices(element):
    choices = list(element['choices']) if isinstance(element['choices'], list) else element['choices']
    if isinstance(choices, str):
        choices = [c for c in choices.splitlines() if c.strip() != '']
    return choices


def survey_element_errors(element, data, validate_required=True):
    """SurveyJobTemplateMixin._survey_element_validation."""
    var, qtype = element['variable'], element['type']
    errors = []
    if var not in data:
        if element['required'] and validate_required:
            errors.append("'{0}' value missing".format(var))
        return errors
    value = data[var]
    if qtype in ('text', 'textarea', 'password'):
        if not isinstance(value, str):
            return ["Value {0} for '{1}' expected to be a string.".format(value, var)]
        if element.get('min') not in ('', None) and len(value) < int(element['min']):
            errors.append("'{0}' value {1} is too small (length is {2} must be at least {3}).".format(
                var, value, len(value), element['min']))
        if element.get('max') not in ('', None) and len(value) > int(element['max']):
            errors.append("'{0}' value {1} is too large (must be no more than {2}).".format(var, value, element['max']))
    elif qtype in ('integer', 'float'):
        if qtype == 'integer' and not _is_int(value):
            return ["Value {0} for '{1}' expected to be an integer.".format(value, var)]
        if qtype == 'float' and not (_is_int(value) or isinstance(value, float)):
            return ["Value {0} for '{1}' expected to be a numeric type.".format(value, var)]
        if element.get('min') not in ('', None) and value < element['min']:
            errors.append("'{0}' value {1} is too small (must be at least {2}).".format(var, value, element['min']))
        if element.get('max') not in ('', None) and value > element['max']:
            errors.append("'{0}' value {1} is too large (must be no more than {2}).".format(var, value, element['max']))
    elif qtype == 'multiselect':
        if not isinstance(value, list):
            return ["'{0}' value is expected to be a list.".format(var)]
        for item in value:
            if item not in _choices(element):
                errors.append("Value {0} for '{1}' expected to be one of {2}.".format(item, var, _choices(element)))
    elif qtype == 'multiplechoice':
        if value not in _choices(element):
            errors.append("Value {0} for '{1}' expected to be one of {2}.".format(value, var, _choices(element)))
    return errors


def launch_extra_vars(template, answers=None, extra_vars=None, validate_required=True):
    """The job's extra vars for a launch with these survey answers / variables, as AWX computes them.

    A workflow node's job is created without the launch serializer: answers are still checked, required
    questions left out take their defaults (validate_required=False).

    Returns (extra_vars, ignored); raises LaunchRefused with AWX's messages when an answer is refused.
    """
    answers = dict(answers or {})
    extra = dict(extra_vars or {})
    ignored = {}
    survey = template.get('survey_spec') or {}
    survey_vars = set()
    defaults = {}
    if template.get('survey_enabled'):
        errors = validate_survey_spec(survey)
        if errors:
            raise LaunchRefused(errors)
        for element in survey['spec']:
            survey_vars.add(element['variable'])
            default = element.get('default')
            if default is not None and not survey_element_errors(element, {element['variable']: default}):
                defaults[element['variable']] = default
    launch = dict(extra, **answers)
    if not template.get('ask_variables_on_launch'):
        for key in list(launch):
            if key not in survey_vars:
                ignored[key] = launch.pop(key)
    if template.get('survey_enabled'):
        errors = []
        for element in survey['spec']:
            errors += survey_element_errors(element, launch, validate_required)
        if errors:
            raise LaunchRefused(errors)
    out = dict(template.get('extra_vars') or {})
    out.update(defaults)
    out.update(launch)
    return out, ignored


# ------------------------------------------------------------------------------------------------ credential types
def validate_credential_type(ctype):
    """The errors AWX answers a POST of this custom credential type with ([] = accepted)."""
    errors = []
    if ctype.get('kind') not in ('cloud', 'net'):
        errors.append("Must be 'cloud' or 'net', not {0}".format(ctype.get('kind')))
    inputs = ctype.get('inputs') or {}
    if set(inputs) - {'fields', 'required'}:
        errors.append('inputs: unknown keys {0}'.format(sorted(set(inputs) - {'fields', 'required'})))
    if 'dependencies' in inputs:
        errors.append("'dependencies' is not supported for custom credentials.")
    ids = []
    for idx, field in enumerate(inputs.get('fields') or []):
        where = 'inputs.fields[{0}]'.format(idx)
        if set(field) - FIELD_KEYS:
            errors.append('{0}: unknown keys {1}'.format(where, sorted(set(field) - FIELD_KEYS)))
        if 'id' not in field or 'label' not in field:
            errors.append('{0}: id and label are required'.format(where))
            continue
        if not re.match(r'^[a-zA-Z_]+[a-zA-Z0-9_]*$', field['id']):
            errors.append('{0}: {1} is an invalid variable name'.format(where, field['id']))
        if field['id'] == 'tower':
            errors.append("{0}: 'tower' is a reserved field name".format(where))
        if field['id'] in ids:
            errors.append('{0}: field IDs must be unique ({1})'.format(where, field['id']))
        ids.append(field['id'])
        ftype = field.get('type', 'string')
        if ftype not in ('string', 'boolean'):
            errors.append('{0}: type must be string or boolean'.format(where))
        for key in ('secret', 'multiline', 'format', 'choices'):
            if key in field and ftype != 'string':
                errors.append('{0}: {1} is only allowed on string fields'.format(where, key))
        if field.get('format') not in (None, 'ssh_private_key', 'url'):
            errors.append('{0}: format must be ssh_private_key or url'.format(where))
        if 'default' in field and not isinstance(field['default'], bool if ftype == 'boolean' else str):
            errors.append('{0}: {1} is not a {2}'.format(where, field['default'], ftype))
        if field.get('ask_at_runtime'):
            errors.append('{0}: ask_at_runtime is not supported for custom credentials'.format(where))
    for req in inputs.get('required') or []:
        if req not in ids:
            errors.append("inputs.required: '{0}' is not a field".format(req))

    injectors = ctype.get('injectors') or {}
    if set(injectors) - {'env', 'file', 'extra_vars'}:
        errors.append('injectors: unknown keys {0}'.format(sorted(set(injectors) - {'env', 'file', 'extra_vars'})))
    files = injectors.get('file') or {}
    if 'template' in files and any(k.startswith('template.') for k in files):
        errors.append('Must use multi-file syntax when injecting multiple files')
    for key in files:
        if key != 'template' and not re.match(r'^template\.[a-zA-Z_]+[a-zA-Z0-9_]*$', key):
            errors.append('injectors.file: {0} is not a valid key'.format(key))
    for name in injectors.get('env') or {}:
        problem = env_var_problem(name)
        if problem:
            errors.append('injectors.env: {0}'.format(problem))

    class Exploding(object):
        def __str__(self):
            raise UndefinedError('Must define unnamed file injector in order to reference `tower.filename`.')

    class Files(object):
        pass

    tower = Files()
    if 'template' in files:
        tower.filename = '/runner/env/tmpEXAMPLE'
    elif files:
        tower.filename = Files()
        for key in files:
            setattr(tower.filename, key.split('.', 1)[1], '/runner/env/tmpEXAMPLE')
    else:
        tower.filename = Exploding()
    namespace = {'tower': tower}
    for field in inputs.get('fields') or []:
        if 'id' in field:
            namespace[field['id']] = False if field.get('type') == 'boolean' else 'EXAMPLE'
    env = sandbox.ImmutableSandboxedEnvironment(undefined=StrictUndefined)

    def check(kind, key, tmpl):
        if isinstance(tmpl, dict):
            for k, v in tmpl.items():
                check(kind, '{0}.{1}'.format(key, k), v)
            return
        if isinstance(tmpl, list):
            for i, v in enumerate(tmpl):
                check(kind, '{0}[{1}]'.format(key, i), v)
            return
        try:
            env.from_string(str(tmpl)).render(**namespace)
        except UndefinedError as exc:
            errors.append('injectors.{0}.{1} uses an undefined field ({2})'.format(kind, key, exc))
        except (SecurityError, TemplateSyntaxError) as exc:
            errors.append('injectors.{0}.{1}: {2}'.format(kind, key, exc))
    for kind in ('env', 'file', 'extra_vars'):
        for key, tmpl in (injectors.get(kind) or {}).items():
            check(kind, key, tmpl)
    return errors


def env_var_problem(name):
    if name.startswith('ANSIBLE_'):
        return 'Environment variable {0} may affect Ansible configuration so its use is not allowed in credentials.'.format(name)
    if name in ENV_BLOCKLIST:
        return 'Environment variable {0} is not allowed to be used in credentials.'.format(name)
    return None


class _Namespace(object):
    pass


class InjectedCredential(object):
    """What one credential put into a job: env (real), safe_env (as stored in job_env), files, -e args."""

    def __init__(self):
        self.env, self.safe_env, self.files, self.args = {}, {}, {}, []


def inject_credential(ctype, inputs, private_data_dir, container_root=CONTAINER_ROOT):
    """CredentialType.inject_credential for a custom type: the credential's env, files and extra_vars."""
    out = InjectedCredential()
    fields = dict((f['id'], f) for f in ctype['inputs'].get('fields') or [])
    missing = [r for r in ctype['inputs'].get('required') or [] if inputs.get(r) in (None, '')]
    if missing:
        # The credential itself could not have been saved without them.
        raise LaunchRefused(['{0}: {1} required'.format(ctype['name'], ', '.join(missing))])
    namespace, safe = {}, {}
    for name, value in inputs.items():
        if isinstance(value, bool):
            namespace[name] = safe[name] = value
            continue
        value = str(value)
        if fields.get(name, {}).get('secret') and value:
            safe[name] = HIDDEN_PASSWORD
        elif value:
            safe[name] = value
        if value:
            namespace[name] = value
    for name, field in fields.items():
        if field.get('type') == 'boolean' and name not in inputs:
            namespace[name] = safe[name] = False
        if field.get('format') == 'ssh_private_key' and name in namespace and not namespace[name].endswith('\n'):
            namespace[name] += '\n'

    tower = _Namespace()
    env_dir = os.path.join(private_data_dir, 'env')
    os.makedirs(env_dir, mode=0o700, exist_ok=True)
    jinja = sandbox.ImmutableSandboxedEnvironment()
    for label, tmpl in (ctype['injectors'].get('file') or {}).items():
        data = jinja.from_string(tmpl).render(**namespace)
        handle, path = tempfile.mkstemp(dir=env_dir)
        with os.fdopen(handle, 'w') as fh:
            fh.write(data)
        os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
        container_path = os.path.join(container_root, os.path.relpath(path, private_data_dir))
        if '.' not in label:
            tower.filename = container_path
        else:
            if not hasattr(tower, 'filename'):
                tower.filename = _Namespace()
            setattr(tower.filename, label.split('.', 1)[1], container_path)
        out.files[label] = path
    namespace['tower'] = safe['tower'] = tower
    for name, tmpl in (ctype['injectors'].get('env') or {}).items():
        if env_var_problem(name):
            continue  # AWX logs "Ignoring prohibited env var" and goes on
        out.env[name] = jinja.from_string(tmpl).render(**namespace)
        out.safe_env[name] = jinja.from_string(tmpl).render(**safe)

    def build(node):
        if isinstance(node, dict):
            return dict((build(k), build(v)) for k, v in node.items())
        if isinstance(node, list):
            return [build(x) for x in node]
        return jinja.from_string(node).render(**namespace)
    extra = build(ctype['injectors'].get('extra_vars') or {})
    if extra:
        handle, path = tempfile.mkstemp(dir=env_dir)
        with os.fdopen(handle, 'w') as fh:
            fh.write(yaml.safe_dump(extra))
        os.chmod(path, stat.S_IRUSR)
        out.args += ['-e', '@' + os.path.join(container_root, os.path.relpath(path, private_data_dir))]
    return out


# The managed type "OpenShift or Kubernetes API Bearer Token" (awx/main/models/credential/__init__.py,
# kind kubernetes): its injectors are code, not data (kubernetes_bearer_token in injectors.py).
KUBERNETES_BEARER_TOKEN = {
    'name': 'OpenShift or Kubernetes API Bearer Token', 'kind': 'kubernetes', 'managed': True,
    'inputs': {'fields': [
        {'id': 'host', 'label': 'OpenShift or Kubernetes API Endpoint', 'type': 'string'},
        {'id': 'bearer_token', 'label': 'API authentication bearer token', 'type': 'string', 'secret': True},
        {'id': 'verify_ssl', 'label': 'Verify SSL', 'type': 'boolean', 'default': True},
        {'id': 'ssl_ca_cert', 'label': 'Certificate Authority data', 'type': 'string', 'secret': True,
         'multiline': True}],
        'required': ['host', 'bearer_token']},
}


def inject_kubernetes_bearer_token(inputs, private_data_dir, container_root=CONTAINER_ROOT):
    """injectors.kubernetes_bearer_token: K8S_AUTH_HOST, K8S_AUTH_API_KEY, K8S_AUTH_VERIFY_SSL, K8S_AUTH_SSL_CA_CERT."""
    out = InjectedCredential()
    out.env['K8S_AUTH_HOST'] = inputs['host']
    out.env['K8S_AUTH_API_KEY'] = inputs['bearer_token']
    out.safe_env.update(K8S_AUTH_HOST=inputs['host'], K8S_AUTH_API_KEY=HIDDEN_PASSWORD)
    if inputs.get('verify_ssl', True) and inputs.get('ssl_ca_cert'):
        out.env['K8S_AUTH_VERIFY_SSL'] = out.safe_env['K8S_AUTH_VERIFY_SSL'] = 'True'
        handle, path = tempfile.mkstemp(dir=os.path.join(private_data_dir, 'env'))
        with os.fdopen(handle, 'w') as fh:
            fh.write(inputs['ssl_ca_cert'])
        os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
        out.env['K8S_AUTH_SSL_CA_CERT'] = out.safe_env['K8S_AUTH_SSL_CA_CERT'] = os.path.join(
            container_root, os.path.relpath(path, private_data_dir))
        out.files['ssl_ca_cert'] = path
    else:
        out.env['K8S_AUTH_VERIFY_SSL'] = out.safe_env['K8S_AUTH_VERIFY_SSL'] = 'False'
    return out


# ------------------------------------------------------------------------------------------------ the job
def safe_dump(extra_vars, safe_dict):
    """awx.main.utils.safe_yaml.safe_dump: every string !unsafe except top-level pairs the template defines."""
    class Unsafe(str):
        pass

    def tag(node):
        if isinstance(node, dict):
            return dict((k, tag(v)) for k, v in node.items())
        if isinstance(node, list):
            return [tag(v) for v in node]
        return Unsafe(node) if isinstance(node, str) else node

    class Dumper(yaml.SafeDumper):
        pass
    Dumper.add_representer(Unsafe, lambda d, v: d.represent_scalar('!unsafe', str(v)))
    data = dict((k, v if k in safe_dict and safe_dict[k] == v else tag(v)) for k, v in extra_vars.items())
    return yaml.dump(data, Dumper=Dumper, default_flow_style=False)


class Job(object):
    def __init__(self, processor, events, private_data_dir, extra_vars, ignored, job_env, stdout):
        self.status = processor.status  # successful | failed | timeout | canceled | error
        self.private_data_dir = private_data_dir
        self.extra_vars = extra_vars
        self.ignored_fields = ignored
        self.job_env = job_env
        self.stdout = stdout
        self.events = events
        stats = [e for e in self.events if e.get('event') == 'playbook_on_stats']
        self.artifacts = (stats[-1]['event_data'].get('artifact_data') or {}) if stats else {}

    def failed_tasks(self):
        return [e['event_data'] for e in self.events if e.get('event') == 'runner_on_failed'
                and not e['event_data'].get('ignore_errors')]


class Controller(object):
    """One AWX organization's worth of configuration (the data file) and a way to launch its job templates."""

    def __init__(self, configuration, project_src, collections_path, workdir, python=sys.executable):
        self.config = configuration
        self.project_src = project_src
        self.collections_path = collections_path
        self.workdir = workdir
        self.python = python
        self.jobs = 0

    def credential_type(self, name):
        return by_name(self.config['controller_credential_types'], name)

    def launch(self, template_name, credentials, answers=None, extra_vars=None, template_overrides=None,
               inventory_hostvars=None, timeout=900, workflow_vars=None):
        """Launch a job template: refuses bad answers before anything runs, then runs it and returns the Job.

        credentials: [(credential type name or KUBERNETES_BEARER_TOKEN['name'], inputs)], as attached to the
        template (one per type).
        """
        template = dict(by_name(self.config['controller_templates'], template_name))
        template.update(template_overrides or {})
        extra, ignored = launch_extra_vars(template, answers, extra_vars, validate_required=workflow_vars is None)
        # a workflow's variables and its parents' artifacts reach a node's job whatever the node's prompts
        extra.update(workflow_vars or {})
        kinds = [cred[0] for cred in credentials]
        if len(set(kinds)) != len(kinds):
            raise LaunchRefused(['Cannot assign multiple {0} credentials.'.format(
                next(k for k in kinds if kinds.count(k) > 1))])

        self.jobs += 1
        job_id = self.jobs
        pdd = tempfile.mkdtemp(prefix='awx_{0}_'.format(job_id), dir=self.workdir)
        os.chmod(pdd, 0o700)
        os.makedirs(os.path.join(pdd, 'env'), mode=0o700)
        worker_dir = tempfile.mkdtemp(prefix='runner_{0}_'.format(job_id), dir=self.workdir)
        env, safe_env, cmdline = {}, {}, []
        for type_name, inputs in credentials:
            if type_name == KUBERNETES_BEARER_TOKEN['name']:
                injected = inject_kubernetes_bearer_token(inputs, pdd, worker_dir)
            else:
                injected = inject_credential(self.credential_type(type_name), inputs, pdd, worker_dir)
            env.update(injected.env)
            safe_env.update(injected.safe_env)
            cmdline += injected.args

        # the project checkout, the inventory script, env/extravars
        shutil.copytree(self.project_src, os.path.join(pdd, 'project'))
        os.makedirs(os.path.join(pdd, 'inventory'))
        hostvars = dict({'ansible_connection': 'local', 'ansible_python_interpreter': self.python},
                        **(inventory_hostvars or {}))
        inventory = {'all': {'hosts': ['localhost'], 'children': []}, '_meta': {'hostvars': {'localhost': hostvars}}}
        script = os.path.join(pdd, 'inventory', 'hosts')
        with open(script, 'w') as fh:
            fh.write('#! /usr/bin/env python3\n# -*- coding: utf-8 -*-\nimport json\n'
                     'print(json.dumps({0!r}))\n'.format(json.dumps(inventory)))
        os.chmod(script, stat.S_IRWXU)
        meta = {'awx_job_id': job_id, 'tower_job_id': job_id, 'awx_job_template_name': template_name,
                'tower_job_template_name': template_name, 'awx_job_launch_type': 'manual', 'awx_user_name': 'admin'}
        job_vars = dict(extra, **meta)
        handle = os.open(os.path.join(pdd, 'env', 'extravars'), os.O_RDWR | os.O_CREAT, stat.S_IREAD | stat.S_IWRITE)
        with os.fdopen(handle, 'w') as fh:
            fh.write(safe_dump(job_vars, template.get('extra_vars') or {}))

        job_env = {'ANSIBLE_FORCE_COLOR': 'False', 'ANSIBLE_HOST_KEY_CHECKING': 'False',
                   'ANSIBLE_INVENTORY_UNPARSED_FAILED': 'True', 'ANSIBLE_PARAMIKO_RECORD_HOST_KEYS': 'False',
                   'ANSIBLE_RETRY_FILES_ENABLED': 'False', 'JOB_ID': str(job_id), 'INVENTORY_ID': '1',
                   'PROJECT_REVISION': 'HEAD', 'ANSIBLE_COLLECTIONS_PATH': self.collections_path,
                   'ANSIBLE_DEPRECATION_WARNINGS': 'False'}
        job_env.update(env)
        safe_job_env = dict(job_env, **safe_env)
        args = []
        if template.get('job_type') == 'check':
            args.append('--check')
        args += cmdline
        params = {
            'private_data_dir': pdd, 'ident': str(job_id), 'playbook': template['playbook'],
            'inventory': os.path.join(worker_dir, 'inventory', 'hosts'), 'envvars': job_env,
            'suppress_env_files': True, 'settings': {'job_timeout': timeout, 'suppress_output_file': False},
        }
        if args:
            params['cmdline'] = ' '.join(_quote(a) for a in args)

        # controller -> execution environment -> controller, as over receptor
        transmit = os.path.join(self.workdir, 'transmit-{0}'.format(job_id))
        with open(transmit, 'wb') as fh:
            ansible_runner.run(streamer='transmit', _output=fh, **params)
        results = os.path.join(self.workdir, 'results-{0}'.format(job_id))
        bin_dir = os.path.dirname(self.python)
        worker_env = {'PATH': bin_dir + os.pathsep + '/usr/bin:/bin', 'HOME': worker_dir, 'LANG': 'C.UTF-8'}
        with open(transmit, 'rb') as stdin, open(results, 'wb') as stdout:
            proc = subprocess.run([os.path.join(bin_dir, 'ansible-runner'), 'worker', '--private-data-dir', worker_dir],
                                  stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, env=worker_env, cwd=worker_dir,
                                  timeout=timeout + 60, check=False)
        # the worker exits with the playbook's rc; its result is in the stream, read by the process side
        events = []

        def on_event(event):
            events.append(event)
            return True  # and keep it in artifacts/<ident>/job_events, as AWX stores every event
        with open(results, 'rb') as fh:
            processor = ansible_runner.run(streamer='process', _input=fh, private_data_dir=pdd, ident=str(job_id),
                                           quiet=True, event_handler=on_event)
        assert processor.status not in ('unstarted', 'starting', 'running'), proc.stderr.decode(errors='replace')
        events.sort(key=lambda e: e.get('counter', 0))
        stdout_text = ''.join(e['stdout'] + '\n' for e in events if e.get('stdout'))
        return Job(processor, events, pdd, job_vars, ignored, safe_job_env, stdout_text)

    def run_workflow(self, name, credentials, answers=None, approve=True, **launch_kw):
        """A workflow job: its nodes in order along success/failure/always edges; a parent's artifacts
        (set_stats) merged into its children's extra vars (workflow variables win). Returns [(identifier, Job or
        approval state)]. credentials: {job template name: [(type, inputs)]}."""
        wf = by_name(self.config['controller_workflows'], name)
        wf_vars, _ignored = launch_extra_vars(wf, answers)
        nodes = dict((n['identifier'], n) for n in wf['workflow_nodes'])
        children = set(c['identifier'] for n in wf['workflow_nodes'] for edge in (n.get('related') or {}).values()
                       for c in edge)
        todo = [(ident, {}) for ident in nodes if ident not in children]
        done = []
        while todo:
            ident, artifacts = todo.pop(0)
            node = nodes[ident]
            ujt = node['unified_job_template']
            if ujt['type'] == 'workflow_approval':
                outcome, result, out_artifacts = ('successful' if approve else 'failed'), (
                    'approved' if approve else 'denied'), artifacts
            else:
                template = by_name(self.config['controller_templates'], ujt['name'])
                # survey answers from the workflow, the rest (artifacts) as the node's extra data
                survey_vars = set(e['variable'] for e in (template.get('survey_spec') or {}).get('spec', []))
                node_answers = dict((k, v) for k, v in wf_vars.items() if k in survey_vars)
                job = self.launch(ujt['name'], credentials.get(ujt['name'], []), answers=node_answers,
                                  workflow_vars=dict(artifacts, awx_workflow_job_name=name, awx_workflow_job_id=1,
                                                     **wf_vars), **launch_kw)
                outcome, result = job.status, job
                out_artifacts = dict(artifacts, **job.artifacts)
            done.append((ident, result))
            related = node.get('related') or {}
            edges = related.get('success_nodes' if outcome == 'successful' else 'failure_nodes', [])
            for child in list(edges) + list(related.get('always_nodes', [])):
                todo.append((child['identifier'], out_artifacts))
        return done


def _quote(arg):
    import shlex
    return shlex.quote(arg)


def install_collection(root, dest, python=sys.executable):
    """The collection as an execution environment has it: the built tarball, installed (not the checkout)."""
    bin_dir = os.path.dirname(python)
    build = os.path.join(dest, 'build')
    for argv in ([os.path.join(bin_dir, 'ansible-galaxy'), 'collection', 'build', '--force', '--output-path', build, root],):
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False, cwd=dest)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    tarball = [os.path.join(build, f) for f in os.listdir(build) if f.endswith('.tar.gz')][0]
    path = os.path.join(dest, 'collections')
    proc = subprocess.run([os.path.join(bin_dir, 'ansible-galaxy'), 'collection', 'install', '--force', '-p', path,
                           tarball], capture_output=True, text=True, timeout=300, check=False, cwd=dest,
                          env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return path
