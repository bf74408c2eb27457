"""A boto3 Batch client built from the Airflow connection ``aws_conn_id`` (or boto3's default chain)."""

from __future__ import annotations

import logging
from typing import Any

import boto3

log = logging.getLogger(__name__)


def _connection(conn_id: str) -> Any | None:
    try:
        from airflow.models.connection import Connection

        return Connection.get_connection_from_secrets(conn_id)
    except Exception as exc:  # noqa: BLE001 - AirflowNotFoundException and friends: use boto3's chain
        log.info("no Airflow connection %r (%s); using boto3's default credential chain", conn_id, exc)
        return None


def make_client(conn_id: str, region_name: str, service: str = "batch") -> Any:
    """Login/password are the access key pair; extra may hold region_name, endpoint_url, aws_session_token.
    ``service`` is ``batch``, or ``logs`` for the job's CloudWatch log stream (same credentials)."""
    conn = _connection(conn_id)
    kwargs: dict[str, Any] = {"region_name": region_name}
    if conn is not None:
        extra = conn.extra_dejson or {}
        kwargs["region_name"] = extra.get("region_name") or region_name
        key = conn.login or extra.get("aws_access_key_id")
        secret = conn.password or extra.get("aws_secret_access_key")
        if key and secret:
            kwargs.update(aws_access_key_id=key, aws_secret_access_key=secret,
                          aws_session_token=extra.get("aws_session_token"))
        if extra.get("endpoint_url"):
            kwargs["endpoint_url"] = extra["endpoint_url"]
    return boto3.client(service, **kwargs)
