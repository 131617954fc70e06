"""STARTTLS inbound (Moat as server) and outbound (Moat delivering to a
downstream that offers it, or not; per-domain tls: opportunistic / required /
none)."""

import re
import smtplib
import ssl
import subprocess
import time
import warnings

import pytest

from conftest import (HOSTNAME, RawSMTP, assert_reply, domain, insecure_client_ctx, make_message,
                      received_with_qid, rcpt_statuses, split_delivered, strings_in, swaks,
                      wait_until)


def _mentions_tls(strings) -> bool:
    return any(re.search(r"TLS|ESMTPS", s) for s in strings)


# ---------------------------------------------------------------- inbound
def test_inbound_starttls_smtplib(env):
    msg = make_message(subject="over tls")
    with smtplib.SMTP("127.0.0.1", env.port, local_hostname="client.example.net") as s:
        s.ehlo()
        assert s.has_extn("starttls")
        code, _ = s.starttls(context=insecure_client_ctx())
        assert code == 220
        assert s.sock.version() in ("TLSv1.2", "TLSv1.3"), s.sock.version()
        s.ehlo()
        assert not s.has_extn("starttls"), "STARTTLS still advertised after TLS"
        for k in ("pipelining", "size", "8bitmime", "smtputf8", "enhancedstatuscodes", "chunking"):
            assert s.has_extn(k), "%s not advertised after TLS" % k
        s.mail("bob@example.net")
        s.rcpt("alice@protected.test")
        code, resp = s.data(msg)
        assert code == 250, resp
    qid = re.search(rb"[0-9A-F]{20}", resp).group().decode()
    got = env.downstream.wait_for_messages(1)[0]
    split_delivered(got.data, msg)
    rec = received_with_qid(got.data, qid)
    assert rec, "no Received header with id %s" % qid

    def shows_tls():
        return _mentions_tls(rec) or _mentions_tls(strings_in(env.moat.tracking("--rcpt", "alice@protected.test")))
    wait_until(shows_tls, 10, msg="TLS of the inbound hop in the Received header or in tracking")


def test_quit_inside_tls_gets_221(env):
    with RawSMTP(env.port) as c:
        c.ehlo()
        c.starttls()
        c.ehlo()
        assert_reply(c.cmd("QUIT"), 221, what="QUIT after STARTTLS")


def test_starttls_not_allowed_twice(env):
    with RawSMTP(env.port) as c:
        c.ehlo()
        c.starttls()
        c.ehlo()
        r = c.cmd("STARTTLS")
        assert r.code >= 500, "second STARTTLS got %s" % r


def test_starttls_command_injection_is_discarded(env):
    """Plaintext pipelined after STARTTLS must not be executed inside TLS
    (CVE-2011-0411 class)."""
    with RawSMTP(env.port) as c:
        c.ehlo()
        c.send(b"STARTTLS\r\nNOOP\r\n")
        r = c.reply()
        assert_reply(r, 220)
        try:
            c.sock = insecure_client_ctx().wrap_socket(c.sock, server_hostname=HOSTNAME)
            c.buf = b""
            first = c.ehlo()
        except (OSError, ConnectionError, ssl.SSLError):
            return   # refusing the connection is a safe answer too
        assert first.lines[0].split()[0] == HOSTNAME, (
            "the injected plaintext NOOP was answered inside TLS: %s" % first)


def test_tls_below_1_2_refused(env):
    ctx = insecure_client_ctx()
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():      # the old versions are deprecated: that is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    with RawSMTP(env.port) as c:
        c.ehlo()
        with pytest.raises((ssl.SSLError, OSError, ConnectionError)):
            c.starttls(ctx)
            c.ehlo()


def _swaks_has_tls() -> bool:
    return subprocess.run(["perl", "-MNet::SSLeay", "-e", "1"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _swaks_has_tls(), reason="swaks --tls needs Net::SSLeay (Debian libnet-ssleay-perl, "
                    "not in scripts/install-deps)")
def test_swaks_tls(env):
    cp = swaks("--server", "127.0.0.1:%d" % env.port, "--tls", "--to", "alice@protected.test",
               "--from", "bob@example.net", "--header", "Subject: swaks tls")
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert "TLS started" in cp.stdout, cp.stdout
    assert re.search(r"<~  250 2\.0\.0 Ok: queued as [0-9A-F]{20}", cp.stdout), cp.stdout
    got = env.downstream.wait_for_messages(1)[0]
    assert b"Subject: swaks tls" in got.data


def test_configured_certificate_is_used(make_env, tls_files):
    cert, key = tls_files
    env = make_env(conf={"tls_cert": cert, "tls_key": key})
    with RawSMTP(env.port) as c:
        c.ehlo()
        s = c.starttls()
        der = s.getpeercert(binary_form=True)
    with open(cert) as f:
        assert der == ssl.PEM_cert_to_DER_cert(f.read()), "moatd did not present tls_cert"


def test_generated_certificate_by_default(env):
    """No tls_cert configured: STARTTLS still works (self-signed pair in data_dir)."""
    with RawSMTP(env.port) as c:
        c.ehlo()
        s = c.starttls()
        assert s.getpeercert(binary_form=True)
        assert_reply(c.ehlo(), 250)


# ---------------------------------------------------------------- outbound
def test_outbound_opportunistic_uses_starttls_when_offered(make_env):
    env = make_env(starttls=True)
    qid = env.send_ok("alice@protected.test")
    got = env.downstream.wait_for_messages(1)[0]
    assert got.tls_version in ("TLSv1.2", "TLSv1.3"), "delivered without TLS although offered"

    def tracked():
        doc = env.moat.tracking("--rcpt", "alice@protected.test")
        return "delivered" in rcpt_statuses(doc, "alice@protected.test", qid) and _mentions_tls(strings_in(doc))
    wait_until(tracked, 10, msg="tracking: delivered over TLS")


def test_outbound_opportunistic_plain_when_not_offered(env):
    env.send_ok("alice@protected.test")
    got = env.downstream.wait_for_messages(1)[0]
    assert got.tls_version is None


def test_outbound_tls_required_but_not_offered(make_env):
    env = make_env(domains=lambda ds: [domain("protected.test", [ds], tls="required")])
    qid = env.send_ok("alice@protected.test")
    time.sleep(4)   # several attempts at retry_min=1s
    assert env.downstream.received() == [], "delivered although TLS is required and not offered"
    assert env.downstream.transactions == 0, "sent MAIL FROM in clear text although TLS is required"
    assert qid in env.moat.queue_qids()
    wait_until(lambda: "deferred" in rcpt_statuses(env.moat.tracking("--rcpt", "alice@protected.test"),
                                                   "alice@protected.test", qid),
               10, msg="tracking status deferred")
    env.downstream.starttls = True
    got = env.downstream.wait_for_messages(1, timeout=20)[0]
    assert got.tls_version in ("TLSv1.2", "TLSv1.3")


def test_outbound_tls_none_never_starts_tls(make_env):
    env = make_env(starttls=True, domains=lambda ds: [domain("protected.test", [ds], tls="none")])
    env.send_ok("alice@protected.test")
    got = env.downstream.wait_for_messages(1)[0]
    assert got.tls_version is None, "STARTTLS used although the domain says tls: none"
