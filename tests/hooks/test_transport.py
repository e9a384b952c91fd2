"""The connection's TLS and proxy extras (`verify`, `cert`, `proxies`) hold for every thread's session.

The Cherry sandbox's app is served over TLS on loopback with certificates made here (a private CA, a server
certificate for 127.0.0.1, a client certificate), and a small forward proxy on loopback relays plain-HTTP requests
to the sandbox, counting what it relayed and from how many client connections.
"""

from __future__ import annotations

import datetime as dt
import http.client
import ipaddress
import socket
import ssl
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cherry_sync.hooks import errors
from cherry_sync.hooks.base import RetrySettings
from tests.hooks.conftest import FAST, cherry_hook

TWO_TRIES = RetrySettings(**{**FAST.__dict__, "max_attempts": 2})
THREADS = 4


# -- certificates ---------------------------------------------------------------------------------


def _certificate(subject: str, issuer_key, issuer_name, key, *, ca: bool = False, ip: str | None = None):
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer_name or x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ip:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), False)
    return builder.sign(issuer_key or key, hashes.SHA256())


def _write(folder: Path, name: str, cert, key) -> tuple[str, str]:
    cert_path, key_path = folder / f"{name}.pem", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_path), str(key_path)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, tuple[str, str]]:
    folder = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("cherry-sync test CA", None, None, ca_key, ca=True)
    server_key, client_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    return {
        "ca": _write(folder, "ca", ca, ca_key),
        "server": _write(
            folder, "server", _certificate("127.0.0.1", ca_key, ca.subject, server_key, ip="127.0.0.1"), server_key
        ),
        "client": _write(
            folder, "client", _certificate("cherry-sync worker", ca_key, ca.subject, client_key), client_key
        ),
    }


def _serve_tls(app, pki, *, client_cert: bool) -> tuple[str, uvicorn.Server, threading.Thread]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    extra = {"ssl_ca_certs": pki["ca"][0], "ssl_cert_reqs": ssl.CERT_REQUIRED} if client_cert else {}
    config = uvicorn.Config(
        app,
        log_level="error",
        access_log=False,
        lifespan="off",
        ssl_certfile=pki["server"][0],
        ssl_keyfile=pki["server"][1],
        **extra,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive(), "the TLS server did not start"
        threading.Event().wait(0.02)
    return f"https://127.0.0.1:{sock.getsockname()[1]}", server, thread


@pytest.fixture
def tls_cherry(cherry_sandbox, pki):
    """The Cherry sandbox's app over TLS (server certificate from the test CA); yields (base_url, sandbox)."""
    url, server, thread = _serve_tls(cherry_sandbox.app, pki, client_cert=False)
    yield url, cherry_sandbox
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def mtls_cherry(cherry_sandbox, pki):
    """The same, asking every client for a certificate signed by the test CA."""
    url, server, thread = _serve_tls(cherry_sandbox.app, pki, client_cert=True)
    yield url, cherry_sandbox
    server.should_exit = True
    thread.join(10)


def _from_threads(call, count: int = 2 * THREADS) -> list:
    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(lambda _: call(), range(count)))


# -- TLS ------------------------------------------------------------------------------------------


def test_a_private_ca_is_trusted_through_verify_on_every_thread(tls_cherry, pki):
    url, cherry = tls_cherry
    key = cherry.practices[0].api_key
    untrusted = cherry_hook(url, api_key=key, retry=TWO_TRIES)
    with pytest.raises(errors.ApiUnavailableError):
        untrusted.get_practice()  # the default: verified against the system's CAs, which do not know ours

    trusting = cherry_hook(url, api_key=key, verify=pki["ca"][0])
    ids = _from_threads(lambda: trusting.get_practice()["id"])
    assert ids == [cherry.practices[0].id] * len(ids)
    assert trusting.calls["GET /v1/practice"] == len(ids)


def test_verify_false_from_the_connection_form(tls_cherry):
    url, cherry = tls_cherry
    hook = cherry_hook(url, practice=0, api_key=cherry.practices[0].api_key, verify="false")
    assert hook.get_practice()["id"] == cherry.practices[0].id
    assert hook.get_conn().verify is False


def test_a_client_certificate_through_cert_on_every_thread(mtls_cherry, pki):
    url, cherry = mtls_cherry
    key = cherry.practices[0].api_key
    without = cherry_hook(url, api_key=key, retry=TWO_TRIES, verify=pki["ca"][0])
    with pytest.raises(errors.ApiError):
        without.get_practice()  # the server refuses the handshake

    with_cert = cherry_hook(url, api_key=key, verify=pki["ca"][0], cert=list(pki["client"]))
    ids = _from_threads(lambda: with_cert.get_practice()["id"])
    assert ids == [cherry.practices[0].id] * len(ids)


def test_a_malformed_tls_or_proxy_extra_is_refused_without_its_value(cherry_sandbox):
    secret_proxy = "http://user:s3cret-proxy-pass@127.0.0.1:9"
    for extra in ({"proxies": secret_proxy}, {"cert": 42}, {"verify": 3}):
        hook = cherry_hook(cherry_sandbox, **extra)
        with pytest.raises(errors.ValidationError) as info:
            hook.get_practice()
        assert "s3cret" not in str(info.value) and list(extra)[0] in str(info.value)
    assert cherry_sandbox.stats()["total"] == 0


# -- proxies --------------------------------------------------------------------------------------


class _Relay(BaseHTTPRequestHandler):
    """A forward proxy for plain HTTP to loopback: relays the request, counts it and its client connection."""

    protocol_version = "HTTP/1.1"

    def _relay(self) -> None:
        target = urlsplit(self.path)
        if target.hostname != "127.0.0.1":  # loopback only
            self.send_error(403)
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("proxy-connection", "connection")}
        upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=10)
        try:
            upstream.request(self.command, target.path + (f"?{target.query}" if target.query else ""), body, headers)
            answer = upstream.getresponse()
            payload = answer.read()
        finally:
            upstream.close()
        with self.server.lock:
            self.server.relayed.append(self.client_address[1])
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = _relay

    def log_message(self, *args) -> None:  # request lines carry query values: not printed
        pass


@pytest.fixture
def proxy():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Relay)
    server.daemon_threads = True
    server.relayed, server.lock = [], threading.Lock()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_proxies_carry_every_request_of_every_thread(cherry_sandbox, proxy, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "*")  # the environment is not read (trust_env is off): the extra decides
    proxy_url = f"http://127.0.0.1:{proxy.server_address[1]}"
    direct = cherry_hook(cherry_sandbox)
    direct.get_practice()
    assert proxy.relayed == []

    hook = cherry_hook(cherry_sandbox, proxies={"http": proxy_url})
    ids = _from_threads(lambda: hook.get_practice()["id"])
    assert ids == [cherry_sandbox.practices[0].id] * len(ids)
    assert len(proxy.relayed) == len(ids) == hook.calls["GET /v1/practice"]
    assert len(set(proxy.relayed)) >= 2  # the threads' own sessions, each with its own connection to the proxy
    pages = list(hook.iter_patient_pages(limit=15))  # a paged list goes the same way
    assert len(proxy.relayed) == len(ids) + len(pages)
