"""`asyncjobs serve` as a real process on 127.0.0.1, spoken to over raw sockets:
header hygiene, HEAD, connection limits and timeouts, and addresses it cannot use."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest


@dataclass
class Answer:
    """What the server sent back, byte for byte."""

    status: int
    headers: dict[str, str]
    body: bytes


def address(base: str) -> tuple[str, int]:
    parts = urlsplit(base)
    return parts.hostname or "", parts.port or 80


def request(
    method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def exchange(base: str, raw: bytes) -> Answer:
    """Send one request and read until the server closes the connection."""
    with socket.create_connection(address(base), timeout=10) as sock:
        sock.sendall(raw)
        received = bytearray()
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = bytes(received).partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    return Answer(int(status_line.split()[1]), headers, body)


# -- headers -------------------------------------------------------------------------


def test_a_header_name_with_an_underscore_never_chooses_the_tenant(server, client):
    job_id = client.submit("report", org="acme").job_id
    path = f"/analyze/jobs/{job_id}"
    alone = exchange(server, request("GET", path, {"X_Org_Id": "acme"}))
    assert alone.status == 400 and b"header is required" in alone.body
    # a gateway sets X-Tenant-Id; the client's X_Org_Id must not pass for X-Org-Id
    spoofed = request("GET", path, {"X-Tenant-Id": "globex", "X_Org_Id": "acme"})
    assert exchange(server, spoofed).status == 404
    assert exchange(server, request("GET", path, {"X-Tenant-Id": "acme"})).status == 200


# -- HEAD ----------------------------------------------------------------------------


def test_head_answers_as_get_does_but_without_a_body(server, client):
    job_id = client.submit("report", org="acme").job_id
    for path, headers in [
        ("/openapi.json", {}),
        ("/health", {}),
        (f"/analyze/jobs/{job_id}", {"X-Org-Id": "acme"}),
        (f"/analyze/jobs/{job_id}", {"X-Org-Id": "globex"}),
        (f"/analyze/jobs/{job_id}", {}),
        ("/nope", {}),
    ]:
        got = exchange(server, request("GET", path, headers))
        head = exchange(server, request("HEAD", path, headers))
        assert head.body == b"" and got.body, path
        assert head.status == got.status, path
        for answer in (got, head):
            del answer.headers["Date"], answer.headers["X-Request-ID"]
        assert head.headers == got.headers, path
        assert int(head.headers["Content-Length"]) == len(got.body), path


# -- addresses it cannot use -------------------------------------------------------


@pytest.mark.parametrize("host", ["not a host", "192.0.2.1"])
def test_a_host_serve_cannot_listen_on_exits_2_with_one_line(console, host):
    outcome = console("serve", "--host", host, "--port", "0", timeout=30)
    assert outcome.exit_code == 2, outcome.stderr
    [line] = outcome.stderr.splitlines()
    assert line.startswith(f"error: --host: cannot listen on {host!r}: "), line


def test_a_port_in_use_exits_2_naming_the_port(console):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        outcome = console("serve", "--port", str(port), timeout=30)
    assert outcome.exit_code == 2, outcome.stderr
    assert outcome.stderr.lower() == (
        f"error: --port: cannot listen on 127.0.0.1:{port}: address already in use\n"
    )
