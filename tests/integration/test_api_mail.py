"""The REST API's tenant data against a running moatd with two tenants (acme:
protected.test, beta: beta.test): the tenant document (GET/PUT with
`moatctl import`'s validation and messages), tracking search and detail,
statistics, quarantine list / preview / release / delete, the queue, and
tenant isolation: every object endpoint of tenant B with tenant A's session
(and token) answers 404, exactly like an object that does not exist."""

import base64
import json
import re
import pytest

from api_client import PASSWORD, Api, add_account, add_token
from conftest import domain, make_message, tenant_doc, wait_until

ORIGINAL = make_message(subject="quarantined invoice", body="Please pay.\r\n\x01日本語\r\n",
                        to="alice@protected.test")


def two_tenants(ds):
    doc = tenant_doc([domain("protected.test", [ds])], company_id="acme")
    beta = tenant_doc([domain("beta.test", [ds])], company_id="beta")["tenants"][0]
    beta["admin_email"] = "admin@beta.test"
    doc["tenants"].append(beta)
    return doc


@pytest.fixture(scope="module")
def env2(request):
    from conftest import EnvFactory
    f = EnvFactory()
    e = f.make(doc=two_tenants, name="moatd-api-mail")
    m = e.moat
    add_account(m, "op@moat.test", tenant=None)
    add_account(m, "admin@acme.test")
    add_account(m, "ro@acme.test", role="read-only")
    add_account(m, "admin@beta.test", tenant="beta")
    yield e
    problems = f.close_all()
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


def session(env, email):
    a = Api(env.moat.http_port)
    a.login(email)
    return a


def put_quarantine(env, tmp_path, tenant, rcpt, data=ORIGINAL):
    f = tmp_path / ("q-%s.eml" % tenant)
    f.write_bytes(data)
    [qid] = env.moat.ctl_json("quarantine", "put", "--tenant", tenant, "--sender", "bob@example.net",
                              "--rule", "Spam or Phish", "--reason", "Spam or Phish: spam (0.98)", "--rcpt", rcpt, str(f))
    return qid


# ---------------------------------------------------------------- the tenant document
def test_config_get_put(env2, tmp_path):
    a = session(env2, "admin@acme.test")
    r = a.get("/api/v1/config")
    assert r.status == 200 and [t["company_id"] for t in r.body["tenants"]] == ["acme"]
    exported = json.loads(env2.moat.ctl("export", "--tenant", "acme").stdout)
    assert r.body == exported
    doc = r.body
    doc["tenants"][0]["approved_senders"] = ["partner@trusted.test"]
    r = a.put("/api/v1/config", doc)
    assert r.status == 200 and r.body["changed"] == 1 and r.body["tenants"] == 1, r.body
    r = a.put("/api/v1/config", doc)
    assert r.status == 200 and r.body["changed"] == 0          # idempotent
    assert a.get("/api/v1/config").body["tenants"][0]["approved_senders"] == ["partner@trusted.test"]
    # the same validation and the same message as moatctl import; nothing applied
    bad = json.loads(json.dumps(doc))
    bad["tenants"][0]["domains"][0]["inbound_servers"][0]["port"] = 70000
    bad["tenants"][0]["approved_senders"] = []
    r = a.put("/api/v1/config", bad)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    cp = env2.moat.ctl("import", str(path), check=False)
    assert r.status == 400 and cp.returncode == 1
    assert r.error and r.error in cp.stderr, (r.error, cp.stderr)
    assert r.error.startswith("tenants[0].domains[0].inbound_servers[0].port:")
    assert a.get("/api/v1/config").body["tenants"][0]["approved_senders"] == ["partner@trusted.test"]
    r = a.put("/api/v1/config", raw=b'{"tenants": [')
    assert r.status == 400 and "invalid JSON" in r.error
    # a tenant administrator cannot touch, create or learn about another tenant
    other = json.loads(json.dumps(doc))
    other["tenants"][0]["company_id"] = "beta"
    r = a.put("/api/v1/config", other)
    assert r.status == 403 and "your own tenant" in r.error
    assert a.put("/api/v1/config", {"tenants": [doc["tenants"][0], other["tenants"][0]]}).status == 403
    # verified: true is not trusted over the API
    v = json.loads(json.dumps(doc))
    v["tenants"][0]["domains"].append({"name": "fresh.test", "verified": True, "inbound_servers": [
        {"host": "127.0.0.1", "port": 25, "preference": 10}]})
    assert a.put("/api/v1/config", v).status == 200
    fresh = [d for d in a.get("/api/v1/config").body["tenants"][0]["domains"] if d["name"] == "fresh.test"][0]
    assert fresh["verified"] is False
    # audited with the caller
    entries = a.get("/api/v1/audit").body["entries"]
    assert any(e["action"] == "config.import" and e["actor"].startswith("admin@acme.test") for e in entries)
    # an operator sees every tenant, or one
    op = session(env2, "op@moat.test")
    ids = [t["company_id"] for t in op.get("/api/v1/config").body["tenants"]]
    assert ids == ["acme", "beta"]
    assert [t["company_id"] for t in op.get("/api/v1/config?tenant=beta").body["tenants"]] == ["beta"]
    assert op.get("/api/v1/config?tenant=nosuch").status == 404


