"""A small Superset REST client: login, CSRF, JSON calls, bundle import, lookups.

Every failure becomes a ``SupersetError`` with one line saying what went wrong and what to do;
callers never see a requests traceback.
"""

from __future__ import annotations

import json
from typing import Any

import requests

from audience.core.errors import AudienceError


class SupersetError(AudienceError):
    """Superset could not be reached, refused the login, or rejected a call.

    ``exit_code`` follows the CLI's convention: 3 when the service is unavailable, 2 when the
    input (a password, a store id) must change.
    """

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message, exit_code)


def rison(value: Any) -> str:
    """Encode the small subset of Rison that Superset's ``?q=`` list filters need."""
    if isinstance(value, bool):
        return "!t" if value else "!f"
    if value is None:
        return "!n"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return "'" + value.replace("!", "!!").replace("'", "!'") + "'"
    if isinstance(value, list | tuple):
        return "!(" + ",".join(rison(v) for v in value) + ")"
    if isinstance(value, dict):
        return "(" + ",".join(f"{k}:{rison(v)}" for k, v in value.items()) + ")"
    raise TypeError(f"cannot rison-encode {type(value).__name__}")


class Superset:
    """A logged-in HTTP client as one Superset user (an admin for provisioning)."""

    def __init__(self, url: str, user: str, password: str, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.user = user
        self.timeout = timeout
        self.session = requests.Session()
        self._login(password)

    def _login(self, password: str) -> None:
        try:
            r = self.session.post(
                f"{self.url}/api/v1/security/login", timeout=self.timeout,
                json={"username": self.user, "password": password, "provider": "db",
                      "refresh": False})
        except requests.RequestException as exc:
            raise SupersetError(
                f"cannot reach Superset at {self.url} ({type(exc).__name__}): start it with "
                "`audience dashboards serve` or pass the right --superset-url",
                exit_code=3) from None
        if r.status_code == 401:
            raise SupersetError(
                f"Superset at {self.url} refused the login for user {self.user!r}: wrong user "
                "or password")
        if r.status_code == 404:
            raise SupersetError(
                f"{self.url} answered 404 to the login API: is this a Superset (5.0+) URL?")
        self._check(r, "logging in")
        self.session.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
        token = self.call("GET", "/api/v1/security/csrf_token/")["result"]
        # Superset checks the CSRF token against the session cookie and the Referer.
        self.session.headers.update({"X-CSRFToken": token, "Referer": self.url})

    def _check(self, r: requests.Response, doing: str) -> None:
        if r.ok:
            return
        try:
            body = r.json()
            detail = body.get("message") or body.get("errors") or body
        except ValueError:  # an HTML error page: the reason is only in Superset's log
            detail = "no details in the answer; Superset's log has the reason"
        hint = ""
        if r.status_code == 403:
            hint = f" (user {self.user!r} lacks the permission: use an admin account)"
        elif r.status_code == 404 and "/security/" in r.url:
            hint = " (enable FAB_ADD_SECURITY_API = True in superset_config.py)"
        raise SupersetError(f"Superset answered {r.status_code} while {doing}: "
                            f"{json.dumps(detail)[:400]}{hint}",
                            exit_code=3 if r.status_code >= 500 else 2)

    def call(self, method: str, path: str, *, doing: str | None = None,
             **kwargs: Any) -> dict[str, Any]:
        """One API call; JSON in (``json=``), JSON out."""
        try:
            r = self.session.request(method, f"{self.url}{path}", timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise SupersetError(
                f"lost the connection to Superset at {self.url} during {method} {path} "
                f"({type(exc).__name__}): is it still running?", exit_code=3) from None
        self._check(r, doing or f"calling {method} {path}")
        return r.json() if r.content else {}

    def find(self, resource: str, **equals: Any) -> list[dict[str, Any]]:
        """All items of a list endpoint (``/api/v1/<resource>/``) whose columns equal the values."""
        filters = [{"col": k, "opr": "eq", "value": v} for k, v in equals.items()]
        out: list[dict[str, Any]] = []
        page = 0
        while True:
            q = rison({"filters": filters, "page": page, "page_size": 100})
            body = self.call("GET", f"/api/v1/{resource}/?q={q}", doing=f"listing {resource}")
            out += body.get("result", [])
            if len(out) >= body.get("count", 0) or not body.get("result"):
                return out
            page += 1

    def import_bundle(self, zip_bytes: bytes, passwords: dict[str, str]) -> None:
        """Import (overwrite by uuid) an asset bundle ZIP."""
        self.call("POST", "/api/v1/assets/import/", doing="importing the dashboard bundle",
                  files={"bundle": ("audience-dashboards.zip", zip_bytes, "application/zip")},
                  data={"passwords": json.dumps(passwords)})
