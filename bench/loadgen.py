"""A load generator in pure Python: N keep-alive HTTP/1.1 connections, each sending the next signed
evaluation as soon as the previous answer arrives (closed loop, like `wrk -c N`).

Run as its own process so that its CPU does not compete with the bench's other threads for the GIL:

    python -m bench.loadgen --url http://127.0.0.1:3000 --secret whsec_... --agents agents.txt --seconds 15

Prints one JSON line: requests, errors, seconds, throughput and latency percentiles.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import random
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from bench.world import evaluation_payload


class Signer:
    """Standard Webhooks signatures (the same bytes the `standardwebhooks` package produces)."""

    def __init__(self, secret: str) -> None:
        self.key = base64.b64decode(secret.removeprefix("whsec_"))

    def headers(self, msg_id: str, body: bytes) -> bytes:
        stamp = str(int(time.time()))
        mac = hmac.new(self.key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
        sig = base64.b64encode(mac).decode()
        return (
            f"webhook-id: {msg_id}\r\nwebhook-timestamp: {stamp}\r\nwebhook-signature: v1,{sig}\r\n"
        ).encode()


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def _connection(
    host: str,
    port: int,
    bodies: list[bytes],
    signer: Signer,
    stop_at: float,
    latencies: list[float],
    statuses: dict[int, int],
    counter: list[int],
    run: str,
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    head = f"POST /webhooks/qa HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n".encode()
    try:
        while time.perf_counter() < stop_at:
            n = counter[0]
            counter[0] += 1
            body = bodies[n % len(bodies)].replace(b"@SEQ@", str(n).encode(), 1)
            request = (
                head
                + f"Content-Length: {len(body)}\r\n".encode()
                + signer.headers(f"msg_{run}_{n}", body)
                + b"\r\n"
                + body
            )
            start = time.perf_counter()
            writer.write(request)
            # A server that stops answering ends the run (with what was measured) instead of hanging it.
            status_line = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=60)
            lines = status_line.split(b"\r\n")
            status = int(lines[0].split()[1])
            length = 0
            for line in lines[1:]:
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()


async def run_load(
    url: str, secret: str, agents: list[str], seconds: float, connections: int, seed: int = 1
) -> dict[str, Any]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    rng = random.Random(seed)
    run = f"{seed}-{int(time.time() * 1000)}"
    now = datetime.now(UTC)
    # Bodies are prepared up front (an @SEQ@ hole makes each id unique); signing happens per request.
    bodies = [
        json.dumps(
            evaluation_payload(rng, f"lg-{run}-@SEQ@", agents[i % len(agents)], now), separators=(",", ":")
        ).encode()
        for i in range(max(len(agents), 2000))
    ]
    rng.shuffle(bodies)
    signer = Signer(secret)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    counter = [0]
    start = time.perf_counter()
    stop_at = start + seconds
    await asyncio.gather(
        *(
            _connection(host, port, bodies, signer, stop_at, latencies, statuses, counter, run)
            for _ in range(connections)
        )
    )
    elapsed = time.perf_counter() - start
    ok = sum(v for k, v in statuses.items() if 200 <= k < 300)
    return {
        "requests": len(latencies),
        "ok": ok,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "seconds": elapsed,
        "rate": ok / elapsed,
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "max": max(latencies, default=float("nan")),
        "body_bytes": sum(len(b) for b in bodies) / len(bodies),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--agents", required=True, help="file with one agent email per line")
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with open(args.agents, encoding="utf-8") as fh:
        agents = [line.strip() for line in fh if line.strip()]
    result = asyncio.run(run_load(args.url, args.secret, agents, args.seconds, args.connections, args.seed))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
