"""JSON Schemas of the REST API's bodies and the pages' forms (OpenAPI 3.1 components)."""

from __future__ import annotations

from typing import Any

from picshare.domain_events import EVENT_TYPES
from storage.records import NotificationKind, PhotoStatus, TransferKind

_ID = {"type": "string", "pattern": "^[0-9]{1,19}$", "description": "64-bit id as a string"}
_TIME = {"type": "string", "format": "date-time"}
_URL = {"type": ["string", "null"], "format": "uri-reference"}

_USER_PROPS: dict[str, Any] = {
    "id": _ID,
    "username": {"type": "string", "pattern": "^[a-z0-9_.]{3,30}$"},
    "display_name": {"type": "string", "maxLength": 64},
    "bio": {"type": "string", "maxLength": 300},
    "private": {"type": "boolean"},
    "photo_count": {"type": "integer"},
    "follower_count": {"type": "integer"},
    "following_count": {"type": "integer"},
    "created_at": _TIME,
}


def _page(item: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["items", "next_cursor"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": f"#/components/schemas/{item}"}},
            "next_cursor": {"type": ["string", "null"]},
            "partial": {
                "type": "boolean",
                "description": "present (true) when a shard did not answer in time: "
                "some items may be missing",
            },
        },
    }


def _form(required: tuple[str, ...] = (), **fields: dict[str, Any]) -> dict[str, Any]:
    """A page form: its fields, and the CSRF token every form carries."""
    return {
        "type": "object",
        "required": ["csrf_token", *required],
        "properties": {
            "csrf_token": {"type": "string", "description": "from the page the form is on"},
            **fields,
        },
    }


_NEXT = {"type": "string", "description": "a local path to go back to"}
_TEXT = {"type": "string"}

FORMS: dict[str, Any] = {
    "CsrfForm": _form(),
    "NextForm": _form(next=_NEXT),
    "CommentForm": _form(("text",), text=_TEXT, next=_NEXT),
    "MarkReadForm": _form(up_to={"type": "string", "description": "the newest id shown"}),
    "SettingsForm": _form(
        display_name=_TEXT, bio=_TEXT, private={"type": "string", "description": "ticked: 'on'"}
    ),
    "SignupForm": _form(
        ("username", "email", "password"), username=_TEXT, email=_TEXT, password=_TEXT
    ),
    "LoginForm": _form(("username", "password"), username=_TEXT, password=_TEXT, next=_NEXT),
    "TopupForm": _form(
        ("amount",), amount={"type": "string", "description": "in the currency's units: 5.00"}
    ),
    # One checkbox per event type (a form's repeated names would collapse).
    "WebhookForm": _form(
        ("url",),
        url=_TEXT,
        **{
            f"event.{t}": {"type": "string", "description": "ticked: 'on'"}
            for t in sorted(EVENT_TYPES)
        },
    ),
    "TipForm": _form(
        ("to", "amount"),
        to=_TEXT,
        amount={"type": "string", "description": "in the currency's units: 1.50"},
        photo_id={"type": "string", "description": "optional: the photo the tip is for"},
    ),
    "UploadForm": _form(
        ("file",),
        file={"type": "string", "contentMediaType": "application/octet-stream"},
        caption=_TEXT,
        tags=_TEXT,
        idempotency_key={
            "type": "string",
            "description": "from the page: the same form sent twice makes one photo",
        },
    ),
}

_EVENT_TYPE = {"enum": sorted(EVENT_TYPES)}
_WEBHOOK_PROPS: dict[str, Any] = {
    "id": _ID,
    "url": {"type": "string", "format": "uri", "maxLength": 2000},
    "events": {"type": "array", "items": _EVENT_TYPE},
    "created_at": _TIME,
    "disabled": {"type": "boolean", "description": "true once the receiver answered 410"},
    "disabled_reason": {"type": ["string", "null"]},
}
WEBHOOK_SCHEMAS: dict[str, Any] = {
    "WebhookRequest": {
        "type": "object",
        "required": ["url", "events"],
        "properties": {
            "url": {
                "type": "string",
                "format": "uri",
                "maxLength": 2000,
                "description": "http(s); its host must not resolve to a loopback, private, "
                "link-local, multicast or reserved address",
            },
            "events": {"type": "array", "minItems": 1, "items": _EVENT_TYPE},
        },
    },
    "Webhook": {"type": "object", "properties": _WEBHOOK_PROPS},
    "WebhookCreated": {
        "type": "object",
        "required": ["id", "secret"],
        "properties": {
            **_WEBHOOK_PROPS,
            "secret": {
                "type": "string",
                "pattern": "^whsec_",
                "description": "verifies the webhook-signature of deliveries (Standard "
                "Webhooks); shown in this answer only",
            },
        },
    },
    "WebhookList": {
        "type": "object",
        "required": ["items"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/Webhook"}}
        },
    },
    "WebhookDelivery": {
        "type": "object",
        "properties": {
            "id": _ID,
            "webhook_id": {"type": "string", "description": "the webhook-id header sent"},
            "event_id": _ID,
            "event_type": _EVENT_TYPE,
            "attempt": {"type": "integer", "minimum": 1},
            "status": {"type": ["integer", "null"], "description": "null: no answer"},
            "duration_ms": {"type": "integer"},
            "error": {"type": "string"},
            "next_attempt_at": {**_TIME, "type": ["string", "null"]},
            "created_at": _TIME,
        },
    },
    "WebhookDeliveryPage": _page("WebhookDelivery"),
}

