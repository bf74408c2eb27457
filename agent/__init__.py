"""The edgeexec edge agent: one WebSocket to a gateway, Airflow workloads in child processes."""
