"""Tenants, company IDs and domain ownership verification (issue 7, PRODUCT.md §1).

A fake authoritative DNS server (tests/fakes/fakedns.py) on loopback serves
the test domains; the tests change its records while moatd runs and check
`moatctl domain verify`, moatd's periodic check, the activation mail, the
default rules and the "record missing" alert.
"""

from __future__ import annotations

import email
import email.policy
import re

import pytest

from conftest import tenant_doc, wait_until
from fakedns import FakeDNS

SERVICE = "in.moat.test"


@pytest.fixture
def dns():
    d = FakeDNS().start()
    yield d
    d.stop()


def parse(raw: bytes):
    return email.message_from_bytes(raw, policy=email.policy.default)


def dns_conf(dns, **kw):
    conf = {"dns_server": dns.address, "service_domain": SERVICE, "dns_timeout_ms": "300", "dns_tries": "1",
            "domain_check_min": "1h", "domain_check_max": "2h", "domain_recheck": "1h"}
    conf.update(kw)
    return conf


def no_tenants(downstream):
    return {"tenants": []}


def status(moat, name, tenant):
    rows = moat.ctl_json("domain", "status", name, "--tenant", tenant)
    assert len(rows) == 1, rows
    return rows[0]


def wait_mail(env, subject_part):
    """the first mail the test internet received whose Subject has subject_part"""
    def find():
        for x in env.internet.received():
            m = parse(x.data)
            if subject_part in m["Subject"]:
                return m
        return None
    wait_until(find, timeout=20, msg="a mail with %r in its subject" % subject_part)
    return find()


def new_tenant(moat, cid, name="example.test", admin=None):
    moat.ctl("tenant", "add", cid, "--name", cid.title() + " Corp", "--admin-email", admin or "admin@%s" % cid + ".example")
    moat.ctl("domain", "add", name, "--tenant", cid, "--server", "127.0.0.1:%d" % 9)
    return status(moat, name, cid)


def verify(moat, name, tenant):
    return moat.ctl("domain", "verify", name, "--tenant", tenant, check=False)


def test_company_ids(make_env):
    env = make_env(doc=no_tenants)
    m = env.moat
    cp = m.ctl("tenant", "add", "Acme-01", "--admin-email", "admin@acme.example")
    assert "acme-01.in.moat.localhost" in cp.stdout
    for bad, why in [("ab", "3 to 63"), ("a" * 64, "3 to 63"), ("a_b", "letters, digits and hyphens"),
                     ("abc-", "hyphen"), ("ab c", "letters")]:
        cp = m.ctl("tenant", "add", bad, check=False)
        assert cp.returncode == 1, (bad, cp.stderr)
        assert why in cp.stderr, (bad, cp.stderr)
    cp = m.ctl("tenant", "add", "ACME-01", check=False)
    assert cp.returncode == 1 and "company ID acme-01 is already taken" in cp.stderr, cp.stderr
    m.ctl("tenant", "add", "a" * 63)
    doc = m.ctl_json("export", "--tenant", "acme-01")["tenants"][0]
    defaults = {p["name"]: p for p in doc["policies"] if p.get("default")}
    assert set(defaults) == {"Virus", "Spam or Phish", "Newsletter or spam-like", "Probable BEC threat",
                             "Outbound protection"}
    assert not any(p["enabled"] for p in defaults.values())
    assert defaults["Outbound protection"]["direction"] == "outbound"


