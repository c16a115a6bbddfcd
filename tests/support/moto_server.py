"""moto's server as the deploy tests run it: every service on one port (S3, Glue, SQS,
CloudFormation, Step Functions, Batch, IAM, EC2, ...), with three changes, so that the state
machine of deploy/batch.yaml, deployed by CloudFormation, executes for real.

0. CloudFormation creates a state machine from `Definition` (an object) with its
   `DefinitionSubstitutions`, as AWS does (moto 5.2 reads `DefinitionString` alone), in the
   backend that executes state machines (moto's creates it where executions cannot see it),
   validating the definition with moto's Amazon States Language parser; a template's
   explicit `null` (ASL's `ResultPath: null`) stays null, where moto drops the key; and
   `AWS::NoValue` removes a list's element, where moto leaves a null in its place.

1. Step Functions sends a service integration's parameters as the service's API names them.
   moto 5.2's port of the Step Functions interpreter leaves the request and response
   normalisation empty, so every `batch:submitJob` task fails with `States.Runtime ...
   'JobName'` (the SDK is handed `JobName` where the API says `jobName`) and an
   `aws-sdk:s3:getObject` result keeps an unread stream for its `Body`. Here both are mapped
   through the service's botocore model, the way AWS maps them.
2. A Batch job whose job definition's image is the path of an executable file runs that file:
   the container's command (the submission's override, else the definition's) as its
   arguments; the definition's environment, the override's, AWS_BATCH_JOB_ID,
   AWS_BATCH_JOB_ATTEMPT and, for an array child, AWS_BATCH_JOB_ARRAY_INDEX, on top of this
   server's environment. A job succeeds when it exits 0 and is tried again up to its retry
   strategy's attempts; an array job succeeds when every child does. Other images keep moto's
   behaviour (succeed without running).

Environment:
  MOTO_PORT                  this server's port (Step Functions calls the services through it)
  CITRINE_TEST_JOB_RECORD    a file each job attempt is appended to, as a JSON line:
                             {"job", "index", "attempt", "command", "exit"}
  CITRINE_TEST_FAIL_JOBS     a file holding "NAME" or "NAME:INDEX", comma separated, when a
                             job starts: those jobs (or children) fail every attempt, exit 137,
                             without running (a container that is killed each time)

Usage: moto_server.py PORT   (binds 127.0.0.1)
"""
import datetime
import json
import os
import subprocess
import sys
import threading

import botocore.session
from moto.batch_simple.models import BatchSimpleBackend
from moto.cloudformation import parsing as cfn_parsing
from moto.stepfunctions import models as sfn_models
from moto.stepfunctions.parser.models import stepfunctions_parser_backends
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service import (
    StateTaskService,
)

_models = {}
_record_lock = threading.Lock()


_NULL = "\u0000citrine-null\u0000"
_depth = threading.local()
_original_clean_json = cfn_parsing.clean_json


def _nulls(value, into):
    if isinstance(value, dict):
        return {k: (into if v is None else _nulls(v, into)) for k, v in value.items()}
    if isinstance(value, list):
        return [_nulls(v, into) for v in value]
    return value


def _back(value):
    if value == _NULL:
        return None
    if isinstance(value, dict):
        return {k: _back(v) for k, v in value.items()}
    if isinstance(value, list):
        # What is still None came from `AWS::NoValue`, which removes a list's element.
        return [_back(v) for v in value if v is not None]
    return value


def _clean_json(resource_json, resources_map):
    """moto's, but a literal null in the template survives (an intrinsic that resolves to
    nothing, `AWS::NoValue`, still drops its key)."""
    top = getattr(_depth, "n", 0) == 0
    if top:
        resource_json = _nulls(resource_json, _NULL)
    _depth.n = getattr(_depth, "n", 0) + 1
    try:
        cleaned = _original_clean_json(resource_json, resources_map)
    finally:
        _depth.n -= 1
    return _back(cleaned) if top else cleaned


cfn_parsing.clean_json = _clean_json


