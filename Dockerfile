# The edgeexec image used by compose.yaml: Airflow 3.3 with edgeexec installed.
# One image serves every role (api-server, scheduler, dag-processor, gateway, agent).
ARG AIRFLOW_VERSION=3.3.2
ARG PYTHON_VERSION=3.11
FROM apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}

COPY --chown=airflow:root pyproject.toml README.md /opt/edgeexec/
COPY --chown=airflow:root edgeexec /opt/edgeexec/edgeexec
COPY --chown=airflow:root agent /opt/edgeexec/agent
COPY --chown=airflow:root batchexec /opt/edgeexec/batchexec
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" "/opt/edgeexec[all]"
