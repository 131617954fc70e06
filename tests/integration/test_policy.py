"""Policies in the daemon: the decisions taken before the scan.

Blocked senders (addresses, *@domain, IPs/CIDRs) of the recipient's tenant
are refused at RCPT time with 550 5.7.1 - the sender alone decides - and the
refusal is in tracking; other tenants' recipients in the same transaction
are not affected; a re-import while moatd runs takes effect."""

import time

from conftest import domain, make_message, tenant_doc, wait_until


def two_tenants(blocked_acme, blocked_beta=()):
    def mk(downstream):
        a = tenant_doc([domain("protected.test", [downstream])], company_id="acme")["tenants"][0]
        a["blocked_senders"] = list(blocked_acme)
        b = tenant_doc([domain("beta.test", [downstream])], company_id="beta")["tenants"][0]
        b["admin_email"] = "admin@beta.test"
        b["blocked_senders"] = list(blocked_beta)
        return {"tenants": [a, b]}
    return mk


def test_blocked_sender_address_domain_and_ip(make_env):
    env = make_env(doc=two_tenants(["spammer@evil.test", "*@junk.test", "198.51.100.0/24"]))
    r = env.send(["alice@protected.test"], sender="spammer@evil.test")
    assert r.code == 0 and r.refused["alice@protected.test"][0] == 550, r
    assert "5.7.1" in r.refused["alice@protected.test"][1], r
    r = env.send(["alice@protected.test"], sender="anyone@JUNK.test")
    assert r.code == 0 and r.refused["alice@protected.test"][0] == 550, r
    # not blocked: another address, a subdomain of the *@ pattern's domain is not the domain
    assert env.send(["alice@protected.test"], sender="friend@evil.test").code == 250
    # the client IP 127.0.0.1 is not in the blocked CIDR
    assert env.send(["alice@protected.test"], sender="x@ok.test").code == 250


def test_block_is_per_tenant_within_one_transaction(make_env):
    env = make_env(doc=two_tenants(["*@evil.test"]))
    r = env.send(["alice@protected.test", "bob@beta.test"], sender="boss@evil.test")
    assert r.code == 250, r
    assert list(r.refused) == ["alice@protected.test"], r.refused
    got = env.downstream.wait_for_messages(1)[0]
    assert got.rcpt_tos == ["bob@beta.test"], got.rcpt_tos


def test_blocked_client_ip_and_reload(make_env):
    env = make_env(doc=two_tenants([]))
    assert env.send(["alice@protected.test"], sender="a@ok.test").code == 250
    env.moat.import_doc(two_tenants(["127.0.0.0/8"])(env.downstream))
    deadline = time.time() + 10
    while True:  # moatd polls the tenant data version
        r = env.send(["alice@protected.test"], sender="a@ok.test")
        if r.code != 250 or time.time() > deadline:
            break
        time.sleep(0.3)
    assert r.code == 0 and r.refused["alice@protected.test"][0] == 550, r
    def refused_row():
        rows = env.moat.tracking("--rcpt", "alice@protected.test")
        return [row for row in rows if row.get("action") == "rejected"
                and "Blocked sender" in (row.get("reason") or "")]
    wait_until(refused_row, 10, msg="the refusal of alice@protected.test in tracking")
