"""The fleet dashboard page: one page, served by every gateway (admin token) and inside
Airflow's UI (edgeexec/airflow/ui_page.py, Airflow sign-in). The server tells the page where its
control socket is and how it signs in; the page never takes anything from the URL."""

from __future__ import annotations

import html
from importlib import resources

from starlette.responses import Response

AUTH_MODES = ("token", "airflow")
_CSP = ("default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self' ws: wss:; "
        "frame-ancestors {ancestors}")


def headers(*, framed: bool) -> dict[str, str]:
    """No other site may frame the page; inside Airflow, Airflow's own pages (same origin) do."""
    return {
        "Content-Security-Policy": _CSP.format(ancestors="'self'" if framed else "'none'"),
        "X-Frame-Options": "SAMEORIGIN" if framed else "DENY",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }


def dashboard(*, control_path: str, auth: str, framed: bool) -> Response:
    if auth not in AUTH_MODES:
        raise ValueError(f"auth must be one of {AUTH_MODES}, not {auth!r}")
    page = (resources.files("edgeexec.gateway") / "static" / "dashboard.html").read_text()
    config = f'<meta name="edgeexec" data-control="{html.escape(control_path)}" data-auth="{auth}">'
    return Response(page.replace("<!--edgeexec-config-->", config, 1), media_type="text/html",
                    headers=headers(framed=framed))
