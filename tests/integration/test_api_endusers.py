"""End-user administration against a running moatd with two tenants (acme:
protected.test, beta: beta.test, both verified; acme2.test unverified): the
End User Console settings, adding accounts with the password-set mail
delivered to the downstream server, list / search / paging, CSV import
(errors by line, all or nothing, idempotent), CSV export (quoting,
formula-safe, round trip), enable / disable / delete, sending the mail
again, the read-only role and CSRF, an operator's ?tenant=, and moatctl
enduser. Tenant isolation of /api/v1/endusers/{id} is in
test_api_mail.py::test_tenant_isolation."""

import csv
import email
import email.policy
import io
import re

import pytest

from api_client import Api, add_account
from conftest import domain, tenant_doc, wait_until

CODE_RE = re.compile(r"\b[A-HJKMNP-Z2-9]{5}-[A-HJKMNP-Z2-9]{5}\b")


def two_tenants(ds):
    doc = tenant_doc([domain("protected.test", [ds]), domain("acme2.test", [ds], verified=False)],
                     company_id="acme")
    beta = tenant_doc([domain("beta.test", [ds])], company_id="beta")["tenants"][0]
    doc["tenants"].append(beta)
    return doc


@pytest.fixture(scope="module")
def env(request):
    from conftest import EnvFactory
    f = EnvFactory()
    e = f.make(doc=two_tenants, name="moatd-endusers")
    m = e.moat
    add_account(m, "op@moat.test", tenant=None)
    add_account(m, "admin@acme.test")
    add_account(m, "ro@acme.test", role="read-only")
    add_account(m, "admin@beta.test", tenant="beta")
    yield e
    problems = f.close_all()
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


def session(env, who):
    a = Api(env.moat.http_port)
    a.login(who)
    return a


def euc_on(a, on=True):
    r = a.put("/api/v1/end-user-console", {"enabled": on})
    assert r.status == 200, r.body


def mails_to(env, addr):
    return [x for x in env.downstream.received() if addr in x.rcpt_tos]


def mail_text(rec) -> str:
    msg = email.message_from_bytes(rec.data, policy=email.policy.default)
    part = msg.get_body(preferencelist=("plain",))
    return str(msg["Subject"]) + "\n" + part.get_content()


def wait_code(env, addr, n=1) -> str:
    """the password-set code in the n-th mail delivered to addr"""
    wait_until(lambda: len(mails_to(env, addr)) >= n, 20, msg="password-set mail #%d to %s" % (n, addr))
    text = mail_text(mails_to(env, addr)[n - 1])
    m = CODE_RE.search(text)
    assert m, text
    return m.group(0)


def announced_body_status(env, a, length, path="/api/v1/endusers/import") -> int:
    """the status of a POST announcing a body of length bytes (Content-Length),
    sending none: the limit is checked before the body is read"""
    import socket
    with socket.create_connection(("127.0.0.1", env.moat.http_port), timeout=10) as s:
        s.sendall(("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nCookie: moat_session=%s\r\n"
                   "X-CSRF-Token: %s\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n"
                   % (path, a.cookie, a.csrf, length)).encode())
        head = s.recv(4096).decode("latin-1")
    return int(head.split()[1])