def test_config_concurrent_edits(env2):
    """Two administrators load the document; the first save wins, the second
    (If-Match with the version it loaded) gets 412 instead of silently undoing
    the first; its reload then saves. Without If-Match the last save wins."""
    a, b = session(env2, "admin@acme.test"), session(env2, "admin@acme.test")
    ra, rb = a.get("/api/v1/config"), b.get("/api/v1/config")
    assert re.fullmatch(r'"[0-9a-f]{64}"', ra.headers["etag"]) and ra.headers["etag"] == rb.headers["etag"]
    da, db = ra.body, rb.body
    da["tenants"][0]["approved_senders"] = ["first@a.test"]
    r1 = a.put("/api/v1/config", da, headers={"If-Match": ra.headers["etag"]})
    assert r1.status == 200 and r1.headers["etag"] != ra.headers["etag"], r1.body
    assert r1.headers["etag"] == a.get("/api/v1/config").headers["etag"]   # the reply names the new version
    db["tenants"][0]["blocked_senders"] = ["second@b.test"]
    r2 = b.put("/api/v1/config", db, headers={"If-Match": rb.headers["etag"]})
    assert r2.status == 412 and "changed by someone else" in r2.error, r2.body
    now = a.get("/api/v1/config").body["tenants"][0]
    assert now["approved_senders"] == ["first@a.test"] and not now.get("blocked_senders")
    fresh = b.get("/api/v1/config")
    fresh.body["tenants"][0]["blocked_senders"] = ["second@b.test"]
    assert b.put("/api/v1/config", fresh.body, headers={"If-Match": fresh.headers["etag"]}).status == 200
    # another tenant's change is not a conflict for acme (the version is per tenant)
    beta_admin = session(env2, "admin@beta.test")
    e = a.get("/api/v1/config").headers["etag"]
    bd = beta_admin.get("/api/v1/config").body
    bd["tenants"][0]["approved_senders"] = ["x@beta-partner.test"]
    assert beta_admin.put("/api/v1/config", bd).status == 200      # no If-Match: last save wins
    assert a.get("/api/v1/config").headers["etag"] == e
    # an operator's version of one tenant is that tenant's
    op = session(env2, "op@moat.test")
    assert op.get("/api/v1/config?tenant=acme").headers["etag"] == e


