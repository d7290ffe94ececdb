"""REST: the payments ledger (CONTRACT.md, "Payments ledger").

Both writes answer 201 with a receipt. Errors: a bad or over-the-cap amount
400 naming `amount_cents`; tipping oneself 400 naming `to`; an unknown user
or a photo the tipper cannot see 404; insufficient funds 409 naming
`amount_cents` (the request is well-formed, the wallet's state refuses it:
a Conflict, as a taken username is); the primary unreachable, or contention
past the retry bound, 503 with Retry-After. Both require an Idempotency-Key
(the route table says so; the idempotency middleware enforces it).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from handlers.auth import require_user
from handlers.jsonio import json_response, read_json_object
from handlers.serialize import iso
from picshare import keys
from picshare.payments import Receipt


async def get_wallet(request: web.Request) -> web.Response:
    wallet = await request.app[keys.PAYMENTS].wallet(require_user(request).id)
    return json_response({"balance_cents": wallet.balance_cents, "currency": wallet.currency})


async def topup(request: web.Request) -> web.Response:
    user = require_user(request)
    body = await read_json_object(request)
    receipt = await request.app[keys.PAYMENTS].topup(
        user, body.get("amount_cents"), request_key=_request_key(request)
    )
    return json_response(receipt_json(receipt), status=201)


async def tip(request: web.Request) -> web.Response:
    user = require_user(request)
    body = await read_json_object(request)
    receipt = await request.app[keys.PAYMENTS].tip(
        user,
        body.get("to"),
        body.get("amount_cents"),
        body.get("photo_id"),
        request_key=_request_key(request),
    )
    return json_response(receipt_json(receipt), status=201)


def _request_key(request: web.Request) -> str:
    """The Idempotency-Key (the middleware has checked it is there and valid),
    kept with the transfer: the ledger's own guard against running twice."""
    return request.headers["Idempotency-Key"]


def receipt_json(r: Receipt) -> dict[str, Any]:
    return {
        "id": str(r.id),
        "kind": r.kind.value,
        "amount_cents": r.amount_cents,
        "currency": r.currency,
        "from": None if r.sender is None else {"username": r.sender},
        "to": {"username": r.receiver},
        "photo_id": None if r.photo_id is None else str(r.photo_id),
        "created_at": iso(r.created_at),
        "balance_cents": r.balance_cents,
    }