# ---------------------------------------------------------------- settings
def test_settings(env):
    a = session(env, "admin@acme.test")
    r = a.get("/api/v1/end-user-console")
    assert r.status == 200
    assert r.body == {"enabled": False, "local_accounts": True, "enforce_2fa": False,
                      "quarantine_categories": ["spam", "graymail"], "tenant": "acme", "accounts": 0,
                      "accounts_max": 100000}
    bad = [({"enabled": "yes"}, "enabled: must be true or false"),
           ({"sso": True}, "sso: unknown key"),
           ({"quarantine_categories": ["ham"]}, "quarantine_categories[0]: must be one of: spam, phishing"),
           ({"quarantine_categories": ["spam", "spam"]}, "quarantine_categories[1]: duplicate value")]
    for body, err in bad:
        r = a.put("/api/v1/end-user-console", body)
        assert r.status == 400 and r.error.startswith(err), (body, r.body)
    # read-only role and a missing CSRF token are refused; nothing changes
    ro = session(env, "ro@acme.test")
    assert ro.get("/api/v1/end-user-console").status == 200
    r = ro.put("/api/v1/end-user-console", {"enabled": True})
    assert r.status == 403 and r.error == "your role is read-only"
    r = a.put("/api/v1/end-user-console", {"enabled": True}, csrf=False)
    assert r.status == 403 and "CSRF" in r.error
    assert a.get("/api/v1/end-user-console").body["enabled"] is False
    # a change (GET's read-only keys are accepted back), audited, in the tenant document
    body = dict(a.get("/api/v1/end-user-console").body, enforce_2fa=True,
                quarantine_categories=["spam", "phishing", "graymail"])
    r = a.put("/api/v1/end-user-console", body)
    assert r.status == 200 and r.body["enforce_2fa"] is True, r.body
    doc = a.get("/api/v1/config").body["tenants"][0]
    assert doc["end_user_console"] == {"enabled": False, "local_accounts": True, "enforce_2fa": True,
                                       "quarantine_categories": ["spam", "phishing", "graymail"]}
    assert any(e["action"] == "euc.settings" for e in a.get("/api/v1/audit").body["entries"])
    # the tenant document round-trips it (PUT /api/v1/config with the exported document)
    assert a.put("/api/v1/config", {"tenants": [doc]}).status == 200
    assert a.get("/api/v1/end-user-console").body["enforce_2fa"] is True
    # beta is untouched; an operator names the tenant
    assert session(env, "admin@beta.test").get("/api/v1/end-user-console").body["enforce_2fa"] is False
    op = session(env, "op@moat.test")
    r = op.get("/api/v1/end-user-console")
    assert r.status == 400 and "?tenant=" in r.error
    assert op.get("/api/v1/end-user-console?tenant=acme").body["enforce_2fa"] is True
    assert op.get("/api/v1/end-user-console?tenant=nosuch").status == 404
    assert a.put("/api/v1/end-user-console", {"enforce_2fa": False}).status == 200


# ---------------------------------------------------------------- add, mail
def test_add_and_password_mail(env):
    a = session(env, "admin@acme.test")
    euc_on(a, False)
    # the console is off: the account is made, no mail
    r = a.post("/api/v1/endusers", {"email": "Early@Protected.test", "name": "Early Bird"})
    assert r.status == 201, r.body
    early = r.body
    assert early["email"] == "early@protected.test" and early["enabled"] is True
    assert early["password_set"] is False and early["password_mail"] == "not sent"
    assert "End User Console" in early["password_mail_reason"]
    assert a.post("/api/v1/endusers/%d/password-mail" % early["id"]).status == 409
    euc_on(a)
    # now the mail goes, with a code, in Japanese and English
    r = a.post("/api/v1/endusers", {"email": "taro@protected.test", "name": "山田 太郎"})
    assert r.status == 201 and r.body["password_mail"] == "queued", r.body
    assert r.body["password_mail_sent"] and r.body["code_expires"]
    taro = r.body
    code = wait_code(env, "taro@protected.test")
    text = mail_text(mails_to(env, "taro@protected.test")[0])
    assert "山田 太郎" in text and "パスワード" in text and "Set your End User Console password" in text
    assert ":%d/euc/" % env.moat.http_port in text      # console_url (here: from hostname and http_listen) + /euc/
    assert code not in str(a.get("/api/v1/endusers/%d" % taro["id"]).body)     # never in the API
    assert code not in env.moat.log_text()                                    # nor in the log
    # send again: a new code
    r = a.post("/api/v1/endusers/%d/password-mail" % taro["id"])
    assert r.status == 200 and r.body["password_mail"] == "queued"
    code2 = wait_code(env, "taro@protected.test", 2)
    assert code2 != code
    # the early account gets its mail on request
    assert a.post("/api/v1/endusers/%d/password-mail" % early["id"]).status == 200
    wait_code(env, "early@protected.test")
    # send_mail false, and a disabled account: no mail
    r = a.post("/api/v1/endusers", {"email": "quiet@protected.test", "send_mail": False})
    assert r.status == 201 and r.body["password_mail"] == "not sent"
    r = a.post("/api/v1/endusers", {"email": "off@protected.test", "enabled": False})
    assert r.status == 201 and r.body["enabled"] is False and r.body["password_mail_reason"] == "the account is disabled"
    assert a.post("/api/v1/endusers/%d/password-mail" % r.body["id"]).status == 409
    # validation
    bad = [({"email": "not an address"}, 400, "must be an e-mail address"),
           ({"email": "x@acme2.test"}, 400, "x@acme2.test is not in a verified domain of tenant acme"),
           ({"email": "x@beta.test"}, 400, "is not in a verified domain"),
           ({"email": "taro@protected.test"}, 409, "exists already"),
           ({"email": "y@protected.test", "name": "a\nb"}, 400, "name: the name must not contain control"),
           ({"email": "y@protected.test", "name": "x" * 129}, 400, "name: the name is too long"),
           ({"email": "y@protected.test", "enabled": "no"}, 400, "enabled: must be true or false"),
           ({"email": "y@protected.test", "role": "full"}, 400, "role: unknown key"),
           ({"name": "nobody"}, 400, "email is required")]
    for body, status, err in bad:
        r = a.post("/api/v1/endusers", body)
        assert r.status == status and err in r.error, (body, r.status, r.body)
    ro = session(env, "ro@acme.test")
    assert ro.post("/api/v1/endusers", {"email": "z@protected.test"}).status == 403
    assert a.post("/api/v1/endusers", {"email": "z@protected.test"}, csrf=False).status == 403
    assert a.get("/api/v1/endusers?q=z@protected").body["total"] == 0
    # an operator adds to a named tenant only
    op = session(env, "op@moat.test")
    assert op.post("/api/v1/endusers", {"email": "o@beta.test"}).status == 400
    r = op.post("/api/v1/endusers?tenant=beta", {"email": "o@beta.test"})
    assert r.status == 201 and r.body["tenant"] == "beta"
    audit = [e["action"] for e in a.get("/api/v1/audit").body["entries"]]
    assert "enduser.add" in audit and "enduser.password_mail" in audit