# ---------------------------------------------------------------- tracking and stats
def test_tracking_and_stats(env2):
    qid = env2.send_ok("alice@protected.test")
    env2.downstream.wait_for_messages(1, timeout=15)
    a = session(env2, "admin@acme.test")

    def found():
        r = a.get("/api/v1/tracking?rcpt=alice@protected.test&since=1h")
        return [x for x in r.body["results"] if x["qid"] == qid and x["status"] == "delivered"]
    rows = wait_until(found, 15, msg="the message delivered in tracking")
    assert rows[0]["sender"] == "bob@example.net" and rows[0]["rcpt"] == "alice@protected.test"
    d = a.get("/api/v1/tracking/" + qid)
    assert d.status == 200 and d.body["qid"] == qid and d.body["sender"] == "bob@example.net"
    events = [e["event"] for e in d.body["timeline"]]
    assert "accepted" in events and "delivered" in json.dumps(d.body["timeline"]), events
    assert a.get("/api/v1/tracking?sender=bob@example.net&action=delivered").body["count"] >= 1
    assert a.get("/api/v1/tracking?since=yesterday").status == 400
    assert a.get("/api/v1/tracking?limit=0").status == 200
    assert a.get("/api/v1/tracking?rcpt=" + "a" * 300).status == 400
    assert a.get("/api/v1/tracking/NOTAQID").status == 404
    s = a.get("/api/v1/stats?domain=protected.test&since=1h")
    assert s.status == 200, s.body
    assert s.body["totals"]["messages"] >= 1 and s.body["totals"]["recipients"] >= 1
    assert {"rcpt": "alice@protected.test", "count": s.body["top_recipients"][0]["count"]} in s.body["top_recipients"]
    assert sum(p["messages"] for p in s.body["series"]) == s.body["totals"]["messages"]
    assert s.body["bucket_seconds"] == 300
    assert a.get("/api/v1/stats?domain=bad/domain").status == 400
    assert a.get("/api/v1/stats?since=now&until=1h").status == 400
    # a detection counts as a threat, by type, and its recipient as targeted
    gtube = make_message(subject="spam", body="XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X",
                         to="carol@protected.test")
    env2.send_ok("carol@protected.test", gtube)

    def spam_counted():
        b = a.get("/api/v1/stats?since=1h").body
        return any(t["type"] == "spam" for t in b["threats_by_type"]) and b
    st = wait_until(spam_counted, 15, msg="the GTUBE message counted as a spam threat")
    assert st["totals"]["threats"] >= 1
    assert any(t["rcpt"] == "carol@protected.test" for t in st["top_targeted_recipients"])
    assert all(t["rcpt"] != "alice@protected.test" for t in st["top_targeted_recipients"])
    assert sum(p["threats"] for p in st["series"]) == st["totals"]["threats"]
    # beta sees none of it
    b = session(env2, "admin@beta.test")
    assert b.get("/api/v1/stats?since=1h").body["totals"]["messages"] == 0
    assert b.get("/api/v1/tracking?rcpt=alice@protected.test").body["results"] == []


# ---------------------------------------------------------------- quarantine and queue
def test_quarantine(env2, tmp_path):
    qid = put_quarantine(env2, tmp_path, "acme", "bob@protected.test")
    a = session(env2, "admin@acme.test")
    r = a.get("/api/v1/quarantine?rcpt=bob@protected.test")
    assert r.status == 200 and [m["id"] for m in r.body["messages"]] == [qid]
    m = r.body["messages"][0]
    assert m["subject"] == "quarantined invoice" and m["reason"] == "Spam or Phish: spam (0.98)" and m["released"] is None
    one = a.get("/api/v1/quarantine/" + qid)
    assert one.status == 200 and "headers" not in one.body
    c = a.get("/api/v1/quarantine/%s?content=1" % qid)
    assert c.status == 200 and "Subject: quarantined invoice" in c.body["headers"]
    assert "Please pay." in c.body["body"] and "\x01" not in c.body["body"] and "日本語" in c.body["body"]
    # the exact bytes too (8-bit parts in other charsets, controls): the console decodes those
    raw = base64.b64decode(c.body["headers_b64"]) + b"\r\n" + base64.b64decode(c.body["body_b64"])
    assert raw == ORIGINAL and b"\x01" in raw
    ro = session(env2, "ro@acme.test")
    assert ro.post("/api/v1/quarantine/%s/release" % qid).status == 403
    before = len(env2.downstream.received())
    r = a.post("/api/v1/quarantine/%s/release" % qid)
    assert r.status == 200 and r.body["released"] == qid and len(r.body["qid"]) == 20, r.body
    wait_until(lambda: len(env2.downstream.received()) > before, 15, msg="the released copy delivered")
    got = env2.downstream.received()[-1]
    assert got.rcpt_tos == ["bob@protected.test"] and got.data.endswith(ORIGINAL)
    r = a.post("/api/v1/quarantine/%s/release" % qid)
    assert r.status == 409 and "already been released" in r.error
    assert len(a.get("/api/v1/quarantine/" + qid).body["released_qid"]) == 20
    assert a.delete("/api/v1/quarantine/" + qid).status == 200
    assert a.get("/api/v1/quarantine/" + qid).status == 404
    assert a.delete("/api/v1/quarantine/" + qid).status == 404
    assert a.get("/api/v1/quarantine/../../etc/passwd").status == 404
    entries = a.get("/api/v1/audit").body["entries"]
    assert {"quarantine.release", "quarantine.delete"} <= {e["action"] for e in entries}


