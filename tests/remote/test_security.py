"""Securing the exchange_connector: TLS, private key checks, and `mm connector`'s refusals.

Certificates are made on the fly (self-signed for 127.0.0.1) with `cryptography`.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import signal
import subprocess
import sys
from decimal import Decimal as D
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from connectors.remote.server import ExchangeConnector, ServerConfig
from connectors.simulated.exchange import SimConfig, SimulatedExchange
from mm.engine.clock import VirtualClock
from mm.errors import ConfigError, ExchangeUnavailable
from tests.helpers import run
from tests.remote.rig import client_of, connector

ROOT = Path(__file__).resolve().parents[2]


def self_signed(directory: Path, key_mode: int = 0o600) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "opensqt-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "connector.crt", directory / "connector.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(key_mode)
    return cert_path, key_path


def venue() -> SimulatedExchange:
    return SimulatedExchange(SimConfig(balances={"USDT": D(1000)}), VirtualClock(1_700_000_000_000))


def test_tls_with_a_token_serves_clients_that_trust_the_certificate(tmp_path):
    cert, key = self_signed(tmp_path)

    async def scenario() -> None:
        tls = {"tls_cert": cert, "tls_key": key, "token": "tls-token-123456"}
        async with connector(venue(), **tls) as server:
            async with client_of(server, tls=True, ca_file=cert) as client:
                assert (await client.fetch_balances())["USDT"].free == D(1000)
                assert (await client.check_health()).ok
            with pytest.raises(ExchangeUnavailable):  # plaintext cannot talk to a TLS port
                async with client_of(server, call_timeout_s=2):
                    pass

    run(scenario())


def test_a_private_key_others_can_read_is_refused(tmp_path):
    cert, key = self_signed(tmp_path, key_mode=0o644)

    async def scenario() -> None:
        server = ExchangeConnector(venue(), ServerConfig(port=0, tls_cert=cert, tls_key=key))
        with pytest.raises(ConfigError, match="chmod 600"):
            await server.start()

    run(scenario())


def mm(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mm.cli", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_mm_connector_refuses_a_public_address_without_a_token():
    result = mm("connector", "--host", "0.0.0.0", "--port", "0")
    assert result.returncode == 2
    assert "set a token" in result.stderr and "0.0.0.0" in result.stderr


def test_mm_connector_names_a_bad_config_key(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("port: 50051\nstream_bufer: 10\n")
    result = mm("connector", "--config", str(config))
    assert result.returncode == 2
    assert "stream_bufer" in result.stderr


@pytest.mark.slow
def test_mm_connector_takes_its_token_from_the_environment_and_never_prints_it(tmp_path):
    token = "env-token-" + os.urandom(8).hex()
    config = tmp_path / "c.yaml"
    config.write_text(f"data_dir: {tmp_path / 'data'}\nport: 0\nhost: 0.0.0.0\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "mm.cli", "connector", "--config", str(config), "-v"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "MM_CONNECTOR_TOKEN": token},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = []
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if "healthy (SERVING)" in line:
                break
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = "".join(lines) + rest
    assert process.returncode == 0, output
    assert "token required" in output and "without TLS" in output
    assert "mm connector: stopped" in output
    assert token not in output
