"""The wallet page (`/wallet`) and its two forms: top up, send a tip.

People type amounts in the currency's units ("5", "2.50"); the API takes
integer cents. The service's errors name `amount_cents`; the page's field is
`amount`, so they are shown against that.
"""

from __future__ import annotations

import re
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
    form = await read_form(request)
    user = page_user(request, "/wallet")
    amount = form.get("amount", "")
    form_key = _form_key(form)

    async def topup() -> str:
        await request.app[keys.PAYMENTS].topup(user, cents_of(amount), request_key=form_key)
        return "/wallet?done=topup"

    try:
        # The form's own key: a double-clicked top-up charges once.
        location = await form_keys.once(
            request,
            user_id=user.id,
            form="topup",
            key=form.get(form_keys.FIELD),
            fingerprint=amount,
            action=topup,
        )
    except DomainError as exc:
        return await _again(request, user, exc, form, "topup")
    raise see_other(location)


async def tip_submit(request: web.Request) -> web.StreamResponse:
    form = await read_form(request)
    user = page_user(request, "/wallet")
    to, amount = form.get("to", "").strip(), form.get("amount", "")
    photo_id = form.get("photo_id", "").strip() or None
    form_key = _form_key(form)

    async def tip() -> str:
        await request.app[keys.PAYMENTS].tip(
            user, to, cents_of(amount), photo_id, request_key=form_key
        )
        return "/wallet?done=tip"

    try:
        # The form's own key: a double-clicked tip moves money once.
        location = await form_keys.once(
            request,
            user_id=user.id,
            form="tip",
            key=form.get(form_keys.FIELD),
            fingerprint=f"{to}\0{amount}\0{photo_id or ''}",
            action=tip,
        )
    except DomainError as exc:
        return await _again(request, user, exc, form, "tip")
    raise see_other(location)


def _form_key(form: dict[str, str]) -> str | None:
    """The form's own key, also kept with the transfer (prefixed: a form's
    keys and the API's never meet)."""
    key = form.get(form_keys.FIELD) or None
    return None if key is None else f"form:{key}"


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
