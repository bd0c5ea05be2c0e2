"""A response leaves the web process in one TCP segment: its head and its body together.

Waitress's own task sends the status line and headers with one send() and the body with
another. A web process killed between the two (a host lost, the drill in
tests/test_drill_hosts.py) leaves the front proxy a head whose body never comes: it has
already passed the head on, so it cannot retry the order on the other host, and the client
reads a cut answer. Sent in one segment, the proxy gets the whole answer or nothing (and
then retries it, with the retry key).

The segments are counted on the wire: a packet socket on the loopback interface (root),
real waitress (`pserve testing.ini`), real Redis.
"""
import os
import socket

import pytest

from tests.servers import Web

ETH_P_IP = 0x0800  # bound to IPv4 frames, a packet socket sees each loopback packet once, coming in


def require_packet_socket():
    if os.geteuid() != 0:
        pytest.skip("counting TCP segments needs a packet socket: run the tests as root (CI does)")


def payload_segments(sniffer, from_port, to_port):
    """The payload sizes of the TCP segments from ``from_port`` to ``to_port`` captured so far.

    A packet is captured as it comes in, before TCP hands it to its receiver: once the
    client has read every answer, every segment of them is already queued on the sniffer.
    """
    sizes = []
    while True:
        try:
            frame = sniffer.recv(65535)
        except BlockingIOError:
            return sizes
        ip = frame[14:]
        if ip[9] != socket.IPPROTO_TCP:
            continue
        ihl = (ip[0] & 0x0F) * 4
        total = int.from_bytes(ip[2:4], "big")
        tcp = ip[ihl:total]
        source, destination = int.from_bytes(tcp[0:2], "big"), int.from_bytes(tcp[2:4], "big")
        payload = len(tcp) - (tcp[12] >> 4) * 4
        if (source, destination) == (from_port, to_port) and payload:
            sizes.append(payload)


def read_answer(client):
    """One HTTP/1.1 answer with a Content-Length, read whole; its status and size in bytes."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = client.recv(65536)
        assert chunk, f"the connection closed mid-answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        chunk = client.recv(65536)
        assert chunk, "the connection closed mid-body"
        body += chunk
    assert len(body) == length, "more bytes than one answer: the client sent one request at a time"
    return int(head.split(b" ", 2)[1]), len(head) + 4 + length


def test_an_answer_leaves_in_one_segment_head_and_body_together(tmp_path, redis_server):
    require_packet_socket()
    web = Web(tmp_path, redis_server.url).start()
    sniffer = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
    try:
        sniffer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sniffer.bind(("lo", 0))
        sniffer.setblocking(False)
        client = socket.create_connection(("127.0.0.1", web.port), timeout=10)
        payload_segments(sniffer, web.port, client.getsockname()[1])  # what came before the test's requests
        paths = [f"/comer/plato{i}" for i in range(10)] + ["/healthz", "/readyz", "/no/such/page"] * 2
        answers = []
        for path in paths:
            client.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            answers.append(read_answer(client))
        sizes = payload_segments(sniffer, web.port, client.getsockname()[1])
        client.close()
    finally:
        sniffer.close()
        web.stop()
    statuses = [status for status, _ in answers]
    assert statuses.count(202) == 10 and 200 in statuses and 404 in statuses, statuses
    # Counted both ways: every byte the client read went on the wire, in one segment an answer.
    assert sum(sizes) == sum(size for _, size in answers), (sizes, answers)
    assert sizes == [size for _, size in answers], \
        f"answers split over several segments: segment sizes {sizes}, answer sizes {[s for _, s in answers]}"
