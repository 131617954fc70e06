"""A small REST API client for the integration tests (http.client: every
status is returned, nothing raised), a TOTP generator (RFC 6238, written
independently of Moat's C code) and account helpers on top of moatctl."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import http.client
import json
import ssl
import struct
import time
from typing import Any, Dict, Optional

PASSWORD = "correct horse battery"


@dataclasses.dataclass
class Resp:
    status: int
    body: Any            # parsed JSON, or text
    headers: Dict[str, str]
    cookies: list        # raw Set-Cookie values

    @property
    def error(self) -> str:
        return self.body.get("error", "") if isinstance(self.body, dict) else ""


class Api:
    """One browser-like client: keeps the session cookie and the CSRF token."""

    def __init__(self, port: int, https: bool = False):
        self.port = port
        self.https = https
        self.cookie: Optional[str] = None   # moat_session value
        self.csrf: Optional[str] = None
        self.token: Optional[str] = None    # API token (Authorization: Bearer)

    def conn(self):
        if self.https:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=30, context=ctx)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def req(self, method: str, path: str, body: Any = None, *, raw: Optional[bytes] = None,
            headers: Optional[dict] = None, csrf: bool = True, content_type: str = "application/json") -> Resp:
        h = dict(headers or {})
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
        if data is not None and content_type:
            h.setdefault("Content-Type", content_type)
        if self.cookie:
            h.setdefault("Cookie", "moat_session=" + self.cookie)
        if csrf and self.csrf and method not in ("GET", "HEAD"):
            h.setdefault("X-CSRF-Token", self.csrf)
        if self.token:
            h.setdefault("Authorization", "Bearer " + self.token)
        c = self.conn()
        try:
            c.request(method, path, body=data, headers=h)
            r = c.getresponse()
            text = r.read()
            cookies = r.msg.get_all("Set-Cookie") or []
            hdrs = {k.lower(): v for k, v in r.getheaders()}
        finally:
            c.close()
        for ck in cookies:
            name, _, rest = ck.partition("=")
            if name == "moat_session":
                val = rest.split(";", 1)[0]
                self.cookie = val or None
        ctype = hdrs.get("content-type", "")
        parsed: Any = text.decode("utf-8", "replace")
        if ctype.startswith("application/json") and text:
            parsed = json.loads(text)
        return Resp(r.status, parsed, hdrs, cookies)

    def get(self, path, **kw):
        return self.req("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.req("POST", path, body, **kw)

    def put(self, path, body=None, **kw):
        return self.req("PUT", path, body, **kw)

    def patch(self, path, body=None, **kw):
        return self.req("PATCH", path, body, **kw)

    def delete(self, path, body=None, **kw):
        return self.req("DELETE", path, body, **kw)

    def login(self, email: str, password: str = PASSWORD, totp: Optional[str] = None, expect: int = 200) -> Resp:
        body = {"email": email, "password": password}
        if totp is not None:
            body["totp"] = totp
        r = self.post("/api/v1/session", body)
        assert r.status == expect, "login %s: expected %d, got %d %s" % (email, expect, r.status, r.body)
        if r.status == 200:
            self.csrf = r.body["csrf_token"]
        return r


def totp(secret: str, t: Optional[float] = None, digits: int = 6, step: int = 30) -> str:
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    counter = int((time.time() if t is None else t) // step)
    mac = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    off = mac[-1] & 0x0F
    code = (struct.unpack(">I", mac[off:off + 4])[0] & 0x7FFFFFFF) % (10 ** digits)
    return "%0*d" % (digits, code)


def add_account(moat, email: str, tenant: Optional[str] = "acme", role: str = "full",
                password: str = PASSWORD) -> None:
    args = ["account", "add", "--email", email, "--role", role]
    args += ["--tenant", tenant] if tenant else ["--operator"]
    moat.ctl(*args, input=password + "\n")


def add_token(moat, name: str, tenant: Optional[str] = "acme", role: str = "read-only") -> str:
    args = ["token", "add", "--name", name, "--role", role] + (["--tenant", tenant] if tenant else [])
    cp = moat.ctl(*args, "--json")
    return json.loads(cp.stdout)["token"]
