"""User-written text: captions and tags, normalized and bounded."""

from __future__ import annotations

import re
import unicodedata

from picshare.errors import FieldError

_TAG_SPLIT = re.compile(r"[\s,]+")
_HASHTAG = re.compile(r"#(\w+)")


def normalize_tag(raw: str) -> str:
    """`#Café`, `café` and `ＣＡＦＥ́` are one tag: NFKC, no `#`, case-folded."""
    return unicodedata.normalize("NFKC", raw).strip().lstrip("#").casefold()


def parse_tags(
    raw: str, caption: str, *, max_tags: int, max_chars: int, errors: list[FieldError]
) -> list[str]:
    """Tags from the `tags` field (comma or space separated) plus the caption's #hashtags."""
    found: list[str] = []
    for piece in [*_TAG_SPLIT.split(raw), *_HASHTAG.findall(caption)]:
        tag = normalize_tag(piece)
        if not tag:
            continue
        if len(tag) > max_chars:
            errors.append(FieldError("tags", f"a tag must be at most {max_chars} characters"))
            return []
        # Letters, digits, _ and combining marks (Devanagari vowel signs, the dot
        # that casefold leaves on İ): what a #hashtag can hold.
        if not all(ch.isalnum() or ch == "_" or unicodedata.category(ch)[0] == "M" for ch in tag):
            errors.append(FieldError("tags", f"{tag!r} may hold only letters, digits and _"))
            return []
        if tag not in found:
            found.append(tag)
    if len(found) > max_tags:
        errors.append(FieldError("tags", f"at most {max_tags} tags"))
        return []
    return found


def clean_caption(raw: str, *, max_chars: int, errors: list[FieldError]) -> str:
    caption = unicodedata.normalize("NFC", raw.replace("\r\n", "\n").strip())
    if len(caption) > max_chars:
        errors.append(FieldError("caption", f"must be at most {max_chars} characters"))
    if any(unicodedata.category(ch) == "Cc" and ch not in "\n\t" for ch in caption):
        errors.append(FieldError("caption", "must not contain control characters"))
    return caption