# ---------------------------------------------------------------- list, change, delete
def test_list_patch_delete(env):
    a = session(env, "admin@acme.test")
    for i in range(5):
        assert a.post("/api/v1/endusers", {"email": "page%d@protected.test" % i, "name": "Pager %d" % i,
                                           "send_mail": False}).status == 201
    r = a.get("/api/v1/endusers?q=PAGER&limit=2&offset=1")
    assert r.status == 200 and r.body["total"] == 5 and r.body["limit"] == 2 and r.body["offset"] == 1
    assert [u["email"] for u in r.body["endusers"]] == ["page1@protected.test", "page2@protected.test"]
    assert a.get("/api/v1/endusers?q=%25").body["total"] == 0          # LIKE wildcards are literal
    assert a.get("/api/v1/endusers?limit=1001").status == 400
    assert a.get("/api/v1/endusers?offset=x").status == 400
    uid = r.body["endusers"][0]["id"]
    ro = session(env, "ro@acme.test")
    assert ro.get("/api/v1/endusers/%d" % uid).status == 200
    assert ro.patch("/api/v1/endusers/%d" % uid, {"enabled": False}).status == 403
    assert ro.delete("/api/v1/endusers/%d" % uid).status == 403
    assert a.patch("/api/v1/endusers/%d" % uid, {"enabled": False}, csrf=False).status == 403
    r = a.patch("/api/v1/endusers/%d" % uid, {"enabled": False, "name": "Renamed"})
    assert r.status == 200 and r.body["enabled"] is False and r.body["name"] == "Renamed"
    assert a.patch("/api/v1/endusers/%d" % uid, {"enabled": 0}).status == 400
    assert a.patch("/api/v1/endusers/%d" % uid, {"email": "x@protected.test"}).status == 400
    r = a.patch("/api/v1/endusers/%d" % uid, {"enabled": True})
    assert r.body["enabled"] is True and r.body["name"] == "Renamed"
    actions = [e["action"] for e in a.get("/api/v1/audit").body["entries"]]
    assert "enduser.disable" in actions and "enduser.enable" in actions
    assert a.delete("/api/v1/endusers/%d" % uid, csrf=False).status == 403
    r = a.delete("/api/v1/endusers/%d" % uid)
    assert r.status == 200 and r.body["email"] == "page1@protected.test"
    assert a.get("/api/v1/endusers/%d" % uid).body == {"error": "not found"}
    assert a.delete("/api/v1/endusers/%d" % uid).status == 404
    assert a.get("/api/v1/endusers/abc").status == 404


