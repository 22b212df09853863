"""``http_server``: a real uvicorn server on loopback with a short request deadline.

Each client is a raw socket, so a test can send half a request head, a trickle, or
nothing at all, as a slowloris client does, and see when the server hangs up.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from telemetry_contract.http_server import server_config
from telemetry_contract.listeners import ListenError, listen

#: Short, so the suite stays fast; the product's is REQUEST_TIMEOUT_S.
DEADLINE = 0.4
#: How long the test waits for a hang-up before calling the connection held.
PATIENCE = 5.0
#: What the app takes to answer: longer than the deadline, which must not cut it.
APP_SECONDS = DEADLINE * 2


async def slow_app(scope: dict[str, object], receive: object, send: object) -> None:
    assert scope["type"] == "http"
    while True:  # read the whole body, as an endpoint would
        message = await receive()  # type: ignore[operator]
        if not message.get("more_body"):
            break
    await asyncio.sleep(APP_SECONDS)
    start = {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
    await send(start)  # type: ignore[operator]
    await send({"type": "http.response.body", "body": b"ok"})  # type: ignore[operator]


@pytest.fixture
def server() -> Iterator[tuple[str, int]]:
    sock = listen("127.0.0.1", 0, "TT_TEST_PORT")
    config = server_config(slow_app, log_level="warning", lifespan="off", request_timeout=DEADLINE)
    served = uvicorn.Server(config)
    thread = threading.Thread(target=served.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not served.started and time.monotonic() < deadline:
        time.sleep(0.01)
    assert served.started
    try:
        yield sock.getsockname()[:2]
    finally:
        served.should_exit = True
        thread.join(10)
        sock.close()


def connect(address: tuple[str, int]) -> socket.socket:
    client = socket.create_connection(address, timeout=PATIENCE)
    return client


def closed_after(client: socket.socket) -> float:
    """Seconds until the server hangs up (reads and discards any answer until then)."""
    start = time.monotonic()
    try:
        while client.recv(4096):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        pytest.fail(f"the server held the connection for more than {PATIENCE}s")
    return time.monotonic() - start


def test_a_connection_that_sends_nothing_is_closed(server: tuple[str, int]) -> None:
    with connect(server) as client:
        assert closed_after(client) < PATIENCE


def test_a_request_head_that_never_ends_is_closed(server: tuple[str, int]) -> None:
    with connect(server) as client:
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        assert closed_after(client) < PATIENCE


def test_a_trickled_head_is_closed_at_the_deadline_not_reset_by_each_byte(
    server: tuple[str, int],
) -> None:
    with connect(server) as client:
        start = time.monotonic()
        client.sendall(b"GET / HTTP/1.1\r\n")
        hung_up = False
        for _ in range(int(PATIENCE / (DEADLINE / 4))):
            time.sleep(DEADLINE / 4)
            try:
                client.sendall(b"X-Slow: 1\r\n")
            except (BrokenPipeError, ConnectionResetError):
                hung_up = True
                break
        if not hung_up:
            closed_after(client)
        assert time.monotonic() - start < PATIENCE


def test_a_body_that_never_arrives_is_closed(server: tuple[str, int]) -> None:
    with connect(server) as client:
        client.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        assert closed_after(client) < PATIENCE


def test_a_slow_app_is_not_cut_and_keep_alive_gets_a_fresh_deadline(
    server: tuple[str, int],
) -> None:
    with connect(server) as client:
        for _ in range(2):  # the second request comes on the same connection
            client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = b""
            while not answer.endswith(b"ok"):
                chunk = client.recv(4096)
                assert chunk, f"closed before the answer: {answer!r}"
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 200"), answer
            time.sleep(DEADLINE / 2)
        # Idle after the answers: closed (by the deadline or uvicorn's keep-alive timer).
        assert closed_after(client) < PATIENCE


def test_listen_names_the_address_and_the_setting() -> None:
    with listen("127.0.0.1", 0, "TT_A_PORT") as taken:
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ListenError) as caught:
            listen("127.0.0.1", port, "TT_B_PORT")
    message = str(caught.value)
    assert message == f"cannot listen on 127.0.0.1:{port} (TT_B_PORT): Address already in use"
    with pytest.raises(ListenError, match=r"cannot listen on no\.such\.host\.invalid:1 \(TT_C\)"):
        listen("no.such.host.invalid", 1, "TT_C")


def test_listen_makes_a_tcp_socket_that_asyncio_turns_nagle_off_on() -> None:
    """asyncio sets TCP_NODELAY only on sockets whose proto is IPPROTO_TCP; with proto 0
    (uvicorn's own bind) every kept-alive answer waited ~40 ms for a delayed ACK."""
    with listen("127.0.0.1", 0, "TT_A_PORT") as sock:
        assert sock.proto == socket.IPPROTO_TCP
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
