"""Container entrypoint: run one Airflow workload and exit with the task's own exit code.

``python -m batchexec.entrypoint --workload-json '<ExecuteTask JSON>'``. Unlike the stock
``execute_workload`` module, the exit code is propagated, so a crashed task is a FAILED Batch job.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m batchexec.entrypoint")
    ap.add_argument("--workload-json", default=os.environ.get("AIRFLOW_WORKLOAD_JSON"),
                    help="the ExecuteTask workload (or set AIRFLOW_WORKLOAD_JSON)")
    args = ap.parse_args(argv)
    if not args.workload_json:
        print("batchexec.entrypoint: no workload given (--workload-json or AIRFLOW_WORKLOAD_JSON)", file=sys.stderr)
        return 2
    from airflow.executors.base_executor import BaseExecutor
    from airflow.executors.workloads import ExecutorWorkload
    from pydantic import TypeAdapter

    workload = TypeAdapter(ExecutorWorkload).validate_json(args.workload_json)
    code = BaseExecutor.run_workload(workload, subprocess_logs_to_stdout=True)
    logging.getLogger(__name__).info("workload %s exited with %s", workload.display_name, code)
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
