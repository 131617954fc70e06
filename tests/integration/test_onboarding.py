"""Onboarding (issue 7 "the first tenant admin gets a login mail and walks
the wizard", issue 6's wizard profile step; docs/onboarding.md): an operator
creates a tenant with an administrator address (API or moatctl); that
address gets the login mail with a one-time link that sets the first
password and logs in; the wizard's profile step mails a confirmation link
that must be clicked. Links are single use, expire, are replaced by a
re-sent mail, and wrong ones are throttled like logins."""

import email
import email.policy
import re
import sqlite3
import time

from api_client import PASSWORD, Api, add_account
from conftest import wait_until

OPERATOR = "op@moat.test"
NEW_PASSWORD = "first password 2026"


def mails_to(env, addr):
    out = []
    for m in env.downstream.received():
        if addr in m.rcpt_tos:
            out.append(email.message_from_bytes(m.data, policy=email.policy.default))
    return out


def link_in(msg, kind):
    body = msg.get_body(preferencelist=("plain",)).get_content()
    m = re.search(r"(\S+)/#/%s\?token=([A-Za-z0-9_-]+)" % kind, body)
    assert m, body
    return m.group(1), m.group(2), body


def wait_link(env, addr, kind, n=1):
    wait_until(lambda: len(mails_to(env, addr)) >= n, 20, msg="mail %d to %s" % (n, addr))
    return link_in(mails_to(env, addr)[n - 1], kind)


def operator(env):
    add_account(env.moat, OPERATOR, tenant=None)
    op = Api(env.moat.http_port)
    op.login(OPERATOR)
    return op


def test_first_admin_login_mail_sets_the_password_once(env):
    op = operator(env)
    r = op.post("/api/v1/tenants", {"company_id": "newco", "name": "New Co", "admin_email": "boss@protected.test"})
    assert r.status == 201 and r.body["admin_login_mail"] is True, r.body
    base, token, body = wait_link(env, "boss@protected.test", "setup")
    msg = mails_to(env, "boss@protected.test")[0]
    assert "New Co" in msg["Subject"] and "管理者アカウント" in msg["Subject"], msg["Subject"]
    assert "newco" in body and "boss@protected.test" in body and "パスワードを設定" in body
    assert base == "http://%s:%d" % (env.moat.conf.get("hostname", "") or base.split("//")[1].split(":")[0],
                                     env.moat.http_port)
    # the account exists but no password works yet
    b = Api(env.moat.http_port)
    b.login("boss@protected.test", PASSWORD, expect=401)
    # a weak password is refused without spending the link
    r = b.post("/api/v1/setup", {"token": token, "password": "short"})
    assert r.status == 400 and "password" in r.error, r.body
    r = b.post("/api/v1/setup", {"token": token, "password": NEW_PASSWORD})
    assert r.status == 200 and r.body["tenant"] == "newco" and r.body["role"] == "full", r.body
    assert r.body["wizard_pending"] is True and r.body["totp_recommended"] is True
    b.csrf = r.body["csrf_token"]
    assert b.get("/api/v1/session").body["email"] == "boss@protected.test"
    prof = b.get("/api/v1/profile").body
    assert prof["email_confirmed"] is not None          # the login mail proved the mailbox
    assert prof["tenant"] == "newco" and prof["mx_host"].startswith("newco.")
    # the link works once
    c = Api(env.moat.http_port)
    r = c.post("/api/v1/setup", {"token": token, "password": NEW_PASSWORD})
    assert r.status == 400 and "not valid" in r.error, r.body
    # and the password it set is the login now
    c.login("boss@protected.test", NEW_PASSWORD)
    audit = op.get("/api/v1/audit?tenant=newco").body
    assert any(e["action"] == "account.setup" for e in audit["entries"]), audit


def test_resent_link_replaces_the_old_one_and_links_expire(env):
    op = operator(env)
    assert op.post("/api/v1/tenants", {"company_id": "resend", "admin_email": "it@protected.test"}).status == 201
    _, old, _ = wait_link(env, "it@protected.test", "setup")
    r = op.post("/api/v1/tenants/resend/admin-mail", {"email": "it@protected.test"})
    assert r.status == 200 and r.body["mailed"] is True and r.body["expires"], r.body
    _, new, _ = wait_link(env, "it@protected.test", "setup", 2)
    assert new != old
    a = Api(env.moat.http_port)
    assert a.post("/api/v1/setup", {"token": old, "password": NEW_PASSWORD}).status == 400
    # an administrator of another tenant is not found through this tenant
    assert op.post("/api/v1/tenants/acme/admin-mail", {"email": "it@protected.test"}).status == 404
    # a tenant administrator is no operator
    add_account(env.moat, "admin@acme.test")
    t = Api(env.moat.http_port)
    t.login("admin@acme.test")
    assert t.post("/api/v1/tenants/resend/admin-mail", {"email": "it@protected.test"}).status == 403
    # expired: the store's expiry is in the past
    db = sqlite3.connect(str(env.moat.data_dir / "moat.db"))
    db.execute("UPDATE account_tokens SET expires = ? WHERE used IS NULL", (time.time() - 1,))
    db.commit()
    db.close()
    r = a.post("/api/v1/setup", {"token": new, "password": NEW_PASSWORD})
    assert r.status == 400 and "expired" in r.error, r.body