def test_txt_verification_activates(make_env, dns):
    env = make_env(conf=dns_conf(dns), doc=no_tenants)
    m = env.moat
    st = new_tenant(m, "acme", "acme-corp.test", admin="admin@acme-admin.test")
    assert st["status"] == "needs_configuration"
    assert re.fullmatch(r"moat-verification=[0-9a-f]{32}", st["txt_record"])
    assert st["mx_host"] == "acme." + SERVICE
    # nothing in DNS yet: NXDOMAIN, stays pending
    cp = verify(m, "acme-corp.test", "acme")
    assert cp.returncode == 1 and "NXDOMAIN" in cp.stderr, cp.stderr
    # the default rules cannot be switched on before a domain is verified
    doc = m.ctl_json("export", "--tenant", "acme")
    for p in doc["tenants"][0]["policies"]:
        p["enabled"] = True
    cp = m.import_doc(doc, trust=False, check=False)
    assert cp.returncode == 1 and "cannot be enabled or changed before a domain" in cp.stderr, cp.stderr
    # the right TXT record
    dns.set("acme-corp.test", "TXT", ["v=spf1 -all", st["txt_record"]])
    r = m.ctl_json("domain", "verify", "acme-corp.test", "--tenant", "acme")
    assert r["verified"] is True and r["via"] == "txt" and r.get("default_rules_activated") is True, r
    assert status(m, "acme-corp.test", "acme")["status"] == "complete"
    doc = m.ctl_json("export", "--tenant", "acme")["tenants"][0]
    assert doc["domains"][0]["status"] == "complete"
    assert all(p["enabled"] for p in doc["policies"] if p.get("default"))
    # the activation mail (Japanese and English) with the records (after the
    # administrator's login mail of `tenant add --admin-email`, docs/onboarding.md)
    msg = wait_mail(env, "Domain verified")
    assert "admin@acme-admin.test" in msg["To"]
    assert "acme-corp.test" in msg["Subject"] and "Domain verified" in msg["Subject"]
    body = msg.get_body(("plain",)).get_content()
    assert "ドメインの所有確認が完了しました" in body or "所有確認が完了" in body
    assert "acme." + SERVICE in body and st["txt_record"] in body and "Next steps" in body
    # a default rule may now be disabled
    doc2 = m.ctl_json("export", "--tenant", "acme")
    for p in doc2["tenants"][0]["policies"]:
        if p["name"] == "Newsletter or spam-like":
            p["enabled"] = False
    m.import_doc(doc2, trust=False)
    pol = {p["name"]: p for p in m.ctl_json("export", "--tenant", "acme")["tenants"][0]["policies"]}
    assert pol["Newsletter or spam-like"]["enabled"] is False and pol["Virus"]["enabled"] is True
    # mail for the verified domain is accepted now
    assert env.send(["user@acme-corp.test"]).code in (250, 451)


def test_mx_verification(make_env, dns):
    env = make_env(conf=dns_conf(dns), doc=no_tenants)
    m = env.moat
    new_tenant(m, "beta", "beta.test")
    dns.set("beta.test", "MX", [(10, "mx.elsewhere.test")])
    cp = verify(m, "beta.test", "beta")
    assert cp.returncode == 1 and "mx.elsewhere.test" in cp.stderr, cp.stderr
    dns.set("beta.test", "MX", [(10, "mx.elsewhere.test"), (20, "BETA.%s." % SERVICE.upper())])
    cp = verify(m, "beta.test", "beta")
    assert cp.returncode == 0, cp.stderr
    assert "MX record points to beta.%s" % SERVICE in cp.stdout


def test_wrong_token(make_env, dns):
    env = make_env(conf=dns_conf(dns), doc=no_tenants)
    m = env.moat
    st = new_tenant(m, "gamma", "gamma.test")
    dns.set("gamma.test", "TXT", ["moat-verification=" + "0" * 32])
    cp = verify(m, "gamma.test", "gamma")
    assert cp.returncode == 1 and "different token" in cp.stderr, cp.stderr
    dns.set("gamma.test", "TXT", [st["txt_record"] + "x"])
    assert verify(m, "gamma.test", "gamma").returncode == 1
    assert status(m, "gamma.test", "gamma")["status"] == "needs_configuration"


@pytest.mark.parametrize("mode", ["servfail", "timeout"])
def test_temporary_failure_stays_pending(make_env, dns, mode):
    env = make_env(conf=dns_conf(dns), doc=no_tenants)
    m = env.moat
    st = new_tenant(m, "delta", "delta.test")
    dns.set("delta.test", "TXT", [st["txt_record"]])
    dns.fail("delta.test", mode)
    cp = verify(m, "delta.test", "delta")
    assert cp.returncode == 1 and "temporary" in cp.stderr.lower(), cp.stderr
    r = m.ctl_json("domain", "status", "delta.test")
    assert r[0]["status"] == "needs_configuration" and r[0]["verified"] is False
    assert "will retry" in r[0]["last_check"]