# ---------------------------------------------------------------- CSV import / export
def test_csv_import_export(env):
    a = session(env, "admin@acme.test")
    euc_on(a)
    before = a.get("/api/v1/endusers?limit=1000").body["total"]
    # errors by line; nothing applied
    bad = ("email,name,enabled\n"
           "imp1@protected.test,One,true\n"
           "not-an-address,Two,\n"
           "imp3@acme2.test,Three,\n"
           "imp4@protected.test,Four,maybe\n"
           "IMP1@protected.test,Dup,\n")
    r = a.post("/api/v1/endusers/import", {"csv": bad})
    assert r.status == 400, r.body
    # the file's own errors first (every one, by line); domains and duplicates once it reads cleanly
    assert r.body["error"] == "the CSV file has 2 errors: nothing was imported"
    assert r.body["error_count"] == 2
    assert r.body["errors"] == [
        {"line": 3, "error": 'email "not-an-address": must be an e-mail address (local-part@domain)'},
        {"line": 5, "error": "enabled: must be true or false (or empty)"}]
    assert a.get("/api/v1/endusers?limit=1000").body["total"] == before
    r = a.post("/api/v1/endusers/import", {"csv": "email\nimp1@protected.test\nimp3@acme2.test\n"})
    assert r.status == 400 and r.body["errors"] == [
        {"line": 3, "error": "imp3@acme2.test is not in a verified domain of tenant acme"}]
    r = a.post("/api/v1/endusers/import", {"csv": "email\nx@protected.test\nX@PROTECTED.TEST\n"})
    assert r.body["errors"] == [{"line": 3, "error": "x@protected.test appears twice (first on line 2)"}]
    r = a.post("/api/v1/endusers/import", {"csv": "mail,name\n"})
    assert r.status == 400 and r.body["errors"][0]["line"] == 1
    assert a.post("/api/v1/endusers/import", {"csv": 5}).status == 400
    assert a.post("/api/v1/endusers/import", {}).status == 400
    ro = session(env, "ro@acme.test")
    good = ("\ufeffEmail,Name,Enabled\r\n"
            "imp1@protected.test,\"Ichiro, Suzuki\",true\r\n"
            "imp2@protected.test,\"=HYPERLINK(\"\"http://evil.example\"\")\",\r\n"
            "imp3@protected.test,Three,false\r\n")
    assert ro.post("/api/v1/endusers/import", {"csv": good}).status == 403
    assert a.post("/api/v1/endusers/import", {"csv": good}, csrf=False).status == 403
    r = a.post("/api/v1/endusers/import", {"csv": good})
    assert r.status == 200, r.body
    assert (r.body["rows"], r.body["created"], r.body["updated"], r.body["unchanged"]) == (3, 3, 0, 0)
    assert r.body["password_mails"] == 2                        # imp3 is disabled
    wait_code(env, "imp1@protected.test")
    wait_code(env, "imp2@protected.test")
    # the same file again: nothing changes, no new mail
    r = a.post("/api/v1/endusers/import", {"csv": good})
    assert (r.body["created"], r.body["updated"], r.body["unchanged"], r.body["password_mails"]) == (0, 0, 3, 0)
    # a file that changes one account
    r = a.post("/api/v1/endusers/import", {"csv": "email,enabled\nimp3@protected.test,yes\n"})
    assert (r.body["created"], r.body["updated"]) == (0, 1)
    assert any(e["action"] == "enduser.import" for e in a.get("/api/v1/audit").body["entries"])

    # export: quoted, formula-safe, an attachment
    r = a.get("/api/v1/endusers/export")
    assert r.status == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.headers["content-disposition"] == 'attachment; filename="endusers-acme.csv"'
    rows = list(csv.reader(io.StringIO(r.body)))
    assert rows[0] == ["email", "name", "enabled", "password_set", "created", "last_login"]
    by = {row[0]: row for row in rows[1:]}
    assert by["imp1@protected.test"][1:4] == ["Ichiro, Suzuki", "true", "false"]
    assert by["imp2@protected.test"][1] == "'=HYPERLINK(\"http://evil.example\")"
    assert len(rows) - 1 == a.get("/api/v1/endusers").body["total"]
    assert all(u.endswith("@protected.test") for u in by)      # acme's only
    # round trip: the export imports as "nothing to change"
    r2 = a.post("/api/v1/endusers/import", {"csv": r.body})
    assert r2.status == 200 and r2.body["created"] == 0 and r2.body["updated"] == 0, r2.body
    assert r2.body["unchanged"] == len(rows) - 1
    assert a.get("/api/v1/endusers?q=imp2").body["endusers"][0]["name"] == "=HYPERLINK(\"http://evil.example\")"
    # limits: more than 2 MB of CSV, a body over 8 MB
    big = "email\n" + "x" * (2 * 1024 * 1024)
    r = a.post("/api/v1/endusers/import", {"csv": big})
    assert r.status == 400 and "too large" in r.body["errors"][0]["error"]
    assert announced_body_status(env, a, 8 * 1024 * 1024) != 413      # the import's limit: 8 MB
    assert announced_body_status(env, a, 8 * 1024 * 1024 + 1) == 413
    assert announced_body_status(env, a, 70000, "/api/v1/endusers") == 413   # other bodies: 64 KB
    # an operator exports a named tenant; a tenant administrator's ?tenant= is ignored
    op = session(env, "op@moat.test")
    assert op.get("/api/v1/endusers/export").status == 400
    assert "o@beta.test" in op.get("/api/v1/endusers/export?tenant=beta").body
    b = session(env, "admin@beta.test")
    assert "imp1@protected.test" not in b.get("/api/v1/endusers/export?tenant=acme").body


