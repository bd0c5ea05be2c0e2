"""The front proxy's bounds (deploy/haproxy/haproxy.cfg), against real HAProxy, waitress and
Redis: slow clients (slowloris) never reach or starve the web processes, a web process gets
at most its maxconn requests at a time, and one client's flood is answered 429 JSON while
other clients are served. Traffic goes only to 127.0.0.1 (and 127.0.0.2 as a second client);
every loop is bounded."""
import http.client
import json
import socket

import pytest

from tests.proxy import FrontProxy, behind_proxy_ini
from tests.servers import Web, wait_until

pytestmark = pytest.mark.e2e

HALF_BODIES = 110   # over waitress's connection_limit (100): forwarded, they would starve it
HALF_HEADS = 20


@pytest.fixture
def web(tmp_path, redis_server):
    # production.ini's idle bounds (channel_timeout 60 s): a held connection stays held.
    process = Web(tmp_path, redis_server.url, ini=behind_proxy_ini(tmp_path))
    try:
        yield process.start()
    finally:
        process.stop()


@pytest.fixture
def proxy(tmp_path, web):
    front = FrontProxy(tmp_path, {"web": f"127.0.0.1:{web.port}"}, admin_socket=tmp_path / "haproxy.sock")
    try:
        yield front.start()
    finally:
        front.stop()


def test_slow_clients_never_reach_the_web_processes_and_healthz_still_answers(proxy):
    held = []
    try:
        for i in range(HALF_BODIES + HALF_HEADS):
            sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
            held.append(sock)
            if i < HALF_BODIES:  # whole head, a tenth of the body announced
                sock.sendall(b"POST /menu HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                             b"Content-Length: 100\r\n\r\n[{\"comer\":")
            else:  # half a head
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        wait_until(lambda: int(proxy.stat("foodapp", "FRONTEND")["scur"]) >= len(held), 30,
                   f"the proxy to hold the {len(held)} slow connections")

        status, _, body = proxy.request("GET", "/healthz", timeout=10)
        assert status == 200, body
        server = proxy.stat("waitress", "web")
        # None of the slow requests went to the web process (option http-buffer-request: the
        # proxy waits for the whole request), which never had more than its maxconn at once.
        assert int(server["stot"]) < HALF_BODIES // 2, server
        assert server["slim"] == "32" and int(server["smax"]) <= 32, server

        # The proxy gives up on a slow client (timeout http-request): 408 JSON, then it closes.
        for sock, what in ((held[-1], "a half-sent head"), (held[0], "a half-sent body")):
            sock.settimeout(60)
            answer = b""
            while chunk := sock.recv(4096):  # until the proxy closes; bounded by the timeout
                answer += chunk
            assert b" 408 " in answer.split(b"\r\n", 1)[0], (what, answer)
        # deploy/haproxy/408.http once the head is in (HAProxy 2.6 answers a head that never
        # completes with its own built-in 408 page).
        assert b'"error": "request_timeout"' in answer, answer
    finally:
        for sock in held:
            sock.close()


def get(port, path, source="127.0.0.1"):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def test_one_clients_flood_is_answered_429_json_and_others_are_served(tmp_path, web):
    proxy = FrontProxy(tmp_path, {"web": f"127.0.0.1:{web.port}"}, rate_limit=20).start()
    try:
        answers = []
        for _ in range(200):
            answers.append(get(proxy.port, "/healthz"))
            if answers[-1][0] == 429:
                break
        status, headers, body = answers[-1]
        assert status == 429, [a[0] for a in answers]
        assert sum(a[0] == 200 for a in answers) >= 15, [a[0] for a in answers]  # the start-up checks count too
        assert headers["content-type"] == "application/json" and int(headers["retry-after"]) > 0, headers
        refusal = json.loads(body)
        assert refusal["error"] == "too_many_requests" and "Retry-After" in refusal["message"], refusal
        # Another client address is not limited by this one's flood.
        assert get(proxy.port, "/healthz", source="127.0.0.2")[0] == 200
    finally:
        proxy.stop()
