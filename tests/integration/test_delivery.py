"""Relay end to end: bytes intact plus Moat's headers, envelopes, routing per
domain, preference and failover, queued while the downstream is down."""

import re
import time

from conftest import (domain, make_message, rcpt_statuses, received_with_qid, smtp_send, split_delivered,
                      tenant_doc, wait_rcpts, wait_until, header_fields)

TRICKY_BODY = (
    "First line\r\n"
    ".a line starting with a dot\r\n"
    "..two dots\r\n"
    ".\r\n"
    " . \r\n"
    "From the start of a line\r\n"
    "trailing spaces   \r\n"
    "\ttab indented\r\n"
    "\r\n"
    "\r\n"
    + "L" * 998 + "\r\n"
    "last line without blank after it\r\n"
)


def test_message_arrives_intact_with_moat_headers(env):
    msg = make_message(subject="intact", body=TRICKY_BODY,
                       extra_headers=["X-Folded: first part", "\tsecond part", "X-Empty:"])
    r = smtp_send(env.port, "bob@example.net", ["alice@protected.test"], msg)
    assert r.code == 250 and r.qid, r
    got = env.downstream.wait_for_messages(1)[0]
    added = split_delivered(got.data, msg)
    names = [k.lower() for k, _ in header_fields(added)]
    assert "received" in names, "no Received header added: %r" % added
    assert names.count("x-moat-scan") == 1, "expected one X-Moat-Scan header: %r" % added
    assert received_with_qid(got.data, r.qid), "no Received header with id %s: %r" % (r.qid, added)
    assert got.mail_from == "bob@example.net"
    assert got.rcpt_tos == ["alice@protected.test"]


def test_received_header_names_moat_and_client(env):
    r = smtp_send(env.port, "bob@example.net", ["alice@protected.test"], make_message(), helo="helo.example.net")
    got = env.downstream.wait_for_messages(1)[0]
    rec = received_with_qid(got.data, r.qid)
    assert rec, got.data[:1000]
    assert "moat.test" in rec[0] and "127.0.0.1" in rec[0], rec[0]


def test_queue_id_in_logs(env):
    qid = env.send_ok("alice@protected.test")
    env.downstream.wait_for_messages(1)
    wait_until(lambda: qid in env.moat.log_text(), 5, msg="queue ID %s in moatd's log" % qid)


def test_8bit_body_intact(env):
    body = "Gr\u00fc\u00dfe aus K\u00f6ln \u2014 \u65e5\u672c\u8a9e\r\n".encode() + b"latin-1 \xe9\xe8\r\n"
    msg = (b"From: bob@example.net\r\nTo: alice@protected.test\r\nSubject: 8bit\r\n"
           b"Message-ID: <8bit@example.net>\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + body)
    r = smtp_send(env.port, "bob@example.net", ["alice@protected.test"], msg, mail_options=["BODY=8BITMIME"])
    assert r.code == 250, r
    got = env.downstream.wait_for_messages(1)[0]
    split_delivered(got.data, msg)


def test_multiple_recipients_and_domains(make_env, fake_factory):
    other = fake_factory(name="other")
    env = make_env(domains=lambda ds: [domain("protected.test", [ds]), domain("other.test", [other])])
    msg = make_message(to="several")
    r = smtp_send(env.port, "bob@example.net",
                  ["alice@protected.test", "bob@protected.test", "carol@other.test"], msg)
    assert r.code == 250 and not r.refused, r
    wait_rcpts(env.downstream, ["alice@protected.test", "bob@protected.test"])
    wait_rcpts(other, ["carol@other.test"])
    for m in env.downstream.received() + other.received():
        split_delivered(m.data, msg)


def test_many_messages_each_delivered_once(env):
    n = 12
    for i in range(n):
        env.send_ok("alice@protected.test", make_message(subject="burst-%02d" % i))
    env.downstream.wait_for_messages(n, timeout=30)
    time.sleep(1.5)
    subjects = sorted(re.search(rb"Subject: (burst-\d+)", m.data).group(1) for m in env.downstream.received())
    assert subjects == sorted(b"burst-%02d" % i for i in range(n))


def test_preference_lowest_first(make_env, fake_factory):
    primary, secondary = fake_factory(name="primary"), fake_factory(name="secondary")
    env = make_env(domains=lambda ds: [domain("protected.test", [(secondary.port, 20), (primary.port, 10)])])
    for i in range(3):
        env.send_ok("alice@protected.test", make_message(subject="pref %d" % i))
    primary.wait_for_messages(3)
    assert secondary.received() == []


def test_failover_to_next_preference(make_env, fake_factory):
    primary, secondary = fake_factory(name="primary"), fake_factory(name="secondary")
    env = make_env(domains=lambda ds: [domain("protected.test", [(primary.port, 10), (secondary.port, 20)])])
    primary.down()
    env.send_ok("alice@protected.test", make_message(subject="failover"))
    got = secondary.wait_for_messages(1, timeout=20)[0]
    assert b"Subject: failover" in got.data
    # the primary comes back: it is preferred again (once the parked
    # connection to the secondary has expired: connection_reuse_time = 1s)
    primary.up()
    time.sleep(2.5)
    env.send_ok("alice@protected.test", make_message(subject="back to primary"))
    wait_until(lambda: primary.find(b"back to primary") or secondary.find(b"back to primary"), 20,
               msg="delivery after the primary came back")
    assert primary.find(b"back to primary"), "primary is up again but mail still went to the secondary"


def test_downstream_down_then_back(env):
    env.downstream.down()
    qid = env.send_ok("alice@protected.test", make_message(subject="while down"))
    time.sleep(2.5)
    assert qid in env.moat.queue_qids(), "message not in the queue while the downstream is down"
    wait_until(lambda: "deferred" in rcpt_statuses(env.moat.tracking("--rcpt", "alice@protected.test"),
                                                   "alice@protected.test", qid), 10, msg="tracking: deferred")
    env.downstream.up()
    got = env.downstream.wait_for_messages(1, timeout=20)[0]
    assert b"Subject: while down" in got.data
    assert received_with_qid(got.data, qid)
    wait_until(lambda: qid not in env.moat.queue_qids(), 10, msg="queue empty after delivery")


def test_stalled_downstream_times_out_and_is_retried(make_env):
    env = make_env(conf={"delivery_timeout": "2s"})
    env.downstream.set(mode="stall", fail_at="rcpt", stall_seconds=8, fail_count=1)
    qid = env.send_ok("alice@protected.test", make_message(subject="stalled once"))
    got = env.downstream.wait_for_messages(1, timeout=30)[0]
    assert received_with_qid(got.data, qid)
    assert env.downstream.transactions >= 2


def test_tenant_change_while_running(env):
    """Domains imported while moatd runs are picked up within a few seconds."""
    r = smtp_send(env.port, "bob@example.net", ["x@new.test"], make_message())
    assert "x@new.test" in r.refused
    doc = tenant_doc([domain("protected.test", [env.downstream]), domain("new.test", [env.downstream])])
    env.moat.import_doc(doc)
    wait_until(lambda: smtp_send(env.port, "bob@example.net", ["x@new.test"], make_message(subject="new")).code == 250,
               6, interval=0.5, msg="new.test accepted after import")
    wait_rcpts(env.downstream, ["x@new.test"])