def test_queue(env2):
    a = session(env2, "admin@acme.test")
    r = a.get("/api/v1/queue")
    assert r.status == 200 and isinstance(r.body["queue"], list) and r.body["count"] == len(r.body["queue"])
    op = session(env2, "op@moat.test")
    assert op.get("/api/v1/queue").status == 200


# ---------------------------------------------------------------- tenant isolation
def op_sees(env, path) -> bool:
    return session(env, "op@moat.test").get(path).status == 200


def test_tenant_isolation(env2, tmp_path):
    """Every object endpoint of tenant B, with tenant A's session and A's API
    token: 404, the same answer as for an object that does not exist."""
    m = env2.moat
    # tenant B's objects
    b = session(env2, "admin@beta.test")
    bq = put_quarantine(env2, tmp_path, "beta", "carol@beta.test")
    bqid = env2.send_ok("carol@beta.test")
    wait_until(lambda: b.get("/api/v1/tracking/" + bqid).status == 200, 15, msg="beta's message in tracking")
    bacc = b.post("/api/v1/accounts", {"email": "second@beta.test", "password": PASSWORD}).body["id"]
    btok = b.post("/api/v1/tokens", {"name": "beta-ci"}).body["id"]
    beu = b.post("/api/v1/endusers", {"email": "eve@beta.test", "send_mail": False}).body["id"]
    missing_q, missing_qid, missing_id = "0" * 32, "0" * 20, 999999

    a = session(env2, "admin@acme.test")
    tok = Api(m.http_port)
    tok.token = add_token(m, "acme-full", role="full")
    for client in (a, tok):
        pairs = [
            ("GET", "/api/v1/quarantine/%s", bq, missing_q),
            ("GET", "/api/v1/quarantine/%s?content=1", bq, missing_q),
            ("POST", "/api/v1/quarantine/%s/release", bq, missing_q),
            ("DELETE", "/api/v1/quarantine/%s", bq, missing_q),
            ("GET", "/api/v1/tracking/%s", bqid, missing_qid),
            ("GET", "/api/v1/accounts/%s", bacc, missing_id),
            ("PATCH", "/api/v1/accounts/%s", bacc, missing_id),
            ("DELETE", "/api/v1/accounts/%s", bacc, missing_id),
            ("DELETE", "/api/v1/tokens/%s", btok, missing_id),
            ("GET", "/api/v1/endusers/%s", beu, missing_id),
            ("PATCH", "/api/v1/endusers/%s", beu, missing_id),
            ("POST", "/api/v1/endusers/%s/password-mail", beu, missing_id),
            ("DELETE", "/api/v1/endusers/%s", beu, missing_id),
        ]
        for method, path, theirs, none in pairs:
            body = {"disabled": True} if method == "PATCH" else None
            if method == "PATCH" and "/endusers/" in path:
                body = {"enabled": False}
            r1 = client.req(method, path % theirs, body)
            r2 = client.req(method, path % none, body)
            assert (r1.status, r1.body) == (404, {"error": "not found"}), (method, path % theirs, r1.status, r1.body)
            assert (r2.status, r2.body) == (r1.status, r1.body), (method, path, r2.status, r2.body)
        # ?tenant= is ignored for a tenant administrator: still only acme's data
        assert all(x["tenant"] == "acme" for x in client.get("/api/v1/accounts?tenant=beta").body["accounts"])
        assert [t["company_id"] for t in client.get("/api/v1/config?tenant=beta").body["tenants"]] == ["acme"]
        assert all(x["tenant"] == "acme" for x in client.get("/api/v1/quarantine?tenant=beta").body["messages"])
        assert all(x["rcpt"].endswith("@protected.test") for x in
                   client.get("/api/v1/tracking?tenant=beta&since=1h").body["results"])
        assert all(e["tenant"] == "acme" for e in client.get("/api/v1/audit?tenant=beta").body["entries"])
        assert all(t["tenant"] == "acme" for t in client.get("/api/v1/tokens?tenant=beta").body["tokens"])
        assert all(u["tenant"] == "acme" for u in client.get("/api/v1/endusers?tenant=beta").body["endusers"])
        assert client.get("/api/v1/end-user-console?tenant=beta").body["tenant"] == "acme"
        assert "eve@beta.test" not in client.get("/api/v1/endusers/export?tenant=beta").body
        # beta's address cannot be added or imported into acme either
        assert client.post("/api/v1/endusers", {"email": "mallory@beta.test"}).status == 400
        assert client.post("/api/v1/endusers/import", {"csv": "email\nmallory@beta.test\n"}).status == 400
    # and B's objects are untouched
    assert b.get("/api/v1/quarantine/" + bq).status == 200
    assert b.get("/api/v1/accounts/%d" % bacc).body["disabled"] is False
    assert any(t["id"] == btok for t in b.get("/api/v1/tokens").body["tokens"])
    assert b.get("/api/v1/endusers/%d" % beu).body["enabled"] is True
    assert op_sees(env2, "/api/v1/endusers/%d" % beu)
    # an operator reaches both
    op = session(env2, "op@moat.test")
    assert op.get("/api/v1/quarantine/" + bq).status == 200
    assert op.get("/api/v1/tracking/" + bqid).status == 200
    assert op.get("/api/v1/quarantine?tenant=beta").body["messages"][0]["id"] == bq
    # operator-made accounts land in the named tenant; a tenant admin cannot pick another
    r = op.post("/api/v1/accounts", {"email": "third@beta.test", "password": PASSWORD, "tenant": "beta"})
    assert r.status == 201 and r.body["tenant"] == "beta"
    assert op.post("/api/v1/accounts", {"email": "x@nosuch.test", "password": PASSWORD,
                                         "tenant": "nosuch"}).status == 404


