"""wss:// with a self-signed CA on loopback: the agent verifies the gateway through --ca-file."""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import subprocess
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edgeexec.localstack.processes import BIN, Proc, wait_for
from edgeexec.store.keys import Keys
from edgeexec.tokens import store as token_store
from tests.servers import start_gateway


def _cert(subject: str, issuer_key: Any, issuer: x509.Name | None, key: Any, *, ca: bool) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer or name).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                        critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


class TLSGateway:
    def __init__(self, tmp: Path, redis_url: str) -> None:
        ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
        ca = _cert("edgeexec test CA", ca_key, None, ca_key, ca=True)
        cert = _cert("127.0.0.1", ca_key, ca.subject, key, ca=False)
        self.ca_file, self.cert_file, self.key_file = tmp / "ca.pem", tmp / "gateway.pem", tmp / "gateway.key"
        self.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        self.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self.key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))
        self.tmp, self.keys = tmp, Keys(f"tls{uuid.uuid4().hex[:8]}")
        self.client = redis.Redis.from_url(redis_url, decode_responses=True)
        self.port, self.proc = start_gateway(redis_url, self.keys.prefix, tmp / "gateway.log", "--ssl-certfile",
                                             str(self.cert_file), "--ssl-keyfile", str(self.key_file))

    def agent(self, name: str, *extra: str) -> Proc:
        token, _ = token_store.create(self.client, self.keys, agent=name, queues=("q",), admin=False, ttl_s=None)
        env = {"PATH": f"{BIN}:{os.environ.get('PATH', '')}", "AIRFLOW_HOME": str(self.tmp / "airflow"),
               "AIRFLOW__EDGEEXEC__TOKEN": token}
        return Proc([str(BIN / "agent"), "start", "-q", "q", "--name", name, "--url",
                     f"wss://127.0.0.1:{self.port}/ws/agent", *extra], env=env, log=self.tmp / f"{name}.log")


@pytest.fixture(scope="module")
def tls(redis_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSGateway]:
    gw = TLSGateway(Path(tmp_path_factory.mktemp("tls")), redis_server.url)
    yield gw
    gw.proc.stop()


def test_agent_verifies_the_gateway_with_its_ca_file(tls: TLSGateway) -> None:
    """With --ca-file the agent connects over wss:// and registers."""
    agent = tls.agent("tls-ok", "--ca-file", str(tls.ca_file))
    try:
        wait_for(lambda: tls.client.hget(tls.keys.agent("tls-ok"), "connected") == "1", 60, "the wss:// session")
    finally:
        agent.stop()


def test_agent_refuses_an_unverified_gateway(tls: TLSGateway) -> None:
    """Without the CA the certificate is refused: no session, and the log says why."""
    agent = tls.agent("tls-untrusted")
    try:
        wait_for(lambda: "certificate verify failed" in (agent.log.read_text() if agent.log else ""), 60,
                 "the verification failure in the agent's log")
        assert not tls.client.exists(tls.keys.agent("tls-untrusted"))
    finally:
        agent.stop()


def test_https_health_and_operator_cli_over_tls(tls: TLSGateway) -> None:
    """Health answers over https://, and the operator CLI reaches /ws/control over wss:// with --ca-file."""
    ctx = ssl.create_default_context(cafile=str(tls.ca_file))
    with urllib.request.urlopen(f"https://127.0.0.1:{tls.port}/health", context=ctx, timeout=10) as r:
        assert r.status == 200
    admin, _ = token_store.create(tls.client, tls.keys, agent="", queues=(), admin=True, ttl_s=None)
    out = subprocess.run([str(BIN / "agent"), "status", "--json", "--url", f"wss://127.0.0.1:{tls.port}/ws/agent",
                          "--ca-file", str(tls.ca_file)], env={"PATH": str(BIN), "AIRFLOW__EDGEEXEC__ADMIN_TOKEN": admin},
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
