"""SubmitJob arguments for one task (pure).

Precedence: built-in defaults < ``[aws_batch_executor]`` options < ``submit_job_kwargs`` < the
task's queue in ``queue_map`` < the task's ``executor_config``. Dicts merge recursively; lists and
scalars replace. The container command is always the workload's, and
``AIRFLOW_IS_EXECUTOR_CONTAINER=true`` is always set.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from batchexec.errors import BatchConfigError

ENTRYPOINT = ("python", "-m", "batchexec.entrypoint", "--workload-json")


def camelize(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def camelize_keys(value: Any, *, in_tags: bool = False) -> Any:
    """snake_case keys become camelCase as boto3 expects, except inside ``tags`` (user data)."""
    if isinstance(value, Mapping):
        return {
            (k if in_tags else camelize(k)): camelize_keys(v, in_tags=in_tags or camelize(k) == "tags")
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [camelize_keys(v, in_tags=in_tags) for v in value]
    return value


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _reject_command(executor_config: Mapping[str, Any]) -> None:
    overrides = executor_config.get("containerOverrides") or {}
    if "command" in executor_config or (isinstance(overrides, Mapping) and "command" in overrides):
        raise BatchConfigError(
            "executor_config must not set 'command': the executor runs the task's own command; "
            "remove it from the task's executor_config"
        )


def submit_kwargs(*, job_name: str, job_queue: str, job_definition: str, extra: Mapping[str, Any],
                  executor_config: Mapping[str, Any] | None, command: Sequence[str],
                  mapped: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``mapped``: the task's queue_map entry (jobQueue/jobDefinition), more specific than
    submit_job_kwargs and less than the task's own executor_config."""
    out: dict[str, Any] = {"jobName": job_name, "jobQueue": job_queue, "jobDefinition": job_definition}
    out = merge(out, camelize_keys(dict(extra)))
    out.update(mapped or {})
    if executor_config:
        if not isinstance(executor_config, Mapping):
            raise BatchConfigError("executor_config must be a dict of SubmitJob arguments")
        _reject_command(executor_config)
        out = merge(out, executor_config)
    overrides = dict(out.get("containerOverrides") or {})
    overrides["command"] = list(command)
    env = [e for e in overrides.get("environment", []) if e.get("name") != "AIRFLOW_IS_EXECUTOR_CONTAINER"]
    env.append({"name": "AIRFLOW_IS_EXECUTOR_CONTAINER", "value": "true"})
    overrides["environment"] = env
    out["containerOverrides"] = overrides
    return out


def command_for(workload_json: str) -> list[str]:
    return [*ENTRYPOINT, workload_json]