def test_wrong_links_are_throttled(env):
    a = Api(env.moat.http_port)
    codes = [a.post("/api/v1/setup", {"token": "x" * 43, "password": NEW_PASSWORD}).status for _ in range(30)]
    assert codes[0] == 400 and 429 in codes, codes
    r = a.post("/api/v1/profile/confirm", {"token": "y" * 43})
    assert r.status == 429 and r.headers.get("retry-after"), r.body


def test_profile_step_confirms_the_address_by_mail(env):
    op = operator(env)
    assert op.post("/api/v1/tenants", {"company_id": "wizco", "admin_email": "first@protected.test"}).status == 201
    _, token, _ = wait_link(env, "first@protected.test", "setup")
    b = Api(env.moat.http_port)
    r = b.post("/api/v1/setup", {"token": token, "password": NEW_PASSWORD})
    b.csrf = r.body["csrf_token"]
    # validation
    assert b.put("/api/v1/profile", {"last_name": "山田"}).status == 400
    assert b.put("/api/v1/profile", {"last_name": "山田", "first_name": "\x01"}).status == 400
    assert b.put("/api/v1/profile", {"last_name": "山田", "first_name": "太郎", "email": "nope"}).status == 400
    assert b.put("/api/v1/profile", {"last_name": "山田", "first_name": "太郎"}, csrf=False).status == 403
    # a new address: a confirmation link goes there; the account keeps its address until it is clicked
    r = b.put("/api/v1/profile", {"last_name": "山田", "first_name": "太郎", "email": "yamada@protected.test"})
    assert r.status == 200 and r.body["confirmation_sent"] is True and r.body["last_name"] == "山田", r.body
    assert r.body["email"] == "first@protected.test"
    _, ctoken, body = wait_link(env, "yamada@protected.test", "confirm")
    assert "yamada@protected.test" in body and "確認" in body
    c = Api(env.moat.http_port)                          # the link may be opened anywhere
    r = c.post("/api/v1/profile/confirm", {"token": ctoken})
    assert r.status == 200 and r.body["confirmed"] is True, r.body
    assert c.post("/api/v1/profile/confirm", {"token": ctoken}).status == 400
    prof = b.get("/api/v1/profile").body
    assert prof["email"] == "yamada@protected.test" and prof["email_confirmed"] and prof["first_name"] == "太郎"
    # the wizard is done: the console stops sending them to it
    assert b.get("/api/v1/session").body["wizard_pending"] is True
    assert b.put("/api/v1/profile", {"wizard_done": True}).status == 200
    assert b.get("/api/v1/session").body["wizard_pending"] is False
    Api(env.moat.http_port).login("yamada@protected.test", NEW_PASSWORD)
    # an address another account has is refused
    add_account(env.moat, "taken@acme.test")
    assert b.put("/api/v1/profile", {"last_name": "a", "first_name": "b", "email": "taken@acme.test"}).status == 409


def test_moatctl_tenant_add_mails_the_administrator(env):
    cp = env.moat.ctl("tenant", "add", "ctlco", "--admin-email", "ctl@protected.test")
    assert "login mail queued" in cp.stdout, cp.stdout
    _, token, _ = wait_link(env, "ctl@protected.test", "setup")
    cp = env.moat.ctl("tenant", "admin-mail", "ctlco", "ctl@protected.test")
    _, token2, _ = wait_link(env, "ctl@protected.test", "setup", 2)
    a = Api(env.moat.http_port)
    assert a.post("/api/v1/setup", {"token": token, "password": NEW_PASSWORD}).status == 400
    assert a.post("/api/v1/setup", {"token": token2, "password": NEW_PASSWORD}).status == 200
    # an address already taken is refused before anything is created
    cp = env.moat.ctl("tenant", "add", "other", "--admin-email", "ctl@protected.test", check=False)
    assert cp.returncode == 1 and "already exists" in cp.stderr, cp.stderr
    assert env.moat.ctl("tenant", "admin-mail", "acme", "ctl@protected.test", check=False).returncode == 1


def set_up(env, op, company, addr):
    """the operator creates the tenant; its administrator uses the login link"""
    assert op.post("/api/v1/tenants", {"company_id": company, "admin_email": addr}).status == 201
    _, token, _ = wait_link(env, addr, "setup")
    b = Api(env.moat.http_port)
    r = b.post("/api/v1/setup", {"token": token, "password": NEW_PASSWORD})
    assert r.status == 200, r.body
    b.csrf = r.body["csrf_token"]
    return b, token


