"""The domains endpoints with a fake DNS server: list with the TXT/MX
records to set, add, verify now (not yet / verified / the activation mail),
another tenant's domain answers 404, a read-only administrator cannot
verify."""

import pytest

from api_client import Api, add_account
from conftest import wait_until
from fakedns import FakeDNS

SERVICE = "in.moat.test"


@pytest.fixture
def dns():
    d = FakeDNS().start()
    yield d
    d.stop()


def test_domains_add_and_verify(make_env, dns):
    conf = {"dns_server": dns.address, "service_domain": SERVICE, "dns_timeout_ms": "300", "dns_tries": "1",
            "domain_check_min": "1h", "domain_check_max": "2h", "domain_recheck": "1h"}
    env = make_env(conf=conf, doc=lambda ds: {"tenants": []})
    m = env.moat
    m.ctl("tenant", "add", "acme", "--admin-email", "admin@acme.example")
    m.ctl("tenant", "add", "beta", "--admin-email", "admin@beta.example")
    add_account(m, "admin@acme.test")
    add_account(m, "ro@acme.test", role="read-only")
    add_account(m, "admin@beta.test", tenant="beta")
    a = Api(m.http_port)
    a.login("admin@acme.test")
    assert a.get("/api/v1/domains").body == {"domains": []}
    r = a.post("/api/v1/domains", {"name": "Acme-Corp.test", "server": "127.0.0.1:%d" % env.downstream.port})
    assert r.status == 201, r.body
    d = r.body
    assert d["name"] == "acme-corp.test" and d["status"] == "needs_configuration" and d["verified"] is False
    txt, mx = d["records"]
    assert txt == {"type": "TXT", "name": "acme-corp.test", "value": "moat-verification=" + d["verification_token"]}
    assert mx["type"] == "MX" and mx["value"] == "acme." + SERVICE
    assert a.post("/api/v1/domains", {"name": "bad_name!"}).status == 400
    assert a.post("/api/v1/domains", {"name": "x.test", "tenant": "beta"}).status == 403
    # not yet in the DNS
    r = a.post("/api/v1/domains/acme-corp.test/verify")
    assert r.status == 200 and r.body["verified"] is False and r.body["result"] == "not_found", r.body
    ro = Api(m.http_port)
    ro.login("ro@acme.test")
    assert ro.post("/api/v1/domains/acme-corp.test/verify").status == 403
    # tenant B cannot see or verify it
    b = Api(m.http_port)
    b.login("admin@beta.test")
    assert b.post("/api/v1/domains/acme-corp.test/verify").body == {"error": "not found"}
    assert b.post("/api/v1/domains/nosuch.test/verify").body == {"error": "not found"}
    assert b.get("/api/v1/domains").body == {"domains": []}
    # the record appears: verified, default rules on, the activation mail queued
    dns.set("acme-corp.test", "TXT", [txt["value"]])
    r = a.post("/api/v1/domains/acme-corp.test/verify")
    assert r.status == 200 and r.body["verified"] is True and r.body["via"] == "txt", r.body
    assert r.body["default_rules_activated"] is True
    [d] = a.get("/api/v1/domains").body["domains"]
    assert d["status"] == "complete" and d["verified_via"] == "txt"
    wait_until(lambda: any("admin@acme.example" in x.rcpt_tos for x in env.internet.received()), 15,
               msg="the activation mail")
    audit = a.get("/api/v1/audit").body["entries"]
    assert any(e["action"] == "domain.add" for e in audit)


def test_tenants_for_operators(make_env):
    env = make_env(doc=lambda ds: {"tenants": []})
    m = env.moat
    m.ctl("tenant", "add", "acme", "--admin-email", "admin@acme.example")
    add_account(m, "op@moat.test", tenant=None)
    add_account(m, "admin@acme.test")
    op = Api(m.http_port)
    op.login("op@moat.test")
    assert op.get("/api/v1/company-ids/acme").body == {"company_id": "acme", "available": False,
                                                       "reason": "already taken"}
    assert op.get("/api/v1/company-ids/ab").body["available"] is False
    assert op.get("/api/v1/company-ids/new-co").body == {"company_id": "new-co", "available": True}
    r = op.post("/api/v1/tenants", {"company_id": "new-co", "name": "New Co", "admin_email": "it@new.example"})
    assert r.status == 201, r.body
    assert op.post("/api/v1/tenants", {"company_id": "NEW-CO"}).status == 409
    assert op.post("/api/v1/tenants", {"company_id": "a_b"}).status == 400
    assert [t["company_id"] for t in op.get("/api/v1/tenants").body["tenants"]] == ["acme", "new-co"]
    doc = op.get("/api/v1/config?tenant=new-co").body["tenants"][0]
    assert {p["name"] for p in doc["policies"]} >= {"Virus", "Spam or Phish"}
    a = Api(m.http_port)
    a.login("admin@acme.test")
    assert a.get("/api/v1/tenants").status == 403
    assert a.get("/api/v1/company-ids/new-co").status == 403
    assert a.post("/api/v1/tenants", {"company_id": "x-co"}).status == 403


def test_domain_added_with_its_servers_and_outbound_protection(make_env):
    """the wizard's "add a domain" step: several inbound servers and outbound
    protection in the one POST, validated like the tenant document; a bad
    one adds nothing"""
    env = make_env(doc=lambda ds: {"tenants": []})
    m = env.moat
    m.ctl("tenant", "add", "acme")
    add_account(m, "admin@acme.test")
    a = Api(m.http_port)
    a.login("admin@acme.test")
    servers = [{"host": "mx1.acme.test", "port": 25, "preference": 10},
               {"host": "192.0.2.20", "port": 2525, "preference": 20}]
    bad = [({"name": "a.test", "server": "mx.acme.test", "inbound_servers": servers}, "not both"),
           ({"name": "a.test", "inbound_servers": []}, "inbound_servers"),
           ({"name": "a.test", "inbound_servers": "mx.acme.test"}, "inbound_servers"),
           ({"name": "a.test", "inbound_servers": [{"host": "mx.acme.test", "port": 0, "preference": 10}]},
            "inbound_servers[0].port"),
           ({"name": "a.test", "inbound_servers": [{"host": "mx.acme.test", "port": 25, "preference": 10,
                                                    "evil": 1}]}, "inbound_servers[0]"),
           ({"name": "a.test", "outbound": "on"}, "outbound"),
           ({"name": "a.test", "outbound": {"enabled": True, "sending_servers": ["not an ip"]}},
            "sending_servers"),
           ({"name": "a.test", "inbound_servers": [{"host": "h%d.acme.test" % i, "port": 25, "preference": 10}
                                                   for i in range(1000)]}, "inbound_servers")]
    for body, why in bad:
        r = a.post("/api/v1/domains", body)
        assert r.status == 400 and why in r.error, (body, r.body)
    assert a.get("/api/v1/domains").body == {"domains": []}
    r = a.post("/api/v1/domains", {"name": "a.test", "inbound_servers": servers,
                                   "outbound": {"enabled": True,
                                                "sending_servers": ["microsoft365", "198.51.100.0/24"]}})
    assert r.status == 201 and r.body["status"] == "needs_configuration", r.body
    [d] = a.get("/api/v1/config").body["tenants"][0]["domains"]
    assert d["name"] == "a.test" and d["inbound_servers"] == servers, d
    assert d["outbound"] == {"enabled": True, "sending_servers": ["microsoft365", "198.51.100.0/24"]}, d
