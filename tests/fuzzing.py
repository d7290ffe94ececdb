"""Schemathesis over `/openapi.json`, against a running PicShare: every
operation, API and pages alike, as an anonymous client and as a signed-in
browser, with data that fits the document and data that does not.

Each answer must be no 5xx, and its status, media type and JSON body must be
what the document declares. The signed-in browser carries its session
cookie, the CSRF header and (in page forms) the CSRF token, and its path
parameters name things that exist (its photo, its comment, itself, a
friend), so that cases reach the handlers' own logic rather than stopping
at "not found" or "form expired". What a case removes (the photo, the
session) is made again before the next operation.

The suite runs a small fixed sample (tests/handlers/test_openapi_fuzz.py);
bench/fuzz.py runs longer, with a random seed.
"""

from __future__ import annotations

import contextlib
import io
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import requests
import schemathesis
from hypothesis import HealthCheck, Phase
from hypothesis.errors import Unsatisfiable
from PIL import Image
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# (identity, mode): the browser's valid and invalid inputs reach the handlers;
# a stranger's valid ones (any text in any field, the CSRF token included)
# try what stops before them.
PASSES = (
    ("browser", GenerationMode.POSITIVE),
    ("browser", GenerationMode.NEGATIVE),
    ("anonymous", GenerationMode.POSITIVE),
)
ALL_PASSES = (*PASSES, ("anonymous", GenerationMode.NEGATIVE))
PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass(slots=True)
class Finding:
    operation: str
    identity: str
    mode: str
    message: str

    def __str__(self) -> str:
        return f"{self.operation} ({self.identity}, {self.mode}):\n{self.message}"


@dataclass(slots=True)
class Report:
    findings: list[Finding] = field(default_factory=list)
    cases: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    operations: set[str] = field(default_factory=set)
    seconds: float = 0.0

    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)


class Browser:
    """The signed-in identity: a session cookie from the log-in page, its CSRF
    token, and resources of its own to point path parameters at."""

    def __init__(self, base: str, username: str = "fuzzer") -> None:
        self.base = base
        self.username = username
        self.http = requests.Session()
        self.csrf = ""
        self.photo_id = ""
        self.comment_id = ""
        self._signed_up = False

    def ensure(self) -> None:
        """Signed in, with a photo and a comment (a case may have removed any)."""
        if not self._signed_up:
            for name in (self.username, "friend"):
                self._api_signup(name)
            self._signed_up = True
        if self.http.get(f"{self.base}/api/v1/me", timeout=10).status_code != 200:
            self._log_in()
        photo = self.http.get(f"{self.base}/api/v1/photos/{self.photo_id or 0}", timeout=10)
        if photo.status_code != 200:
            self.photo_id = self._upload()
            self.comment_id = ""
        if not self.comment_id or self._gone(f"/api/v1/photos/{self.photo_id}/comments"):
            resp = self.http.post(
                f"{self.base}/api/v1/photos/{self.photo_id}/comments",
                json={"text": "a comment to point at"},
                headers=self.headers(),
                timeout=10,
            )
            resp.raise_for_status()
            self.comment_id = resp.json()["id"]

    def _gone(self, list_path: str) -> bool:
        items = self.http.get(f"{self.base}{list_path}", timeout=10).json().get("items", [])
        return all(item["id"] != self.comment_id for item in items)

    def _api_signup(self, name: str) -> None:
        body = {"username": name, "email": f"{name}@example.com", "password": PASSWORD}
        resp = requests.post(f"{self.base}/api/v1/auth/signup", json=body, timeout=30)
        assert resp.status_code in (201, 409), resp.text

    def _log_in(self) -> None:
        self.http.cookies.clear()
        page = self.http.get(f"{self.base}/login", headers={"Accept": "text/html"}, timeout=10)
        match = _CSRF.search(page.text)
        assert match, "no CSRF token on /login"
        form = {"csrf_token": match.group(1), "username": self.username, "password": PASSWORD}
        resp = self.http.post(f"{self.base}/login", data=form, allow_redirects=False, timeout=30)
        assert resp.status_code == 303, resp.text
        page = self.http.get(f"{self.base}/settings", headers={"Accept": "text/html"}, timeout=10)
        match = _CSRF.search(page.text)
        assert match, "no CSRF token on /settings"
        self.csrf = match.group(1)

    def _upload(self) -> str:
        image = io.BytesIO()
        Image.new("RGB", (32, 32), (200, 120, 40)).save(image, "JPEG")
        resp = self.http.post(
            f"{self.base}/api/v1/upload",
            files={"file": ("a.jpg", image.getvalue(), "image/jpeg")},
            data={"caption": "fuzz", "tags": "sunset"},
            headers=self.headers(),
            timeout=30,
        )
        assert resp.status_code == 201, resp.text
        photo_id = str(resp.json()["id"])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # comments wait for `ready`
            got = self.http.get(f"{self.base}/api/v1/photos/{photo_id}", timeout=10).json()
            if got["status"] != "processing":
                return photo_id
            time.sleep(0.05)
        raise AssertionError(f"photo {photo_id} still processing")

    def headers(self) -> dict[str, str]:
        return {"X-CSRF-Token": self.csrf}

    def path_parameters(self, path: str) -> dict[str, str]:
        known = {
            "id": self.comment_id if "/comments/{id}" in path else self.photo_id,
            "username": self.username,
            "requester": "friend",
            "tag": "sunset",
        }
        return {name: known[name] for name in re.findall(r"\{(\w+)\}", path) if name in known}

    def prepare(self, case: Case[Any], mode: GenerationMode) -> None:
        # Valid inputs get the real token, to reach the form's handler; invalid
        # ones keep what was drawn, to try the CSRF check itself.
        if (
            mode is GenerationMode.POSITIVE
            and isinstance(case.body, dict)
            and "csrf_token" in case.body
        ):
            case.body["csrf_token"] = self.csrf