def test_wizard_step_waits_for_the_profile_and_resumes(env):
    op = operator(env)
    b, setup_token = set_up(env, op, "stepco", "step@protected.test")
    prof = b.get("/api/v1/profile").body
    assert prof["wizard_step"] == 0 and prof["profile_done"] is False, prof
    # no step past the profile, and no finishing, before the names and a confirmed address
    r = b.put("/api/v1/profile", {"wizard_step": 1})
    assert r.status == 409 and "profile" in r.error, r.body
    assert b.put("/api/v1/profile", {"wizard_done": True}).status == 409
    for bad in (4, -1, "2", 1.5, None):
        assert b.put("/api/v1/profile", {"wizard_step": bad}).status == 400, bad
    # the login link confirmed the address: names complete the profile, no mail needed
    r = b.put("/api/v1/profile", {"last_name": "佐藤", "first_name": "花子", "email": "step@protected.test"})
    assert r.status == 200 and r.body["confirmation_sent"] is False and r.body["profile_done"] is True, r.body
    r = b.put("/api/v1/profile", {"wizard_step": 2})
    assert r.status == 200 and r.body["wizard_step"] == 2, r.body
    # a new login resumes there
    c = Api(env.moat.http_port)
    c.login("step@protected.test", NEW_PASSWORD)
    assert c.get("/api/v1/session").body["wizard_pending"] is True
    assert c.get("/api/v1/profile").body["wizard_step"] == 2
    # a link works only for its own purpose
    assert Api(env.moat.http_port).post("/api/v1/profile/confirm", {"token": setup_token}).status == 400
    r = c.post("/api/v1/profile/confirm-email", {"email": "hanako@protected.test"})
    assert r.status == 200 and r.body["confirmation_sent"] is True, r.body
    _, first, _ = wait_link(env, "hanako@protected.test", "confirm")
    assert Api(env.moat.http_port).post("/api/v1/setup", {"token": first, "password": NEW_PASSWORD}).status == 400
    # at most one confirmation mail per 20 seconds
    r = c.post("/api/v1/profile/confirm-email", {"email": "hanako@protected.test"})
    assert r.status == 429 and int(r.headers["retry-after"]) >= 1, r.body
    r = c.put("/api/v1/profile", {"last_name": "佐藤", "first_name": "花", "email": "hanako@protected.test"})
    assert r.status == 429 and c.get("/api/v1/profile").body["first_name"] == "花子"   # nothing saved
    assert c.post("/api/v1/profile/confirm-email", {"email": "nope"}).status == 400
    assert c.post("/api/v1/profile/confirm-email", {"email": "x@protected.test"}, csrf=False).status == 403
    db = sqlite3.connect(str(env.moat.data_dir / "moat.db"))
    db.execute("UPDATE account_tokens SET created = created - 60")
    db.commit()
    db.close()
    assert c.post("/api/v1/profile/confirm-email", {"email": "hanako@protected.test"}).status == 200
    _, second, _ = wait_link(env, "hanako@protected.test", "confirm", 2)
    a = Api(env.moat.http_port)
    assert a.post("/api/v1/profile/confirm", {"token": first}).status == 400      # replaced
    assert a.post("/api/v1/profile/confirm", {"token": second}).status == 200
    assert c.get("/api/v1/profile").body["email"] == "hanako@protected.test"
    r = c.put("/api/v1/profile", {"wizard_step": 3, "wizard_done": True})
    assert r.status == 200 and r.body["wizard_done"] and r.body["wizard_step"] == 3, r.body
    assert c.get("/api/v1/session").body["wizard_pending"] is False


def test_one_tenant_admin_cannot_touch_another_tenants_onboarding(env):
    op = operator(env)
    a, _ = set_up(env, op, "tena", "a@protected.test")
    b, _ = set_up(env, op, "tenb", "b@protected.test")
    assert a.put("/api/v1/profile", {"last_name": "A", "first_name": "A"}).status == 200
    pb = b.get("/api/v1/profile").body
    assert pb["email"] == "b@protected.test" and pb["last_name"] == "" and pb["tenant"] == "tenb", pb
    assert a.get("/api/v1/profile").body["tenant"] == "tena"
    # neither the login mail of another tenant's administrator nor its domains
    assert a.post("/api/v1/tenants/tenb/admin-mail", {"email": "b@protected.test"}).status == 403
    assert a.post("/api/v1/tenants/tena/admin-mail", {"email": "a@protected.test"}).status == 403
    assert a.post("/api/v1/domains", {"name": "b.test", "tenant": "tenb"}).status == 403
    # the profile belongs to a session: an API token has none
    assert Api(env.moat.http_port).get("/api/v1/profile").status == 401
    # another administrator's address cannot be taken over by confirmation
    assert a.post("/api/v1/profile/confirm-email", {"email": "b@protected.test"}).status == 409
    assert b.get("/api/v1/session").body["email"] == "b@protected.test"
