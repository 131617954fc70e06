"""The HTTP server and REST API against a running moatd: /healthz, /metrics,
login (cookie flags, rotation, one message for every failure), CSRF, roles,
lock-out, the per-address throttle, TOTP enrolment and login (replay,
recovery codes, per-tenant enforcement), API tokens, bounded input, HTTPS,
and accounts / tokens / audit / security endpoints."""

import json
import re
import time

import pytest

from api_client import PASSWORD, Api, Resp, add_account, add_token, totp
from conftest import make_message, wait_until

BAD_LOGIN = "invalid e-mail address, password or code"


@pytest.fixture(scope="module")
def api_env(module_env):
    m = module_env.moat
    add_account(m, "op@moat.test", tenant=None)
    add_account(m, "admin@acme.test")
    add_account(m, "ro@acme.test", role="read-only")
    return module_env


def api(env) -> Api:
    return Api(env.moat.http_port)


def logged_in(env, email="admin@acme.test") -> Api:
    a = api(env)
    a.login(email)
    return a


# ---------------------------------------------------------------- health and metrics
def test_healthz_and_metrics(api_env):
    a = api(api_env)
    r = a.get("/healthz")
    assert r.status == 200 and r.body["status"] == "ok"
    assert r.headers["cache-control"] == "no-store" and r.headers["x-content-type-options"] == "nosniff"
    api_env.send_ok("alice@protected.test")
    api_env.downstream.wait_for_messages(1, timeout=15)

    def metric(text, name):
        m = re.search(r"^%s (\d+(?:\.\d+)?)$" % re.escape(name), text, re.M)
        return float(m.group(1)) if m else None

    def ok():
        t = a.get("/metrics").body
        return (metric(t, 'moat_messages_total{direction="inbound",verdict="clean"}') or 0) >= 1 and \
            (metric(t, 'moat_delivery_results_total{result="delivered"}') or 0) >= 1 and t
    text = wait_until(ok, 15, msg="metrics count the message and its delivery")
    r = a.get("/metrics")
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert metric(text, "moat_scan_duration_seconds_count") >= 1
    assert metric(text, 'moat_scan_duration_seconds_bucket{le="+Inf"}') == metric(text, "moat_scan_duration_seconds_count")
    for name in ('moat_ratelimit_hits_total{by="ip"}', 'moat_queue_messages{state="queued"}',
                 "moat_tracking_dropped_total", 'moat_http_requests_total{code="2xx"}'):
        assert metric(text, name) is not None, name
    # every sample line is well formed
    for line in text.splitlines():
        assert line.startswith("#") or re.fullmatch(r'[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? [0-9.e+-]+', line), line


def test_unknown_path_and_method(api_env):
    a = logged_in(api_env)
    assert a.get("/api/v1/nothing").status == 404
    assert a.req("PATCH", "/api/v1/config").status == 405
    assert a.get("/" + "x" * 600).status in (404, 414)


# ---------------------------------------------------------------- login
def test_login_cookie_and_session(api_env):
    a = api(api_env)
    r = a.login("admin@acme.test")
    ck = r.cookies[0]
    assert re.match(r"moat_session=[A-Za-z0-9_-]{43}; ", ck), ck
    for flag in ("HttpOnly", "SameSite=Strict", "Path=/"):
        assert flag in ck
    assert "Secure" not in ck            # plain HTTP here; see test_https
    assert r.body["tenant"] == "acme" and r.body["role"] == "full" and r.body["totp_recommended"] is True
    assert len(r.body["csrf_token"]) >= 32
    me = a.get("/api/v1/session")
    assert me.status == 200 and me.body["email"] == "admin@acme.test" and me.body["csrf_token"] == a.csrf


