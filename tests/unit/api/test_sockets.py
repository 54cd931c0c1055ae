"""The agent's connections get a send buffer that takes an artifact chunk whole, where the
kernel's cap lets it be at least as large as the kernel's own sizing; never smaller."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl

import httpx
import pytest

from tests.support.fake_server import API_KEY, IDENTITY
from training_agent.api import BackendClient
from training_agent.api.sockets import (
    SEND_BUFFER_BYTES,
    backend_transport,
    send_buffer_options,
    socket_options,
)
from training_agent.errors import TrainingAgentError

MIB = 1024 * 1024
SNDBUF = (socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)


@pytest.mark.parametrize(
    ("wmem_max", "tcp_wmem_max", "expected"),
    [
        (4 * MIB, 4 * MIB, [SNDBUF]),  # granted 8 MiB, the kernel would reach 4
        (2 * MIB, 4 * MIB, [SNDBUF]),  # capped to 2, doubled: as large as the kernel's
        (212992, 4 * MIB, []),  # a common default cap: fixed would be smaller, so not set
        (None, 4 * MIB, []),  # not Linux, or /proc unreadable
        (4 * MIB, None, []),
    ],
)
def test_the_send_buffer_is_set_only_where_it_is_not_smaller(
    wmem_max: int | None, tcp_wmem_max: int | None, expected: list[tuple[int, int, int]]
) -> None:
    assert send_buffer_options(wmem_max, tcp_wmem_max) == expected


@pytest.mark.parametrize("variable", ["HTTPS_PROXY", "http_proxy", "ALL_PROXY"])
def test_a_proxy_in_the_environment_keeps_httpxs_own_transport(
    variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A transport of ours would make httpx ignore the proxy variables.
    monkeypatch.setenv(variable, "http://proxy.invalid:3128")
    assert backend_transport(ssl.create_default_context()) is None


async def test_the_clients_connection_has_the_send_buffer(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.delenv("all_proxy", raising=False)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    buffers: list[int] = []

    async def note(response: httpx.Response) -> None:
        sock = response.extensions["network_stream"].get_extra_info("socket")
        buffers.append(sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF))

    async with (
        server,
        BackendClient(
            base_url=f"http://127.0.0.1:{port}",
            api_key=API_KEY,
            identity=IDENTITY,
            on_response=note,
        ) as client,
    ):
        with contextlib.suppress(
            TrainingAgentError
        ):  # a 204 is no poll answer; only the socket counts
            await client.poll()
    assert len(buffers) == 1
    if socket_options():
        assert buffers[0] >= SEND_BUFFER_BYTES  # Linux reports it doubled, capped or not
    else:
        assert buffers[0] < SEND_BUFFER_BYTES  # the kernel's own sizing, left alone
