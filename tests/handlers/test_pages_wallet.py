"""The `/wallet` page over plain HTTP: balance, the top-up and tip forms
(CSRF-protected, POST-redirect-GET), errors by their field, recent transfers."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from aiohttp.test_utils import TestClient

from handlers.pages_wallet import cents_of
from tests.conftest import signup
from tests.handlers.test_pages import HTML, browser_signup, csrf_of

Client = TestClient[Any, Any]


async def test_anonymous_visitors_log_in_first(client: Client) -> None:
    resp = await client.get("/wallet", headers=HTML, allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == "/login?next=/wallet"


async def test_topup_and_tip_forms_work_without_javascript(client: Client) -> None:
    await signup(client, "bob")
    await browser_signup(client, "webby")
    home = await (await client.get("/", headers=HTML)).text()
    assert 'href="/wallet"' in home  # in the nav for signed-in users
    page = await (await client.get("/wallet", headers=HTML)).text()
    assert "$0.00" in page and "No transfers yet." in page
    csrf = await csrf_of(client, "/wallet")

    resp = await client.post(
        "/wallet/topup", data={"csrf_token": csrf, "amount": "12.50"}, allow_redirects=False
    )
    assert (resp.status, resp.headers["Location"]) == (303, "/wallet?done=topup")
    resp = await client.post(
        "/wallet/tip",
        data={"csrf_token": csrf, "to": "bob", "amount": "2", "photo_id": ""},
        allow_redirects=False,
    )
    assert (resp.status, resp.headers["Location"]) == (303, "/wallet?done=tip")
    page = await (await client.get("/wallet?done=tip", headers=HTML)).text()
    assert 'id="balance">$10.50<' in page
    assert "Your tip was sent." in page
    assert "Tip to" in page and "@bob" in page and "-$2.00" in page
    assert "Top-up" in page and "+$12.50" in page


async def test_form_errors_are_shown_by_their_field_and_move_nothing(client: Client) -> None:
    await signup(client, "bob")
    await browser_signup(client, "webby")
    csrf = await csrf_of(client, "/wallet")
    short = await client.post(
        "/wallet/tip", data={"csrf_token": csrf, "to": "bob", "amount": "1"}, headers=HTML
    )
    assert short.status == 409
    text = await short.text()
    assert "<strong>amount</strong>: insufficient funds" in text
    assert 'value="bob"' in text  # the form keeps what was typed
    nobody = await client.post(
        "/wallet/tip", data={"csrf_token": csrf, "to": "ghost", "amount": "1"}, headers=HTML
    )
    assert nobody.status == 404
    bad = await client.post(
        "/wallet/topup", data={"csrf_token": csrf, "amount": "lots"}, headers=HTML
    )
    assert bad.status == 400
    assert "<strong>amount</strong>" in await bad.text()
    forged = await client.post("/wallet/topup", data={"amount": "5"}, headers=HTML)
    assert forged.status == 403
    page = await (await client.get("/wallet", headers=HTML)).text()
    assert 'id="balance">$0.00<' in page


def test_amounts_typed_by_people_become_cents() -> None:
    assert [cents_of(t) for t in ("5", "2.5", "2.50", " $3,07 ", "0")] == [500, 250, 250, 307, 0]


async def test_a_double_clicked_money_form_moves_money_once(client: Client) -> None:
    await signup(client, "bob")
    await browser_signup(client, "webby")
    page = await (await client.get("/wallet", headers=HTML)).text()
    key = re.search(r'name="idempotency_key" value="([^"]+)"', page)
    assert key is not None
    csrf = await csrf_of(client, "/wallet")
    topup = {"csrf_token": csrf, "amount": "10", "idempotency_key": key.group(1)}
    tip = {**topup, "amount": "3", "to": "bob", "photo_id": ""}
    for path, form in (("/wallet/topup", topup), ("/wallet/tip", tip)):
        answers = await asyncio.gather(
            *(client.post(path, data=form, allow_redirects=False) for _ in range(3))
        )
        assert {a.status for a in answers} == {303}
    page = await (await client.get("/wallet", headers=HTML)).text()
    assert 'id="balance">$7.00<' in page  # one top-up, one tip
