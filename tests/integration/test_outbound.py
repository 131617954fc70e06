"""Outbound protection (issue 7, PRODUCT.md §2): mail from a domain's registered
sending servers is relayed to the recipient domain's MX hosts, found through
the (fake, loopback) DNS; nobody else can relay.

The tenant's domain sender.test has outbound enabled with the sending server
127.0.0.5/32; clients connect from 127.0.0.5 (registered) or 127.0.0.1 (not).
relay_host is empty so delivery looks up MX records through dns_server, and
mx_port points every MX host at the fake recipient MTA.
"""

from __future__ import annotations

import pytest

from conftest import RawSMTP, make_message, wait_until
from downstream import FakeMTA
from fakedns import FakeDNS

REGISTERED = "127.0.0.5"


@pytest.fixture
def make_outbound(make_env):
    started = []

    def make(**conf):
        env, dns, remote = _make(make_env, conf)
        started.append(dns)
        return env, dns, remote
    yield make
    for d in started:
        d.stop()


@pytest.fixture
def outbound(make_outbound):
    return make_outbound()


def _make(make_env, extra):
    dns = FakeDNS().start()
    remote = FakeMTA(name="remote", hostname="mx.partner.example", starttls=True).start()
    dns.set("partner.example", "MX", [(20, "mx2.partner.example"), (10, "mx1.partner.example")])
    dns.set("mx1.partner.example", "A", ["127.0.0.1"])
    dns.set("mx2.partner.example", "A", ["127.0.0.1"])
    dns.set("nullmx.example", "MX", [(0, ".")])

    def doc(downstream):
        return {"tenants": [{
            "company_id": "sender", "name": "Sender Corp", "admin_email": "admin@sender.test",
            "domains": [{"name": "sender.test", "verified": True,
                         "inbound_servers": [{"host": downstream.host, "port": downstream.port}],
                         "outbound": {"enabled": True, "sending_servers": [REGISTERED + "/32", "microsoft365"]}},
                        {"name": "quiet.test", "verified": True,
                         "inbound_servers": [{"host": downstream.host, "port": downstream.port}],
                         "outbound": {"enabled": False, "sending_servers": [REGISTERED]}}],
            "policies": [
                {"name": "Outbound virus", "direction": "outbound",
                 "criteria": {"virus": {"types": ["cleanable", "mass_mailing", "non_mass_mailing"]}},
                 "actions": {"intercept": "quarantine"}},
                {"name": "Inbound spam tag", "direction": "inbound",
                 "criteria": {"spam": {"level": "moderate"}}, "actions": {"tag_subject": "Spam:"}}]}]}

    env = make_env(conf={"dns_server": dns.address, "relay_host": "", "mx_port": str(remote.port),
                         "dns_timeout_ms": "300", "dns_tries": "1", **extra}, doc=doc)
    env.fakes.append(remote)
    return env, dns, remote


def transaction(port, source, sender, rcpt, subject="outbound"):
    with RawSMTP(port, source=source) as c:
        c.ehlo()
        r = c.cmd("MAIL FROM:<%s>" % sender)
        assert r.code == 250, r
        r = c.cmd("RCPT TO:<%s>" % rcpt)
        if r.code != 250:
            return r, None
        return r, c.data(make_message(subject=subject, sender=sender, to=rcpt))


def test_registered_server_relays_via_mx(outbound):
    env, dns, remote = outbound
    r, d = transaction(env.port, REGISTERED, "alice@sender.test", "bob@partner.example", "hello partner")
    assert r.code == 250 and d.code == 250, (r, d)
    msgs = remote.wait_for_messages(1, timeout=20)
    assert msgs[0].rcpt_tos == ["bob@partner.example"]
    assert b"hello partner" in msgs[0].data
    assert msgs[0].mail_from == "alice@sender.test"
    assert msgs[0].tls_version in ("TLSv1.2", "TLSv1.3"), "STARTTLS offered by the MX but not used"
    assert dns.count("partner.example", "MX") >= 1
    assert "smtp outbound session=" in env.moat.log_text()
    rows = wait_until(lambda: [x for x in env.moat.tracking("--rcpt", "bob@partner.example")
                               if x.get("status") == "delivered"], timeout=10, msg="tracking: delivered")
    assert rows[0]["server"].startswith("mx1.partner.example"), rows