def test_login_failures_look_the_same(api_env):
    add_account(api_env.moat, "same@acme.test")
    a = api(api_env)
    for email, pw in (("same@acme.test", "wrong password"), ("nobody@acme.test", PASSWORD)):
        r = a.login(email, pw, expect=401)
        assert r.body == {"error": BAD_LOGIN} and not r.cookies
    api_env.moat.ctl("admin", "disable", "same@acme.test")
    r = a.login("same@acme.test", expect=401)
    assert r.body == {"error": BAD_LOGIN}
    api_env.moat.ctl("admin", "enable", "same@acme.test")
    a.login("same@acme.test")


def test_login_rotates_the_session(api_env):
    a = api(api_env)
    a.login("admin@acme.test")
    first = a.cookie
    a.login("admin@acme.test")       # the browser still sends the first cookie
    assert a.cookie != first
    old = Api(api_env.moat.http_port)
    old.cookie = first
    assert old.get("/api/v1/session").status == 401


def test_login_input_validation(api_env):
    a = api(api_env)
    assert a.post("/api/v1/session", {"email": "admin@acme.test"}).status == 400
    r = a.post("/api/v1/session", {"email": "a@b", "password": "x", "extra": 1})
    assert r.status == 400 and "extra: unknown key" in r.error
    assert a.post("/api/v1/session", {"email": 5, "password": "x"}).status == 400
    assert a.post("/api/v1/session", raw=b"{not json").status == 400
    assert a.post("/api/v1/session", raw=b"[]").status == 400
    r = a.post("/api/v1/session", raw=b'{"email":"a","password":"b"}', content_type="text/plain")
    assert r.status == 415
    r = a.post("/api/v1/session", raw=b"[" * 100 + b"]" * 100)
    assert r.status == 400 and "nested too deeply" in r.error
    r = a.post("/api/v1/session", raw=b'{"email":"' + b"a" * 70000 + b'"}')
    assert r.status == 413


def test_logout_needs_csrf(api_env):
    a = logged_in(api_env)
    r = a.delete("/api/v1/session", csrf=False)
    assert r.status == 403 and "CSRF" in r.error
    r = a.delete("/api/v1/session", headers={"X-CSRF-Token": "x" * 43})
    assert r.status == 403
    r = a.delete("/api/v1/session")
    assert r.status == 200 and "Max-Age=0" in r.cookies[0]
    assert a.get("/api/v1/session").status == 401
    assert a.get("/api/v1/config").status == 401


def test_unauthenticated_is_401(api_env):
    a = api(api_env)
    for path in ("/api/v1/config", "/api/v1/tracking", "/api/v1/quarantine", "/api/v1/stats",
                 "/api/v1/accounts", "/api/v1/audit", "/api/v1/queue", "/api/v1/tokens"):
        r = a.get(path)
        assert r.status == 401 and r.error == "authentication required", path
    a.cookie = "A" * 43                # a made-up session
    assert a.get("/api/v1/config").status == 401


def test_read_only_role(api_env):
    a = logged_in(api_env, "ro@acme.test")
    assert a.get("/api/v1/config").status == 200
    r = a.put("/api/v1/config", {"tenants": []})
    assert r.status == 403 and "read-only" in r.error
    assert a.post("/api/v1/accounts", {"email": "x@acme.test", "password": PASSWORD}).status == 403
    assert a.delete("/api/v1/session").status == 200     # logging out is always allowed


def test_lockout_and_unlock(api_env):
    add_account(api_env.moat, "lock@acme.test")
    a = api(api_env)
    for _ in range(5):                 # http_login_failures = 5
        a.login("lock@acme.test", "not the password", expect=401)
    r = a.login("lock@acme.test", expect=401)      # the right password, but locked
    assert r.body == {"error": BAD_LOGIN}
    op = logged_in(api_env, "op@moat.test")
    accts = op.get("/api/v1/accounts?tenant=acme").body["accounts"]
    assert [x for x in accts if x["email"] == "lock@acme.test"][0]["locked"] is True
    audit = op.get("/api/v1/audit").body["entries"]
    assert any(e["action"] == "account.locked" and "lock@acme.test" in e["detail"] for e in audit)
    api_env.moat.ctl("admin", "unlock", "lock@acme.test")
    a.login("lock@acme.test")