def fuzz(
    base: str,
    *,
    examples: int,
    seed: int | None = None,
    budget: float | None = None,
    only: Callable[[str], bool] = lambda label: True,
    passes: tuple[tuple[str, GenerationMode], ...] = PASSES,
) -> Report:
    """`examples` cases per operation and pass; `seed=None` derandomizes (the
    suite's fixed sample). Stops starting new operations after `budget` s."""
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    browser = Browser(base)
    anonymous = requests.Session()
    report = Report()
    started = time.monotonic()
    for operation in _operations(schema):
        if not only(operation.label):
            continue
        if budget is not None and time.monotonic() - started > budget:
            break
        browser.ensure()
        report.operations.add(operation.label)
        for identity, mode in passes:
            fixed = browser.path_parameters(operation.path) if identity == "browser" else {}
            strategy = operation.as_strategy(generation_mode=mode, path_parameters=fixed)
            call = _caller(base, browser, anonymous, report, operation.label, identity, mode)
            _run(strategy, call, examples=examples, seed=seed)
    report.seconds = time.monotonic() - started
    return report


def _caller(
    base: str,
    browser: Browser,
    anonymous: requests.Session,
    report: Report,
    label: str,
    identity: str,
    mode: GenerationMode,
) -> Callable[[Case[Any]], None]:
    def call(case: Case[Any]) -> None:
        if identity == "browser":
            browser.prepare(case, mode)
            session, headers = browser.http, browser.headers()
        else:
            anonymous.cookies.clear()
            session, headers = anonymous, {}
        response = case.call(
            base_url=base, session=session, headers=headers, allow_redirects=False, timeout=10
        )
        report.cases += 1
        report.statuses[response.status_code] = report.statuses.get(response.status_code, 0) + 1
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except (AssertionError, BaseExceptionGroup) as exc:  # a Failure, or a group of them
            report.findings.append(Finding(label, identity, mode.value, str(exc)[:3000]))

    return call


def _operations(schema: Any) -> Iterator[Any]:
    for result in schema.get_all_operations():
        yield result.ok()


def _run(
    strategy: Any, call: Callable[[Case[Any]], None], *, examples: int, seed: int | None
) -> None:
    # Every failure is recorded by `call` and generation goes on: no shrinking,
    # no example database, no deadline (a real server's latency varies).
    settings = hypothesis.settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=seed is None,
        phases=(Phase.explicit, Phase.generate),
        suppress_health_check=list(HealthCheck),
    )
    test = hypothesis.given(case=strategy)(settings(call))
    if seed is not None:
        test = hypothesis.seed(seed)(test)
    # Nothing to break: an operation without inputs has no negative cases.
    with contextlib.suppress(Unsatisfiable):
        test()
