"""The closed sets named in storage/records.py are exactly what the database
accepts (the migrations' CHECK constraints), so neither can drift."""

from __future__ import annotations

import re
from enum import StrEnum

import asyncpg
import pytest

from storage.records import ModerationState, NotificationKind, PhotoStatus


async def _allowed(database_url: str, table: str, column: str) -> set[str]:
    conn = await asyncpg.connect(database_url)
    try:
        definitions = await conn.fetch(
            "SELECT pg_get_constraintdef(oid) AS d FROM pg_constraint "
            "WHERE conrelid = $1::regclass AND contype = 'c'",
            table,
        )
    finally:
        await conn.close()
    (check,) = [r["d"] for r in definitions if column in r["d"]]
    return set(re.findall(r"'([a-z_]+)'::text", check))


@pytest.mark.parametrize(
    ("enum", "table", "column"),
    [
        (PhotoStatus, "photos", "status"),
        (ModerationState, "photos", "moderation"),
        (NotificationKind, "notifications", "kind"),
    ],
)
async def test_enum_matches_the_check_constraint(
    database_url: str, enum: type[StrEnum], table: str, column: str
) -> None:
    assert {m.value for m in enum} == await _allowed(database_url, table, column)