def test_throttle_per_address(make_env):
    env = make_env(conf={"http_login_failures": "1000"})
    add_account(env.moat, "t@acme.test")
    a = Api(env.moat.http_port)
    for i in range(20):
        a.login("x%d@acme.test" % i, "nope", expect=401)
    r = a.login("t@acme.test", expect=429)
    assert int(r.headers["retry-after"]) > 0 and "too many failed logins" in r.error


# ---------------------------------------------------------------- TOTP
def enrol(a: Api) -> dict:
    r = a.post("/api/v1/account/totp")
    assert r.status == 200, r.body
    secret = r.body["secret"]
    assert r.body["otpauth_uri"].startswith("otpauth://totp/Moat:") and "secret=" + secret in r.body["otpauth_uri"]
    assert r.body["qr_svg"].startswith("<svg") and "<script" not in r.body["qr_svg"]
    bad = a.post("/api/v1/account/totp/confirm", {"code": "000000" if totp(secret) != "000000" else "111111"})
    assert bad.status == 400
    c = a.post("/api/v1/account/totp/confirm", {"code": totp(secret)})
    assert c.status == 200 and len(c.body["recovery_codes"]) == 10, c.body
    return {"secret": secret, "recovery": c.body["recovery_codes"]}


def test_totp_login(api_env):
    add_account(api_env.moat, "totp@acme.test")
    a = logged_in(api_env, "totp@acme.test")
    t = enrol(a)
    assert a.get("/api/v1/session").body["totp_enabled"] is True
    b = api(api_env)
    r = b.login("totp@acme.test", expect=401)
    assert r.body == {"error": "a two-factor code is required", "totp_required": True}
    r = b.login("totp@acme.test", totp="12345", expect=401)
    assert r.body == {"error": BAD_LOGIN}
    # the confirmation used the current step: the next step's code is still inside the window
    code = totp(t["secret"], time.time() + 30)
    b.login("totp@acme.test", totp=code)
    c = api(api_env)
    c.login("totp@acme.test", totp=code, expect=401)     # the same code twice: refused
    # a recovery code works once (in any case, with or without the hyphen)
    rc = t["recovery"][0]
    c.login("totp@acme.test", totp=rc.upper().replace("-", ""))
    api(api_env).login("totp@acme.test", totp=rc, expect=401)
    me = c.get("/api/v1/session").body
    assert me["recovery_codes_left"] == 9
    # disabling needs the password
    assert c.delete("/api/v1/account/totp", {"password": "wrong password!"}).status == 403
    assert c.delete("/api/v1/account/totp", {"password": PASSWORD}).status == 200
    api(api_env).login("totp@acme.test")


def test_totp_enforced_per_tenant(make_env):
    env = make_env()
    add_account(env.moat, "boss@acme.test")
    add_account(env.moat, "new@acme.test")
    boss = Api(env.moat.http_port)
    boss.login("boss@acme.test")
    enrol(boss)
    assert boss.get("/api/v1/security").body == {"tenant": "acme", "totp_required": False}
    r = boss.put("/api/v1/security", {"totp_required": True})
    assert r.status == 200 and r.body["totp_required"] is True
    assert boss.put("/api/v1/security", {"totp_required": "yes"}).status == 400
    new = Api(env.moat.http_port)
    r = new.login("new@acme.test")
    assert r.body["totp_required"] is True and r.body["totp_enrolment_required"] is True
    r = new.get("/api/v1/config")
    assert r.status == 403 and "two-factor" in r.error
    enrol(new)
    assert new.get("/api/v1/config").status == 200
    r = new.delete("/api/v1/account/totp", {"password": PASSWORD})
    assert r.status == 409
    audit = boss.get("/api/v1/audit").body["entries"]
    assert any(e["action"] == "security.update" and e["actor"].startswith("boss@acme.test") for e in audit)


