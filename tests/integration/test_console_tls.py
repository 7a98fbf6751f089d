"""The console over HTTPS with a self-signed certificate made by the test."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.integration.console_helpers import PASSWORD, add_user
from tests.integration.service import running_service, service_config

pytestmark = pytest.mark.integration


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (and its key) valid for a day."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "clonewatch test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_console_over_tls_sets_secure_cookie_and_hsts(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    config = service_config(tmp_path, http={"tls_cert": str(cert), "tls_key": str(key)})
    add_user(tmp_path / "clonewatch.db")
    trust = ssl.create_default_context(cafile=str(cert))  # verifies chain and 127.0.0.1
    async with running_service(config) as service:
        url = f"https://127.0.0.1:{service.http_port}"
        jar = aiohttp.CookieJar(unsafe=True)
        connector = aiohttp.TCPConnector(ssl=trust)
        async with aiohttp.ClientSession(cookie_jar=jar, connector=connector) as http:
            body = {"name": "alice", "password": PASSWORD}
            async with http.post(url + "/login", json=body) as resp:
                assert resp.status == 200
                cookie = resp.headers["Set-Cookie"]
                hsts = resp.headers["Strict-Transport-Security"]
            attributes = {a.strip().split("=")[0].lower() for a in cookie.split(";")}
            assert {"secure", "httponly", "samesite"} <= attributes
            assert "SameSite=Strict" in cookie
            assert "max-age=" in hsts and int(hsts.split("max-age=")[1].split(";")[0]) >= 86400
            async with http.get(url + "/api/me") as resp:  # the Secure cookie comes back
                assert resp.status == 200 and (await resp.json())["name"] == "alice"
                assert "Strict-Transport-Security" in resp.headers
            async with http.ws_connect(url + "/api/live", origin=url) as ws:  # wss:
                hello = json.loads((await ws.receive(timeout=5)).data)
                assert hello["type"] == "hello"
        async with aiohttp.ClientSession() as plain:
            with pytest.raises(aiohttp.ClientError):  # plain HTTP to the TLS port fails
                async with plain.get(f"http://127.0.0.1:{service.http_port}/healthz") as resp:
                    await resp.read()
            with pytest.raises(aiohttp.ClientConnectorCertificateError):  # not trusted
                async with plain.get(url + "/healthz") as resp:
                    await resp.read()
