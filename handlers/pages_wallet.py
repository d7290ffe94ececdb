"""The wallet page (`/wallet`) and its two forms: top up, send a tip.

People type amounts in the currency's units ("5", "2.50"); the API takes
integer cents. The service's errors name `amount_cents`; the page's field is
`amount`, so they are shown against that.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from handlers import form_keys
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
        form_key=form_keys.new_key(),
        done=request.query.get("done", ""),
        **await _context(request, user),
    )


async def topup_submit(request: web.Request) -> web.StreamResponse:
    async def topup(user: UserRecord, form: dict[str, str], key: str | None) -> None:
        amount = cents_of(form.get("amount", ""))
        await request.app[keys.PAYMENTS].topup(user, amount, request_key=key)

    return await _move(request, "topup", topup)


async def tip_submit(request: web.Request) -> web.StreamResponse:
    async def tip(user: UserRecord, form: dict[str, str], key: str | None) -> None:
        to, amount = form.get("to", "").strip(), cents_of(form.get("amount", ""))
        photo_id = form.get("photo_id", "").strip() or None
        await request.app[keys.PAYMENTS].tip(user, to, amount, photo_id, request_key=key)

    return await _move(request, "tip", tip)


Move = Callable[[UserRecord, dict[str, str], str | None], Awaitable[None]]


async def _move(request: web.Request, which: str, move: Move) -> web.StreamResponse:
    """A money form: the move, then back to the wallet saying it is done.

    The form's own key goes with the transfer (prefixed with the form's name,
    so a page's two forms and the API's keys never meet): the ledger makes
    one transfer per key in the transfer's own transaction, so a
    double-clicked tip moves money once and the second submission lands on
    the same "done" page."""
    form = await read_form(request)
    user = page_user(request, "/wallet")
    key = form.get(form_keys.FIELD) or None
    try:
        # Both forms of one page carry the same key: the form's name tells them apart.
        await move(user, form, None if key is None else f"form:{which}:{key}")
    except DomainError as exc:
        return await _again(request, user, exc, form, which)
    raise see_other(f"/wallet?done={which}")


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
        form_key=form_keys.new_key(),
        done="",
        **await _context(request, user),
    )