def test_logins_are_audited(make_env):
    """Logins and failed logins of existing accounts are in the audit log with
    the client address; an unknown address leaves no audit row."""
    env = make_env()
    add_account(env.moat, "who@acme.test")
    a = Api(env.moat.http_port)
    a.login("who@acme.test", "wrong password!!", expect=401)
    a.login("nobody@acme.test", "wrong password!!", expect=401)
    a.login("who@acme.test")
    entries = a.get("/api/v1/audit").body["entries"]
    mine = [(e["action"], e["detail"]) for e in entries if e["action"].startswith("account.login")]
    assert ("account.login", "who@acme.test logged in from 127.0.0.1") in mine, mine
    assert ("account.login_failed", "who@acme.test: failed login from 127.0.0.1") in mine, mine
    assert not any("nobody@" in (e["detail"] or "") for e in entries), entries


def test_totp_enforced_for_operators(make_env):
    """Operators have their own requirement (GET/PUT /api/v1/security without
    ?tenant=); it does not touch any tenant's, and a tenant's does not touch
    theirs."""
    env = make_env()
    add_account(env.moat, "root@moat.test", tenant=None)
    add_account(env.moat, "op2@moat.test", tenant=None)
    add_account(env.moat, "admin@acme.test")
    root = Api(env.moat.http_port)
    root.login("root@moat.test")
    assert root.get("/api/v1/security").body == {"tenant": None, "totp_required": False}
    enrol(root)
    r = root.put("/api/v1/security", {"totp_required": True})
    assert r.status == 200 and r.body == {"tenant": None, "totp_required": True}, r.body
    op2 = Api(env.moat.http_port)
    r = op2.login("op2@moat.test")
    assert r.body["totp_enrolment_required"] is True
    assert op2.get("/api/v1/tenants").status == 403             # until enrolled
    enrol(op2)
    assert op2.get("/api/v1/tenants").status == 200
    assert op2.delete("/api/v1/account/totp", {"password": PASSWORD}).status == 409
    # tenants are untouched, both ways
    assert root.get("/api/v1/security?tenant=acme").body == {"tenant": "acme", "totp_required": False}
    t = Api(env.moat.http_port)
    r = t.login("admin@acme.test")
    assert r.body["totp_enrolment_required"] is False
    assert t.get("/api/v1/security").body["tenant"] == "acme"    # a tenant admin never reaches the operators' one
    audit = root.get("/api/v1/audit").body["entries"]
    assert any(e["action"] == "security.update" and "operators totp_required=true" in e["detail"] for e in audit), audit


# ---------------------------------------------------------------- API tokens
def test_api_tokens(api_env):
    m = api_env.moat
    ro = add_token(m, "reader")
    full = add_token(m, "writer", role="full")
    a = Api(m.http_port)
    a.token = ro
    r = a.get("/api/v1/config")
    assert r.status == 200 and r.body["tenants"][0]["company_id"] == "acme"
    assert a.put("/api/v1/config", {"tenants": []}).status == 403
    w = Api(m.http_port)
    w.token = full
    doc = w.get("/api/v1/config").body
    r = w.put("/api/v1/config", doc)            # no CSRF token needed with an API token
    assert r.status == 200 and r.body["changed"] == 0, r.body
    bad = Api(m.http_port)
    bad.token = "moat_" + "A" * 43
    assert bad.get("/api/v1/config").status == 401
    listed = w.get("/api/v1/tokens").body["tokens"]
    ids = {t["name"]: t["id"] for t in listed}
    assert "token" not in listed[0] and set(ids) >= {"reader", "writer"}
    assert w.delete("/api/v1/tokens/%d" % ids["reader"]).status == 200
    assert a.get("/api/v1/config").status == 401      # revoked
    # a token made over the API is shown once and works
    s = logged_in(api_env)
    r = s.post("/api/v1/tokens", {"name": "ci", "role": "read-only"})
    assert r.status == 201 and r.body["token"].startswith("moat_")
    c = Api(m.http_port)
    c.token = r.body["token"]
    assert c.get("/api/v1/session").body["role"] == "read-only"


