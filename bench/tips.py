"""Tips per second through the payments ledger, and how contended it was.

A real `run.py serve` (its embedded PostgreSQL; access log off, rate limits
raised by run_all) gets 20 users, each topped up, then 16 concurrent clients
send tips between random pairs for a fixed time (5 s; `--quick`: 1 s), each
with its own Idempotency-Key (why this is an aiohttp loop and not wrk). Every
tip is one SERIALIZABLE transaction on the primary; the retries after
serialization failures are read from `/metrics` (picshare_payment_retries).
Afterwards the wallets must still hold exactly what was topped up. Twenty
wallets among sixteen clients is far more contended than real use (nearly
every tip shares a wallet with another in flight): a tip still losing after
`payments.max_attempts` answers 503, counted here.
"""

from __future__ import annotations

import asyncio
import random
import re
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import aiohttp

from bench._common import Options, Row, picshare_server, say, signup

USERS = 20
CLIENTS = 16
TOPUP_CENTS = 50_000  # the default payments.max_topup_cents
_RETRIES = re.compile(r"^picshare_payment_retries_total ([0-9.e+]+)$", re.MULTILINE)


async def _retries(session: aiohttp.ClientSession, base: str) -> int:
    async with session.get(f"{base}/metrics") as resp:
        match = _RETRIES.search(await resp.text())
    if match is None:
        raise RuntimeError("/metrics has no picshare_payment_retries_total")
    return int(float(match.group(1)))


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Idempotency-Key": str(uuid.uuid4())}


async def run(opts: Options) -> list[Row]:
    seconds = 1.0 if opts.quick else 5.0
    with tempfile.TemporaryDirectory(prefix="picshare-bench-tips-") as tmp:
        server, base = picshare_server(
            Path(tmp) / "data", env={"PICSHARE_SERVER_ACCESS_LOG": "false"}
        )
        async with (
            server,
            aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=30),
                connector=aiohttp.TCPConnector(limit=CLIENTS + 4),
            ) as session,
        ):
            names = [f"tipper{i:02d}" for i in range(USERS)]
            tokens = {n: await signup(session, base, n) for n in names}
            for token in tokens.values():
                async with session.post(
                    f"{base}/api/v1/wallet/topup",
                    json={"amount_cents": TOPUP_CENTS},
                    headers=_auth(token),
                ) as resp:
                    if resp.status != 201:
                        raise RuntimeError(f"top-up answered {resp.status}: {await resp.text()}")
            before = await _retries(session, base)
            statuses: Counter[int] = Counter()
            deadline = time.perf_counter() + seconds

            async def client(seed: int) -> None:
                rng = random.Random(seed)
                while time.perf_counter() < deadline:
                    sender, receiver = rng.sample(names, 2)
                    body = {"to": receiver, "amount_cents": rng.randint(1, 500)}
                    async with session.post(
                        f"{base}/api/v1/payments/tips", json=body, headers=_auth(tokens[sender])
                    ) as resp:
                        await resp.read()
                        statuses[resp.status] += 1

            started = time.perf_counter()
            await asyncio.gather(*(client(i) for i in range(CLIENTS)))
            elapsed = time.perf_counter() - started
            retries = await _retries(session, base) - before
            total = 0
            for token in tokens.values():
                async with session.get(
                    f"{base}/api/v1/wallet", headers={"Authorization": f"Bearer {token}"}
                ) as resp:
                    total += (await resp.json())["balance_cents"]
    # 503: still losing conflicts after payments.max_attempts; the client may retry.
    unexpected = {s: n for s, n in statuses.items() if s not in (201, 409, 503)}
    if unexpected:
        raise RuntimeError(f"unexpected answers to tips: {unexpected}")
    if total != USERS * TOPUP_CENTS:
        raise RuntimeError(
            f"money created or lost: wallets hold {total}, not {USERS * TOPUP_CENTS}"
        )
    done = statuses[201]
    say(
        f"  {done / elapsed:,.0f} tips/s ({done} in {elapsed:.1f} s, {CLIENTS} clients,"
        f" {USERS} users); {retries} serialization retries; {statuses[409]} refused (funds);"
        f" {statuses[503]} gave up (503)"
    )
    return [
        (f"tips/s, {CLIENTS} clients, {USERS} users", f"{done / elapsed:,.0f}"),
        ("serialization retries", f"{retries} ({retries / max(done, 1):.2f} per tip)"),
        ("refused for insufficient funds (409)", str(statuses[409])),
        ("gave up past the retry bound (503)", str(statuses[503])),
        ("wallets still hold what was topped up", "yes"),
    ]
