"""Retries and delivery status notifications: 4xx / down -> retried with
back-off until queue_lifetime, then a DSN; 5xx -> DSN at once; DSNs go to the
sender through relay_host (the fake "internet"), RFC 3464, with the original
headers; never a DSN to the null sender."""

import email
import email.policy
import re
import time

from conftest import (make_message, rcpt_statuses, smtp_send, wait_rcpts, wait_until, RawSMTP,
                      assert_reply)

SENDER = "bob@example.net"


def send(env, rcpts, subject, sender=SENDER):
    msgid = "<%s@example.net>" % re.sub(r"\W", "-", subject)
    msg = make_message(subject=subject, sender=sender or "mailer-daemon@example.net", to=", ".join(rcpts),
                       msgid=msgid)
    if sender == "":
        with RawSMTP(env.port) as c:
            c.ehlo()
            assert_reply(c.cmd("MAIL FROM:<>"), 250)
            for r in rcpts:
                assert_reply(c.cmd("RCPT TO:<%s>" % r), 250)
            rep = c.data(msg)
            assert_reply(rep, 250, "2.0.0")
            return msg, msgid
    r = smtp_send(env.port, sender, rcpts, msg)
    assert r.code == 250 and r.qid, r
    return msg, msgid


def check_dsn(dsn, failed, msgid: str, subject: str, status_class: str = "5", delivered=()):
    """RFC 3464 checks of one DSN received by the internet sink."""
    assert dsn.mail_from == "", "a DSN must use the null reverse-path, got <%s>" % dsn.mail_from
    assert dsn.rcpt_tos == [SENDER], dsn.rcpt_tos
    m = email.message_from_bytes(dsn.data, policy=email.policy.compat32)
    assert m.get_content_type() == "multipart/report", m.get_content_type()
    assert (m.get_param("report-type") or "").lower() == "delivery-status"
    types = [p.get_content_type() for p in m.get_payload()]
    assert "message/delivery-status" in types, types
    assert types[-1] in ("text/rfc822-headers", "message/rfc822"), types
    raw = dsn.data
    for r in failed:
        assert re.search(rb"Final-Recipient:\s*rfc822;\s*" + re.escape(r.encode()), raw, re.I), (
            "no Final-Recipient for %s" % r)
    for r in delivered:
        assert not re.search(rb"Final-Recipient:\s*rfc822;\s*" + re.escape(r.encode()), raw, re.I), (
            "DSN names %s, which was delivered" % r)
    assert re.search(rb"Action:\s*failed", raw, re.I), "no Action: failed"
    assert re.search(rb"Status:\s*" + status_class.encode() + rb"\.\d{1,3}\.\d{1,3}", raw), "no Status %s.x.x" % status_class
    # the original headers come back in the last part
    tail = raw[raw.lower().rfind(b"content-type: " + types[-1].encode()):]
    assert msgid.encode() in tail, "original Message-ID not in the returned headers"
    assert ("Subject: " + subject).encode() in tail, "original Subject not in the returned headers"


def status_of(env, rcpt):
    return rcpt_statuses(env.moat.tracking("--rcpt", rcpt), rcpt)


def test_5xx_at_rcpt_bounces_at_once(env):
    env.downstream.set(mode="reject", fail_at="rcpt")
    msg, msgid = send(env, ["alice@protected.test"], "rejected at rcpt")
    dsn = env.internet.wait_for_messages(1, timeout=15)[0]
    check_dsn(dsn, ["alice@protected.test"], msgid, "rejected at rcpt")
    time.sleep(2.5)
    assert env.downstream.transactions == 1, "a 5xx was retried (%d attempts)" % env.downstream.transactions
    assert len(env.internet.received()) == 1, "more than one DSN"
    assert env.moat.queue_qids() == set()
    wait_until(lambda: "bounced" in status_of(env, "alice@protected.test"), 10, msg="tracking: bounced")


def test_5xx_at_data_bounces_at_once(env):
    env.downstream.set(mode="reject", fail_at="data")
    msg, msgid = send(env, ["alice@protected.test"], "rejected at data")
    dsn = env.internet.wait_for_messages(1, timeout=15)[0]
    check_dsn(dsn, ["alice@protected.test"], msgid, "rejected at data")


def test_partial_bounce_names_only_the_failed_recipient(env):
    env.downstream.set(rcpt_replies={"nouser@protected.test": "550 5.1.1 No such user here"})
    msg, msgid = send(env, ["alice@protected.test", "nouser@protected.test"], "partial")
    wait_rcpts(env.downstream, ["alice@protected.test"])
    dsn = env.internet.wait_for_messages(1, timeout=15)[0]
    check_dsn(dsn, ["nouser@protected.test"], msgid, "partial", delivered=["alice@protected.test"])
    assert re.search(rb"Status:\s*5\.1\.1", dsn.data), "the downstream's 5.1.1 is not in the DSN"
    time.sleep(2)
    assert len(env.downstream.received()) == 1, "the delivered recipient got the message again"


