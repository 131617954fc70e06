"""Address forms that old MTAs used for relaying (or that confuse address
parsers): Moat must judge the final address and never relay through them."""

import pytest

from conftest import RawSMTP, assert_reply, make_message, parse_queued, wait_until


def rcpt_reply(env, rcpt: str, mail: str = "MAIL FROM:<bob@example.net>"):
    with RawSMTP(env.port) as c:
        assert c.ehlo().code == 250
        assert_reply(c.cmd(mail), 250)
        return c.cmd("RCPT TO:<%s>" % rcpt)


@pytest.mark.parametrize("rcpt", [
    "user%evil.test@protected.test",                 # percent hack
    "user%evil.test%protected.test@protected.test",
    "evil.test!user@protected.test",                 # bang path
    "evil.test!user",
    '"user@evil.test"@protected.test',               # quoted local part with @
    '"user@evil.test"',
], ids=["percent", "percent2", "bang", "bang-bare", "quoted-at", "quoted-at-bare"])
def test_sender_routing_forms_denied(module_env, rcpt):
    r = rcpt_reply(module_env, rcpt)
    if "@protected.test" in rcpt:
        assert_reply(r, 550, "5.7.1", rcpt)
    else:   # no domain at all: a syntax error is as good as a denial
        assert 500 <= r.code < 600, "RCPT TO:<%s> got %s" % (rcpt, r)


@pytest.mark.parametrize("rcpt", [
    "@relay.test:user@evil.test",
    "@protected.test:user@evil.test",
    "@relay.test,@protected.test:user@evil.test",
])
def test_source_route_judged_on_final_address_denied(module_env, rcpt):
    assert_reply(rcpt_reply(module_env, rcpt), 550, "5.7.1", rcpt)


def test_source_route_to_protected_final_address_accepted(module_env):
    with RawSMTP(module_env.port) as c:
        c.ehlo()
        assert_reply(c.cmd("MAIL FROM:<bob@example.net>"), 250)
        assert_reply(c.cmd("RCPT TO:<@relay.test:route-final@protected.test>"), 250)
        r = c.data(make_message(subject="source routed"))
        assert_reply(r, 250, "2.0.0")
        assert parse_queued(r.text)
    ds = module_env.downstream
    wait_until(lambda: any("route-final@" in x for m in ds.received() for x in m.rcpt_tos), 15,
               msg="delivery of the source-routed message")
    rcpts = [x for m in ds.received() for x in m.rcpt_tos if "route-final" in x]
    assert rcpts == ["route-final@protected.test"], "source route passed on: %s" % rcpts


def test_trailing_dot_domain(module_env):
    assert_reply(rcpt_reply(module_env, "user@protected.test."), 501, "5.1.3")


@pytest.mark.parametrize("rcpt", ["user@[127.0.0.1]", "user@[IPv6:::1]", "postmaster@[127.0.0.1]"])
def test_ip_literal_denied(module_env, rcpt):
    assert_reply(rcpt_reply(module_env, rcpt), 550, "5.7.1", rcpt)


@pytest.mark.parametrize("rcpt", ["user@protected..test", "user@", "@protected.test", "user@-bad.protected.test"])
def test_malformed_addresses_not_accepted(module_env, rcpt):
    r = rcpt_reply(module_env, rcpt)
    assert 500 <= r.code < 600, "RCPT TO:<%s> got %s" % (rcpt, r)


def test_sender_with_percent_hack_does_not_grant_relay(module_env):
    with RawSMTP(module_env.port) as c:
        assert c.ehlo().code == 250
        r = c.cmd("MAIL FROM:<x%protected.test@protected.test>")
        if r.code == 250:      # refusing the sender outright is fine too
            r = c.cmd("RCPT TO:<user@unprotected.test>")
            assert_reply(r, 550, "5.7.1")
        else:
            assert r.code >= 500, str(r)