# ---------------------------------------------------------------- accounts, audit
def test_accounts_crud(api_env):
    a = logged_in(api_env)
    r = a.post("/api/v1/accounts", {"email": "Colleague@Acme.test", "password": PASSWORD, "role": "read-only"})
    assert r.status == 201 and r.body["email"] == "colleague@acme.test" and r.body["tenant"] == "acme", r.body
    aid = r.body["id"]
    assert a.post("/api/v1/accounts", {"email": "colleague@acme.test", "password": PASSWORD}).status == 409
    assert a.post("/api/v1/accounts", {"email": "x@acme.test", "password": "short"}).status == 400
    assert a.post("/api/v1/accounts", {"email": "not-an-address", "password": PASSWORD}).status == 400
    r = a.post("/api/v1/accounts", {"email": "y@acme.test", "password": PASSWORD, "tenant": "other"})
    assert r.status == 403
    r = a.post("/api/v1/accounts", {"email": "y@acme.test", "password": PASSWORD, "role": "admin"})
    assert r.status == 400 and "role" in r.error
    assert a.get("/api/v1/accounts/%d" % aid).body["role"] == "read-only"
    r = a.patch("/api/v1/accounts/%d" % aid, {"role": "full", "disabled": True})
    assert r.status == 200 and r.body["role"] == "full" and r.body["disabled"] is True
    api(api_env).login("colleague@acme.test", expect=401)
    a.patch("/api/v1/accounts/%d" % aid, {"disabled": False})
    c = api(api_env)
    c.login("colleague@acme.test")
    assert a.patch("/api/v1/accounts/%d" % aid, {"password": "a new password 1"}).status == 200
    assert c.get("/api/v1/session").status == 401      # sessions end with a password change
    me = a.get("/api/v1/session").body["id"]
    assert a.patch("/api/v1/accounts/%d" % me, {"disabled": True}).status == 409
    assert a.delete("/api/v1/accounts/%d" % me).status == 409
    assert a.delete("/api/v1/accounts/%d" % aid).status == 200
    assert a.get("/api/v1/accounts/%d" % aid).status == 404
    entries = a.get("/api/v1/audit?limit=50").body["entries"]
    actions = [e["action"] for e in entries if "colleague@acme.test" in (e["detail"] or "")]
    assert {"account.add", "account.update", "account.delete"} <= set(actions), actions
    assert all(e["tenant"] == "acme" for e in entries)
    assert a.get("/api/v1/audit?since=bogus").status == 400
    assert a.get("/api/v1/audit?limit=100001").status == 400


def test_own_password_change(api_env):
    add_account(api_env.moat, "pw@acme.test")
    a = logged_in(api_env, "pw@acme.test")
    other = logged_in(api_env, "pw@acme.test")
    assert a.post("/api/v1/account/password", {"current": "wrong one!!", "new": "another password"}).status == 403
    assert a.post("/api/v1/account/password", {"current": PASSWORD, "new": "short"}).status == 400
    assert a.post("/api/v1/account/password", {"current": PASSWORD, "new": "another password"}).status == 200
    assert a.get("/api/v1/session").status == 200        # this session stays
    assert other.get("/api/v1/session").status == 401    # the other one ends
    api(api_env).login("pw@acme.test", "another password")


# ---------------------------------------------------------------- HTTPS
def test_https(make_env):
    env = make_env(conf={"http_tls": "on"})
    add_account(env.moat, "admin@acme.test")
    a = Api(env.moat.http_port, https=True)
    r = a.login("admin@acme.test")
    assert "; Secure" in r.cookies[0]
    assert r.headers["strict-transport-security"].startswith("max-age=")
    assert a.get("/api/v1/config").status == 200
    plain = Api(env.moat.http_port)
    with pytest.raises(Exception):
        plain.get("/healthz")