def test_null_sender_never_gets_a_dsn(env):
    env.downstream.set(mode="reject", fail_at="rcpt")
    send(env, ["alice@protected.test"], "bounce of a bounce", sender="")
    wait_until(lambda: env.downstream.transactions >= 1, 15, msg="a delivery attempt")
    wait_until(lambda: "bounced" in status_of(env, "alice@protected.test"), 10, msg="tracking: bounced")
    time.sleep(3)
    assert env.internet.received() == [], "a DSN was sent for a message with the null sender"
    assert env.moat.queue_qids() == set(), "bounce of a null-sender message stays queued"


def test_tempfail_is_retried_with_backoff(env):
    env.downstream.set(mode="tempfail", fail_at="rcpt", fail_count=2)
    send(env, ["alice@protected.test"], "tempfail twice")
    got = env.downstream.wait_for_messages(1, timeout=30)
    assert len(got) == 1
    mails = [t for t, what, _ in env.downstream.events if what == "MAIL"]
    assert len(mails) >= 3, "expected 2 failed attempts and a successful one, saw %d" % len(mails)
    gaps = [b - a for a, b in zip(mails, mails[1:])]
    assert min(gaps) >= 0.8, "retries faster than retry_min=1s: %s" % gaps
    time.sleep(1)
    assert env.internet.received() == [], "DSN although the message was delivered"


def test_tempfail_per_recipient(env):
    env.downstream.set(rcpt_replies={"busy@protected.test": "452 4.2.2 Mailbox full, try later"})
    send(env, ["alice@protected.test", "busy@protected.test"], "one busy")
    wait_rcpts(env.downstream, ["alice@protected.test"])
    time.sleep(2.5)
    assert [r for m in env.downstream.received() for r in m.rcpt_tos] == ["alice@protected.test"]
    env.downstream.set(rcpt_replies={})
    wait_rcpts(env.downstream, ["alice@protected.test", "busy@protected.test"], timeout=20)
    assert env.internet.received() == []


def test_tempfail_until_queue_lifetime_then_dsn(make_env):
    env = make_env(conf={"queue_lifetime": "4s"})
    env.downstream.set(mode="tempfail", fail_at="rcpt")
    t0 = time.monotonic()
    msg, msgid = send(env, ["alice@protected.test"], "expires")
    dsn = env.internet.wait_for_messages(1, timeout=30)[0]
    assert time.monotonic() - t0 >= 3, "DSN before queue_lifetime"
    check_dsn(dsn, ["alice@protected.test"], msgid, "expires", status_class="[45]")
    assert env.downstream.transactions >= 2, "not retried before expiry"
    assert env.downstream.received() == []
    wait_until(lambda: env.moat.queue_qids() == set(), 10, msg="queue empty after expiry")
    wait_until(lambda: status_of(env, "alice@protected.test") & {"bounced", "expired"}, 10,
               msg="tracking: bounced/expired")
    time.sleep(2)
    assert len(env.internet.received()) == 1, "more than one DSN"


def test_downstream_down_until_queue_lifetime_then_dsn(make_env):
    env = make_env(conf={"queue_lifetime": "4s"})
    env.downstream.down()
    msg, msgid = send(env, ["alice@protected.test"], "down and expires")
    dsn = env.internet.wait_for_messages(1, timeout=30)[0]
    check_dsn(dsn, ["alice@protected.test"], msgid, "down and expires", status_class="[45]")


def test_dsn_is_queued_when_relay_host_is_down(env):
    env.internet.down()
    env.downstream.set(mode="reject", fail_at="rcpt")
    msg, msgid = send(env, ["alice@protected.test"], "dsn later")
    wait_until(lambda: env.downstream.transactions >= 1, 15, msg="the rejected attempt")
    time.sleep(2)
    env.internet.up()
    dsn = env.internet.wait_for_messages(1, timeout=20)[0]
    check_dsn(dsn, ["alice@protected.test"], msgid, "dsn later")


def test_undeliverable_dsn_does_not_loop(env):
    """The DSN itself is rejected by the sender's side: it has the null
    sender, so it is dropped - no DSN about the DSN, nothing left queued."""
    env.internet.set(mode="reject", fail_at="rcpt")
    env.downstream.set(mode="reject", fail_at="rcpt")
    send(env, ["alice@protected.test"], "double bounce")
    wait_until(lambda: env.internet.transactions >= 1, 15, msg="the DSN delivery attempt")
    time.sleep(3)
    assert env.internet.transactions == 1, "the rejected DSN was retried or bounced (%d attempts)" % (
        env.internet.transactions)
    assert env.downstream.transactions == 1
    assert env.moat.queue_qids() == set(), "something stays queued after a double bounce"
