# AWS Batch job image for batchexec.BatchExecutor.
#
#   docker build -f docker/batch.Dockerfile \
#     --build-arg aws_default_region=eu-west-1 \
#     --build-arg host_dag_path=./dags \
#     --build-arg requirements_path=requirements.txt \
#     -t my-airflow-batch .
#
# Airflow and Python must match the scheduler's (a task runs the scheduler's serialized DAG
# version). DAGs come from the build context (host_dag_path) and, if s3_uri is set, from S3 at
# build time. The job's command (set by the executor on every SubmitJob) is
# `python -m batchexec.entrypoint --workload-json ...`, which exits with the task's exit code.
ARG AIRFLOW_VERSION=3.3.2
ARG PYTHON_VERSION=3.11
FROM apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}

ARG AIRFLOW_VERSION
ARG aws_default_region
ARG s3_uri=""
ARG host_dag_path=./dags
ARG container_dag_path=/opt/airflow/dags
ARG requirements_path=requirements.txt
# Optional, for pulling DAGs from S3 at build time only. Prefer a build machine with an IAM role:
# build arguments are visible in the image history.
ARG aws_access_key_id=""
ARG aws_secret_access_key=""
ARG aws_session_token=""

ENV AWS_DEFAULT_REGION=${aws_default_region} \
    AIRFLOW__CORE__DAGS_FOLDER=${container_dag_path} \
    AIRFLOW__CORE__LOAD_EXAMPLES=False

COPY --chown=airflow:root ${requirements_path} /opt/airflow/requirements.txt
COPY --chown=airflow:root pyproject.toml README.md /opt/edgeexec/
COPY --chown=airflow:root edgeexec /opt/edgeexec/edgeexec
COPY --chown=airflow:root agent /opt/edgeexec/agent
COPY --chown=airflow:root batchexec /opt/edgeexec/batchexec
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" "/opt/edgeexec[batch]" \
 && pip install --no-cache-dir -r /opt/airflow/requirements.txt

COPY --chown=airflow:root ${host_dag_path} ${container_dag_path}
RUN if [ -n "${s3_uri}" ]; then \
      if [ -n "${aws_access_key_id}" ]; then \
        echo "WARNING: AWS credentials passed as build arguments stay visible in the image history" >&2; \
      fi; \
      pip install --no-cache-dir awscli && \
      AWS_ACCESS_KEY_ID="${aws_access_key_id}" AWS_SECRET_ACCESS_KEY="${aws_secret_access_key}" \
      AWS_SESSION_TOKEN="${aws_session_token}" aws s3 cp --recursive "${s3_uri}" "${container_dag_path}"; \
    fi

# Run the job's command as given (no `airflow` entrypoint wrapper).
ENTRYPOINT ["/usr/bin/dumb-init", "--"]
CMD ["python", "-m", "batchexec.entrypoint", "--help"]
