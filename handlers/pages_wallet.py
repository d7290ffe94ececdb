"""The wallet page (`/wallet`) and its two forms: top up, send a tip.

People type amounts in the currency's units ("5", "2.50"); the API takes
integer cents. The service's errors name `amount_cents`; the page's field is
`amount`, so they are shown against that.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from handlers.pages import form_error, page_user, read_form, render, see_other
from handlers.serialize import iso
from picshare import keys
from picshare.errors import DomainError, FieldError, invalid
from picshare.payments import money_text
from storage.records import UserRecord

RECENT = 20  # transfers listed
_AMOUNT = re.compile(r"\s*\$?\s*(\d{1,9})(?:[.,](\d{1,2}))?\s*")


def cents_of(text: str) -> int:
    """'2.5' -> 250; anything that is not a plain amount is a 400 naming `amount`."""
    match = _AMOUNT.fullmatch(text)
    if match is None:
        raise invalid("amount", "must be an amount like 5 or 2.50")
    whole, part = match.groups()
    return int(whole) * 100 + int((part or "0").ljust(2, "0"))


async def _context(request: web.Request, user: UserRecord) -> dict[str, Any]:
    payments = request.app[keys.PAYMENTS]
    wallet = await payments.wallet(user.id)
    moves = await payments.movements(user.id, limit=RECENT)
    return {
        "balance": money_text(wallet.balance_cents, wallet.currency),
        "currency": wallet.currency,
        "moves": [
            {
                "kind": m.kind.value,
                "incoming": m.amount_cents > 0,
                "amount": money_text(m.amount_cents, wallet.currency),
                "counterparty": m.counterparty,
                "photo_id": None if m.photo_id is None else str(m.photo_id),
                "created_at": iso(m.created_at),
            }
            for m in moves
        ],
    }


async def wallet_page(request: web.Request) -> web.StreamResponse:
    user = page_user(request, "/wallet")
    return await render(
        request,
        "wallet.html",
        values={},
        done=request.query.get("done", ""),
        **await _context(request, user),
    )


async def topup_submit(request: web.Request) -> web.StreamResponse:
    form = await read_form(request)
    user = page_user(request, "/wallet")
    try:
        await request.app[keys.PAYMENTS].topup(user, cents_of(form.get("amount", "")))
    except DomainError as exc:
        return await _again(request, user, exc, form, "topup")
    raise see_other("/wallet?done=topup")


async def tip_submit(request: web.Request) -> web.StreamResponse:
    form = await read_form(request)
    user = page_user(request, "/wallet")
    photo_id = form.get("photo_id", "").strip() or None
    try:
        await request.app[keys.PAYMENTS].tip(
            user, form.get("to", "").strip(), cents_of(form.get("amount", "")), photo_id
        )
    except DomainError as exc:
        return await _again(request, user, exc, form, "tip")
    raise see_other("/wallet?done=tip")


async def _again(
    request: web.Request, user: UserRecord, exc: DomainError, form: dict[str, str], which: str
) -> web.Response:
    """The page again, the error beside the form that caused it."""
    exc.errors = [
        FieldError("amount" if e.field == "amount_cents" else e.field, e.message)
        for e in exc.errors
    ]
    return await form_error(
        request,
        "wallet.html",
        exc,
        {**form, "form": which},
        done="",
        **await _context(request, user),
    )