def test_domain_claimed_by_two_tenants(make_env, dns):
    env = make_env(conf=dns_conf(dns), doc=no_tenants)
    m = env.moat
    a = new_tenant(m, "first", "shared.test")
    b = new_tenant(m, "second", "shared.test")
    assert a["txt_record"] != b["txt_record"]
    cp = m.ctl("domain", "verify", "shared.test", check=False)
    assert cp.returncode == 1 and "several tenants" in cp.stderr
    dns.set("shared.test", "TXT", [b["txt_record"]])
    assert verify(m, "shared.test", "first").returncode == 1
    assert verify(m, "shared.test", "second").returncode == 0
    # now the first tenant cannot take it, even with its own proof
    dns.set("shared.test", "TXT", [a["txt_record"], b["txt_record"]])
    cp = verify(m, "shared.test", "first")
    assert cp.returncode == 1 and "already verified by another tenant" in cp.stderr, cp.stderr
    assert status(m, "shared.test", "first")["status"] == "needs_configuration"
    # the whole configuration still round-trips (a verified and a pending claim)
    m.import_doc(m.ctl_json("export"), trust=False)
    assert status(m, "shared.test", "second")["status"] == "complete"
    # nor add it again elsewhere, nor import it verified
    m.ctl("tenant", "add", "third")
    cp = m.ctl("domain", "add", "shared.test", "--tenant", "third", check=False)
    assert cp.returncode == 1 and "already verified by another tenant" in cp.stderr
    doc = tenant_doc([{"name": "shared.test", "verified": True,
                       "inbound_servers": [{"host": "127.0.0.1", "port": 9}]}], company_id="fourth")
    cp = m.import_doc(doc, trust=True, check=False)
    assert cp.returncode == 1 and "already verified by another tenant" in cp.stderr


def test_periodic_check_and_record_missing(make_env, dns):
    env = make_env(conf=dns_conf(dns, domain_check_min="1s", domain_check_max="2s", domain_recheck="2s"),
                   doc=no_tenants)
    m = env.moat
    st = new_tenant(m, "epsilon", "epsilon.test", admin="it@epsilon-admin.test")
    # moatd checks the pending domain by itself (back-off from 1 s)
    wait_until(lambda: dns.count("epsilon.test", "TXT") >= 1, timeout=15, msg="a periodic TXT lookup")
    dns.set("epsilon.test", "MX", [(5, "epsilon." + SERVICE)])
    wait_until(lambda: status(m, "epsilon.test", "epsilon")["status"] == "complete", timeout=20,
               msg="the periodic check to verify the domain")
    assert "dns domain verified company=epsilon domain=epsilon.test via=mx" in m.log_text()
    wait_mail(env, "Domain verified")
    # the record goes away: mail keeps flowing, the admin is alerted once
    dns.clear("epsilon.test")
    dns.set("epsilon.test", "TXT", ["unrelated"])
    wait_until(lambda: status(m, "epsilon.test", "epsilon").get("record_missing"), timeout=20,
               msg="the re-check to notice the missing record")
    assert status(m, "epsilon.test", "epsilon")["status"] == "complete"
    assert "dns domain record missing company=epsilon domain=epsilon.test" in m.log_text()
    wait_mail(env, "Verification record missing")
    subjects = [parse(x.data)["Subject"] for x in env.internet.received()]
    assert any("Verification record missing: epsilon.test" in s for s in subjects), subjects
    assert sum("record missing" in s for s in subjects) == 1, subjects
    r = env.send(["someone@epsilon.test"])
    assert r.code == 250, (r.code, r.text)


def test_background_verify_reaches_the_checker(make_env, dns):
    """domain verify --background (store_domain_check_soon, the console's
    asynchronous Verify) makes moatd check a pending domain at once, whatever
    its back-off."""
    env = make_env(conf=dns_conf(dns), doc=no_tenants)   # back-off of an hour
    m = env.moat
    st = new_tenant(m, "zeta", "zeta.test")
    assert verify(m, "zeta.test", "zeta").returncode == 1   # next check in an hour
    dns.set("zeta.test", "TXT", [st["txt_record"]])
    before = dns.count("zeta.test", "TXT")
    m.ctl("domain", "verify", "zeta.test", "--tenant", "zeta", "--background")
    wait_until(lambda: status(m, "zeta.test", "zeta")["status"] == "complete", timeout=15,
               msg="the checker to pick the domain up")
    assert dns.count("zeta.test", "TXT") > before
    cp = m.ctl("domain", "verify", "nope.test", "--tenant", "zeta", "--background", check=False)
    assert cp.returncode == 1 and "not a domain of zeta" in cp.stderr


def test_dns_server_setting_checked(tmp_path):
    import subprocess
    from conftest import MOATD
    for value, ok in [("127.0.0.1:5353", True), ("[::1]:53", True), ("localhost:53", True), ("127.0.0.1", True),
                      ("dns.example:53", False), ("127.0.0.1:0", False), ("127.0.0.1:x", False)]:
        conf = tmp_path / "m.conf"
        conf.write_text("dns_server = %s\n" % value)
        cp = subprocess.run([str(MOATD), "-c", str(conf), "--check"], capture_output=True, text=True)
        assert (cp.returncode == 0) == ok, (value, cp.stdout, cp.stderr)
        if not ok:
            assert "dns_server" in cp.stderr, cp.stderr