SCHEMAS: dict[str, Any] = {
    "Problem": {
        "type": "object",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string", "format": "uri"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "instance": {"type": "string"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["field", "message"],
                    "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                },
            },
        },
    },
    "SignupRequest": {
        "type": "object",
        "required": ["username", "email", "password"],
        "properties": {
            "username": {"type": "string", "pattern": "^[A-Za-z0-9_.]{3,30}$"},
            "email": {"type": "string", "format": "email", "maxLength": 254},
            "password": {"type": "string", "minLength": 8, "maxLength": 256},
        },
    },
    "LoginRequest": {
        "type": "object",
        "required": ["username", "password"],
        "properties": {
            "username": {"type": "string", "minLength": 1},
            "password": {"type": "string", "minLength": 1},
        },
    },
    "User": {"type": "object", "properties": _USER_PROPS},
    "Me": {
        "type": "object",
        "properties": {
            **_USER_PROPS,
            "email": {"type": "string"},
            "settings": {"type": "object"},
        },
    },
    "SignedIn": {
        "type": "object",
        "required": ["user", "token"],
        "properties": {"user": {"$ref": "#/components/schemas/Me"}, "token": {"type": "string"}},
    },
    "ProfileUpdate": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "display_name": {"type": "string", "maxLength": 64},
            "bio": {"type": "string", "maxLength": 300},
            "private": {"type": "boolean"},
            "settings": {"type": "object"},
        },
    },
    "Upload": {
        "type": "object",
        "required": ["file"],
        "properties": {
            "file": {
                "type": "string",
                "contentMediaType": "application/octet-stream",
                "description": "JPEG, PNG, WebP or HEIC; checked by content",
            },
            "caption": {"type": "string", "maxLength": 2200},
            "tags": {"type": "string", "description": "comma or space separated, # optional"},
        },
    },
    "Photo": {
        "type": "object",
        "properties": {
            "id": _ID,
            "owner": {
                "type": "object",
                "properties": {"username": {"type": "string"}, "display_name": {"type": "string"}},
            },
            "caption": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "width": {"type": "integer"},
            "height": {"type": "integer"},
            "blurhash": {"type": ["string", "null"]},
            "status": {"enum": [s.value for s in PhotoStatus]},
            "like_count": {"type": "integer"},
            "comment_count": {"type": "integer"},
            "liked_by_me": {"type": "boolean"},
            "created_at": _TIME,
            "urls": {
                "type": "object",
                "properties": dict.fromkeys(("original", "large", "medium", "thumb"), _URL),
            },
        },
    },
    "PhotoPage": _page("Photo"),
    "Profile": {
        "type": "object",
        "properties": {
            **_USER_PROPS,
            "followed_by_me": {"type": "boolean"},
            "requested_by_me": {"type": "boolean", "description": "a follow request is pending"},
            "can_see_photos": {"type": "boolean"},
        },
    },
    "UserEntry": {
        "type": "object",
        "properties": {k: _USER_PROPS[k] for k in ("id", "username", "display_name", "private")},
    },
    "UserPage": _page("UserEntry"),
    "LikeState": {
        "type": "object",
        "required": ["like_count", "liked"],
        "properties": {"like_count": {"type": "integer"}, "liked": {"type": "boolean"}},
    },
    "CommentRequest": {
        "type": "object",
        "required": ["text"],
        "properties": {"text": {"type": "string", "minLength": 1, "maxLength": 2200}},
    },
    "Comment": {
        "type": "object",
        "properties": {
            "id": _ID,
            "photo_id": _ID,
            "text": {"type": "string"},
            "user": {
                "type": "object",
                "properties": {"username": {"type": "string"}, "display_name": {"type": "string"}},
            },
            "created_at": _TIME,
        },
    },
    "CommentPage": _page("Comment"),
    "Notification": {
        "type": "object",
        "properties": {
            "type": {"const": "notification"},
            "id": _ID,
            "kind": {"enum": [k.value for k in NotificationKind]},
            "actor": {"type": "object", "properties": {"username": {"type": "string"}}},
            "photo_id": {"type": ["string", "null"]},
            "text": {"type": "string"},
            "read": {"type": "boolean"},
            "created_at": _TIME,
        },
    },
    "NotificationPage": {
        **_page("Notification"),
        "properties": {
            **_page("Notification")["properties"],
            "unread_count": {"type": "integer"},
        },
    },
    "MarkRead": {
        "type": "object",
        "properties": {"up_to": {**_ID, "description": "mark this one and older; all if absent"}},
    },
    "MarkedRead": {
        "type": "object",
        "properties": {"marked": {"type": "integer"}, "unread_count": {"type": "integer"}},
    },
    "SearchResult": {
        "type": "object",
        "properties": {
            "users": {"type": "array", "items": {"$ref": "#/components/schemas/UserEntry"}},
            "tags": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"tag": {"type": "string"}, "photo_count": {"type": "integer"}},
                },
            },
            "photos": {"type": "array", "items": {"$ref": "#/components/schemas/Photo"}},
            "partial": {
                "type": "boolean",
                "description": "present (true) when a shard did not answer in time",
            },
        },
    },
    "Wallet": {
        "type": "object",
        "required": ["balance_cents", "currency"],
        "properties": {
            "balance_cents": {"type": "integer", "minimum": 0},
            "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
        },
    },
    "TopupRequest": {
        "type": "object",
        "required": ["amount_cents"],
        "properties": {
            "amount_cents": {
                "type": "integer",
                "minimum": 1,
                "description": "at most the server's payments.max_topup_cents",
            }
        },
    },
    "TipRequest": {
        "type": "object",
        "required": ["to", "amount_cents"],
        "properties": {
            "to": {"type": "string", "description": "the receiver's username"},
            "amount_cents": {
                "type": "integer",
                "minimum": 1,
                "description": "at most the server's payments.max_tip_cents",
            },
            "photo_id": {**_ID, "description": "optional: a photo of `to` that you can see"},
        },
    },
    "Receipt": {
        "type": "object",
        "required": ["id", "kind", "amount_cents", "currency", "to", "balance_cents"],
        "properties": {
            "id": _ID,
            "kind": {"enum": [k.value for k in TransferKind]},
            "amount_cents": {"type": "integer", "minimum": 1},
            "currency": {"type": "string"},
            "from": {
                "type": ["object", "null"],
                "properties": {"username": {"type": "string"}},
                "description": "null for a top-up (the payment provider)",
            },
            "to": {"type": "object", "properties": {"username": {"type": "string"}}},
            "photo_id": {"type": ["string", "null"]},
            "created_at": _TIME,
            "balance_cents": {"type": "integer", "description": "your balance after it"},
        },
    },
    "GraphQLRequest": {
        "type": "object",
        "required": ["query"],
        "properties": {
            "query": {"type": "string"},
            "variables": {"type": ["object", "null"]},
            "operationName": {"type": ["string", "null"]},
        },
    },
    "GraphQLResponse": {
        "type": "object",
        "description": "errors carry extensions.code: UNAUTHENTICATED, FORBIDDEN, NOT_FOUND, "
        "BAD_USER_INPUT, RATE_LIMITED, UNAVAILABLE, QUERY_TOO_DEEP, QUERY_TOO_COSTLY, "
        "GRAPHQL_VALIDATION_FAILED",
        "properties": {
            "data": {"type": ["object", "null"]},
            "errors": {"type": "array", "items": {"type": "object"}},
        },
    },
    "Health": {
        "type": "object",
        "properties": {"status": {"type": "string"}, "checks": {"type": "object"}},
    },
    "ModerationVerdict": {
        "type": "object",
        "required": ["verdict"],
        "properties": {"verdict": {"enum": ["approve", "reject"]}},
    },
    "ModerationResult": {
        "type": "object",
        "required": ["id", "verdict", "status"],
        "properties": {
            "id": _ID,
            "verdict": {"enum": ["approve", "reject"]},
            "status": {
                "enum": [s.value for s in PhotoStatus],
                "description": "the photo's status after it: approved, `ready` once its "
                "renditions exist (`processing` until then); rejected, `rejected`",
            },
        },
    },
    "System": {
        "type": "object",
        "required": ["processes", "databases", "queues", "cache", "sockets"],
        "properties": {
            "processes": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "kind", "host", "pid", "sockets", "in_flight"],
                    "properties": {
                        "id": {"type": "string"},
                        "kind": {"type": "string"},
                        "host": {"type": "string"},
                        "pid": {"type": "integer"},
                        "listen": {"type": "string"},
                        "sockets": {"type": "integer"},
                        "in_flight": {"type": "integer"},
                        "cache_hits": {"type": "integer"},
                        "cache_misses": {"type": "integer"},
                        "consumers": {"type": "string"},
                        "age_seconds": {"type": "number"},
                    },
                },
            },
            "databases": {"type": "array", "items": {"type": "object"}},
            "queues": {
                "type": "object",
                "properties": {
                    "outbox_backlog": {"type": "integer"},
                    "jobs_queued": {"type": "integer"},
                },
            },
            "cache": {"type": "object"},
            "sockets": {"type": "integer"},
        },
    },
    **WEBHOOK_SCHEMAS,
    **FORMS,
}
