"""The registry of a site without Redis: this process, as it last said."""

from __future__ import annotations

from picshare.process_registry import ProcessInfo


class LocalRegistry:
    __slots__ = ("_me",)

    def __init__(self) -> None:
        self._me: ProcessInfo | None = None

    def __repr__(self) -> str:
        return "<LocalRegistry>"

    async def beat(self, info: ProcessInfo) -> None:
        self._me = info

    async def leave(self, process_id: str) -> None:
        if self._me is not None and self._me.id == process_id:
            self._me = None

    async def processes(self) -> list[ProcessInfo]:
        return [] if self._me is None else [self._me]