def test_tracking_csv(env2):
    subject = "=HYPERLINK(\"http://evil.example\"), \"quoted\""
    msg = make_message(subject=subject, to="dave@protected.test")
    qid = env2.send_ok("dave@protected.test", msg)
    a = session(env2, "admin@acme.test")
    wait_until(lambda: a.get("/api/v1/tracking/" + qid).status == 200, 15, msg="tracked")
    r = a.get("/api/v1/tracking?rcpt=dave@protected.test&format=csv")
    assert r.status == 200 and r.headers["content-type"].startswith("text/csv")
    import csv
    import io
    rows = list(csv.reader(io.StringIO(r.body)))
    assert rows[0][:4] == ["time", "qid", "sender", "recipient"]
    row = [x for x in rows[1:] if x[1] == qid][0]
    assert row[2] == "bob@example.net" and row[3] == "dave@protected.test"
    assert row[6] == "'" + subject          # a formula is made inert, the text kept
    assert a.get("/api/v1/tracking?format=xml").status == 400


def test_quarantine_bulk(env2, tmp_path):
    ids = [put_quarantine(env2, tmp_path, "acme", "bulk%d@protected.test" % i) for i in range(3)]
    theirs = put_quarantine(env2, tmp_path, "beta", "erin@beta.test")
    a = session(env2, "admin@acme.test")
    before = len(env2.downstream.received())
    r = a.post("/api/v1/quarantine/bulk", {"action": "release", "ids": ids[:2] + [theirs, "nonsense"]})
    assert r.status == 200 and r.body["done"] == 2, r.body
    res = {x["id"]: x["result"] for x in r.body["results"]}
    assert res == {ids[0]: "released", ids[1]: "released", theirs: "not found", "nonsense": "not found"}
    wait_until(lambda: len(env2.downstream.received()) >= before + 2, 15, msg="two released copies delivered")
    r = a.post("/api/v1/quarantine/bulk", {"action": "delete", "ids": ids})
    assert [x["result"] for x in r.body["results"]] == ["deleted", "deleted", "deleted"]
    assert a.post("/api/v1/quarantine/bulk", {"action": "purge", "ids": ids}).status == 400
    assert a.post("/api/v1/quarantine/bulk", {"action": "delete", "ids": []}).status == 400
    assert a.post("/api/v1/quarantine/bulk", {"action": "delete", "ids": ["0" * 32] * 1001}).status == 400
    b = session(env2, "admin@beta.test")
    assert b.get("/api/v1/quarantine/" + theirs).status == 200      # untouched