def _state_machine_from_cloudformation(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
    props = cloudformation_json["Properties"]
    definition = props.get("DefinitionString") or json.dumps(props.get("Definition", {}))
    for key, value in (props.get("DefinitionSubstitutions") or {}).items():
        definition = definition.replace("${" + key + "}", str(value))
    backend = stepfunctions_parser_backends[account_id][region_name]
    return backend.create_state_machine(
        props.get("StateMachineName", resource_name),
        definition,
        props.get("RoleArn", ""),
        tags=props.get("Tags") or None,
    )


sfn_models.StateMachine.create_from_cloudformation_json = classmethod(_state_machine_from_cloudformation)


def _operation(service, action):
    """The botocore operation model of `service`'s `action` (camelCase or snake_case)."""
    model = _models.get(service)
    if model is None:
        model = botocore.session.get_session().get_service_model(service)
        _models[service] = model
    names = {n.lower(): n for n in model.operation_names}
    return model.operation_model(names[action.replace("_", "").lower()])


def _normalise_parameters(self, parameters, boto_service_name=None, service_action_name=None):
    service = self._get_boto_service_name(boto_service_name)
    action = service_action_name or self.resource.api_action
    shape = _operation(service, action).input_shape
    if shape is not None:
        self._to_boto_request(parameters, shape)


def _normalise_response(self, response, boto_service_name=None, service_action_name=None):
    service = self._get_boto_service_name(boto_service_name)
    action = service_action_name or self.resource.api_action
    shape = _operation(service, action).output_shape
    if shape is not None:
        self._from_boto_response(response, shape)


StateTaskService._normalise_parameters = _normalise_parameters
StateTaskService._normalise_response = _normalise_response


def _runnable(image):
    return bool(image) and os.path.isabs(image) and os.access(image, os.X_OK)


def _environment(entries):
    return {e["name"]: e["value"] for e in entries or []}


def _fails(job_name, index):
    path = os.environ.get("CITRINE_TEST_FAIL_JOBS")
    specs = open(path).read().strip() if path and os.path.exists(path) else ""
    for spec in filter(None, specs.split(",")):
        name, _, at = spec.partition(":")
        if name == job_name and (not at or (index is not None and int(at) == index)):
            return True
    return False


def _record(entry):
    path = os.environ.get("CITRINE_TEST_JOB_RECORD")
    if path:
        with _record_lock, open(path, "a") as f:
            f.write(json.dumps(entry) + "\n")


def _run(job, index):
    """Run `job` (a child at `index`, or a plain job) up to its attempts; True on success."""
    definition = job.job_definition
    props = definition.container_properties or {}
    overrides = job.container_overrides or {}
    command = overrides.get("command") or props.get("command") or []
    attempts = int((definition.retry_strategy or {}).get("attempts", 1) or 1)
    for attempt in range(1, attempts + 1):
        env = dict(os.environ)
        env.update(_environment(props.get("environment")))
        env.update(_environment(overrides.get("environment")))
        env["AWS_BATCH_JOB_ID"] = job.job_id
        env["AWS_BATCH_JOB_ATTEMPT"] = str(attempt)
        if index is not None:
            env["AWS_BATCH_JOB_ARRAY_INDEX"] = str(index)
        if _fails(job.job_name, index):
            code = 137
        else:
            done = subprocess.run([props["image"], *command], env=env, capture_output=True, text=True)
            code = done.returncode
            sys.stderr.write(f"[job {job.job_name} {index} #{attempt}] {' '.join(command)}: exit {code}\n{done.stderr}")
        _record({"job": job.job_name, "index": index, "attempt": attempt, "command": command, "exit": code})
        if code == 0:
            return True
    return False


_original_finish = BatchSimpleBackend._mark_job_as_finished
_outcomes = {}


def _mark_job_as_finished(self, include_start_attempt, job):
    image = (job.job_definition.container_properties or {}).get("image", "")
    if not _runnable(image):
        return _original_finish(self, include_start_attempt, job)
    self.backend._jobs[job.job_id] = job
    job.job_started_at = datetime.datetime.now()
    job.log_stream_name = job._stream_name
    if include_start_attempt:
        job._start_attempt()
    index = (job.array_properties or {}).get("index")
    if "size" in (job.array_properties or {}):
        # The parent of an array job, marked after its children: it succeeds when they do.
        prefix = f"{job.job_id}:"
        success = all(ok for child, ok in _outcomes.items() if child.startswith(prefix))
    else:
        success = _run(job, index)
        _outcomes[job.job_id] = success
    job._mark_stopped(success=success)


BatchSimpleBackend._mark_job_as_finished = _mark_job_as_finished

def _route_access_points():
    """S3 access points, which moto's server does not route: with CITRINE_TEST_ACCESS_POINTS
    (JSON {name: bucket}), a request to `/ap/<name>/<key>` (the endpoint citrine is given as
    `s3_access_point_endpoint = "http://127.0.0.1:<port>/ap/{name}"`) is served from
    `<bucket>/<key>`, as S3 serves an access point's requests from its bucket, and every S3
    request is written to CITRINE_TEST_ACCESS_POINT_RECORD as `METHOD path?query` (the path
    as citrine sent it), so a test can assert which went through an access point."""
    points = json.loads(os.environ.get("CITRINE_TEST_ACCESS_POINTS") or "{}")
    record = os.environ.get("CITRINE_TEST_ACCESS_POINT_RECORD")
    if not points:
        return
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    original = DomainDispatcherApplication.__call__

    def call(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if record and "/s3/aws4_request" in environ.get("HTTP_AUTHORIZATION", ""):
            with open(record, "a") as f:
                query = environ.get("QUERY_STRING", "")
                f.write(f"{environ['REQUEST_METHOD']} {path}{'?' + query if query else ''}\n")
        parts = path.split("/", 3)
        if len(parts) >= 3 and parts[1] == "ap" and parts[2] in points:
            environ["PATH_INFO"] = "/" + points[parts[2]] + ("/" + parts[3] if len(parts) > 3 else "")
            environ["RAW_URI"] = environ["REQUEST_URI"] = environ["PATH_INFO"] + (
                "?" + environ["QUERY_STRING"] if environ.get("QUERY_STRING") else "")
        return original(self, environ, start_response)

    DomainDispatcherApplication.__call__ = call


_route_access_points()

if __name__ == "__main__":
    from moto.server import main

    main(["-H", "127.0.0.1", "-p", sys.argv[1]])