def test_unregistered_client_cannot_relay(outbound):
    env, dns, remote = outbound
    r, _ = transaction(env.port, "127.0.0.1", "alice@sender.test", "bob@partner.example")
    assert r.code == 550 and r.enhanced == "5.7.1", r
    # the registered server, but for a domain that is not its tenant's / not enabled
    r, _ = transaction(env.port, REGISTERED, "mallory@elsewhere.example", "bob@partner.example")
    assert r.code == 550 and r.enhanced == "5.7.1", r
    r, _ = transaction(env.port, REGISTERED, "carol@quiet.test", "bob@partner.example")
    assert r.code == 550 and r.enhanced == "5.7.1", r
    with RawSMTP(env.port, source=REGISTERED) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<>").code == 250
        assert c.cmd("RCPT TO:<bob@partner.example>").code == 550
    assert remote.received() == []


def test_null_mx_immediate_dsn(outbound):
    env, dns, remote = outbound
    r, d = transaction(env.port, REGISTERED, "alice@sender.test", "nobody@nullmx.example")
    assert d.code == 250, d
    # the DSN goes back to alice@sender.test, a protected domain: its own server
    msgs = env.downstream.wait_for_messages(1, timeout=20)
    dsn = msgs[0]
    assert dsn.rcpt_tos == ["alice@sender.test"] and dsn.mail_from in ("", "<>")
    assert b"null MX" in dsn.data and b"nobody@nullmx.example" in dsn.data
    assert b"Action: failed" in dsn.data


def test_mx_temporary_failure_is_retried(outbound):
    env, dns, remote = outbound
    dns.fail("later.example", "servfail")
    r, d = transaction(env.port, REGISTERED, "alice@sender.test", "x@later.example")
    assert d.code == 250
    wait_until(lambda: "later.example" in env.moat.log_text() and "deferred" in env.moat.log_text(),
               timeout=20, msg="a deferral")
    dns.set("later.example", "MX", [(10, "mx1.partner.example")])
    msgs = remote.wait_for_messages(1, timeout=30)
    assert msgs[0].rcpt_tos == ["x@later.example"]
    assert env.downstream.received() == []  # no DSN


def test_outbound_rate_limits(make_outbound):
    env, dns, remote = make_outbound(limit_out_ip="2/1m", limit_in_ip="100/1m")
    for i in range(2):
        r, d = transaction(env.port, REGISTERED, "alice@sender.test", "bob@partner.example", "n%d" % i)
        assert d.code == 250, d
    with RawSMTP(env.port, source=REGISTERED) as c:
        c.ehlo()
        r = c.cmd("MAIL FROM:<alice@sender.test>")
        assert r.code == 451 and "by IP address" in r.text, r
    # the inbound limit of the same client is a different counter
    with RawSMTP(env.port, source=REGISTERED) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<someone@elsewhere.example>").code == 250
        assert c.cmd("RCPT TO:<user@sender.test>").code == 250


def test_no_mx_falls_back_to_address_and_nxdomain_bounces(outbound):
    env, dns, remote = outbound
    dns.set("plain.example", "A", ["127.0.0.1"])           # no MX: the domain itself (RFC 5321 5.1)
    r, d = transaction(env.port, REGISTERED, "alice@sender.test", "p@plain.example", "implicit mx")
    assert d.code == 250
    msgs = remote.wait_for_messages(1, timeout=20)
    assert msgs[0].rcpt_tos == ["p@plain.example"]
    r, d = transaction(env.port, REGISTERED, "alice@sender.test", "q@missing.example", "nx")
    assert d.code == 250
    dsn = env.downstream.wait_for_messages(1, timeout=20)[0]
    assert dsn.rcpt_tos == ["alice@sender.test"] and b"q@missing.example" in dsn.data
    assert b"NXDOMAIN" in dsn.data or b"not found" in dsn.data


def test_outbound_rules_apply(outbound):
    env, dns, remote = outbound
    eicar = ("X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*")
    gtube = "XJS*C4JDBQADN1.NSBN3*2IDNEN*" + "GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
    # the inbound spam rule does not touch outbound mail
    with RawSMTP(env.port, source=REGISTERED) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<alice@sender.test>").code == 250
        assert c.cmd("RCPT TO:<bob@partner.example>").code == 250
        assert c.data(make_message(subject="offer", body=gtube, sender="alice@sender.test",
                                   to="bob@partner.example")).code == 250
    got = remote.wait_for_messages(1, timeout=20)[0]
    assert b"Subject: offer" in got.data and b"Spam:" not in got.data
    # the outbound virus rule quarantines
    with RawSMTP(env.port, source=REGISTERED) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<alice@sender.test>").code == 250
        assert c.cmd("RCPT TO:<bob@partner.example>").code == 250
        assert c.data(make_message(subject="infected", body=eicar, sender="alice@sender.test",
                                   to="bob@partner.example")).code == 250
    items = wait_until(lambda: env.moat.ctl_json("quarantine", "list"), timeout=20, msg="the quarantined copy")
    assert "Outbound virus" in str(items) and "bob@partner.example" in str(items), items
    assert len(remote.received()) == 1