# ---------------------------------------------------------------- moatctl
def test_moatctl_enduser(env, tmp_path):
    m = env.moat
    cp = m.ctl("enduser", "add", "cli@protected.test", "--tenant", "acme", "--name", "CLI User")
    assert "end user" in cp.stdout and "password-set mail queued" in cp.stdout, cp.stdout + cp.stderr
    wait_code(env, "cli@protected.test")
    cp = m.ctl("enduser", "add", "cli@acme2.test", "--tenant", "acme", check=False)
    assert cp.returncode == 1 and "not in a verified domain" in cp.stderr
    rows = m.ctl_json("user", "list", "--tenant", "acme", "--search", "cli@")
    assert [(u["email"], u["name"], u["enabled"]) for u in rows] == [("cli@protected.test", "CLI User", True)]
    f = tmp_path / "users.csv"
    f.write_text("email,name\ncli2@protected.test,Two\nbad,Three\n")
    cp = m.ctl("enduser", "import", str(f), "--tenant", "acme", check=False)
    assert cp.returncode == 1 and "users.csv:3: email \"bad\"" in cp.stderr, cp.stderr
    f.write_text("email,name\ncli2@protected.test,Two\n")
    cp = m.ctl("enduser", "import", str(f), "--tenant", "acme", "--no-mail")
    assert "1 created" in cp.stdout
    out = m.ctl("enduser", "export", "--tenant", "acme").stdout
    assert "cli2@protected.test,Two,true,false," in out
    m.ctl("enduser", "disable", "cli2@protected.test", "--tenant", "acme")
    assert "cli2@protected.test,Two,false" in m.ctl("enduser", "export", "--tenant", "acme").stdout
    cp = m.ctl("enduser", "send-mail", "cli2@protected.test", "--tenant", "acme", check=False)
    assert cp.returncode == 1 and "the account is disabled" in cp.stderr
    m.ctl("enduser", "delete", "cli2@protected.test", "--tenant", "acme")
    cp = m.ctl("enduser", "delete", "cli2@protected.test", "--tenant", "acme", check=False)
    assert cp.returncode == 1 and "no such end user" in cp.stderr
    assert m.ctl("enduser", "list", "--tenant", "nosuch", check=False).returncode == 1
    assert m.ctl("enduser", "list", check=False).returncode == 1
