"""Flood an HTTP endpoint from many kept-alive connections at once, for a bounded time.

Run as a process of its own (``python tests/http_flood.py URL ...``) so its event loop does
not share a GIL with the test that measures the server meanwhile. Loopback only: it
refuses any other host. Prints ``flooding`` once it is on, then one JSON line: responses
by status, connection errors, and the time the flood ran.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import urllib.parse
from collections import Counter

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
#: Responses after which the flood is said to be on (one line, ``flooding``, on stdout).
READY_AFTER = 500
#: The most the connections may take to get going.
RAMP_UP_S = 60.0


async def _one(
    host: str, port: int, path: str, until: list[float], seconds: float, counts: Counter[str]
) -> None:
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    while time.monotonic() < until[0]:
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            counts["connect_error"] += 1
            await asyncio.sleep(0.05)
            continue
        try:
            while time.monotonic() < until[0]:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                status = head.split(b" ", 2)[1].decode()
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                counts[status] += 1
                counts["total"] += 1
                if counts["total"] == READY_AFTER:
                    until[0] = time.monotonic() + seconds  # ``seconds`` of full flood
                    print("flooding", flush=True)  # the caller measures from here
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            counts["closed"] += 1
        finally:
            writer.close()


async def flood(url: str, connections: int, seconds: float) -> dict[str, object]:
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "", parts.port or 80
    if host not in LOOPBACK:
        raise SystemExit(f"refusing to flood {host}: loopback only")
    counts: Counter[str] = Counter()
    start = time.monotonic()
    until = [start + RAMP_UP_S + seconds]  # until it is on, then ``seconds`` more
    await asyncio.gather(
        *(_one(host, port, parts.path or "/", until, seconds, counts) for _ in range(connections))
    )
    return {"counts": dict(counts), "seconds": round(time.monotonic() - start, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    if not 0 < args.connections <= 5000 or not 0 < args.seconds <= 60:
        raise SystemExit("connections must be 1..5000 and seconds 0..60")
    print(json.dumps(asyncio.run(flood(args.url, args.connections, args.seconds))), flush=True)


if __name__ == "__main__":
    main()
