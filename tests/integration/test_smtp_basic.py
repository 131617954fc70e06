"""SMTP basics: banner, EHLO, the happy path with smtplib, swaks and raw
sockets, pipelining, BDAT/CHUNKING, SMTPUTF8, null sender."""

import re

import pytest

from conftest import (HOSTNAME, RawSMTP, assert_reply, make_message, parse_queued, smtp_send,
                      split_delivered, swaks, wait_rcpts)


def test_banner(env):
    with RawSMTP(env.port) as c:
        assert c.banner.code == 220
        assert re.match(r"%s ESMTP( |$)" % re.escape(HOSTNAME), c.banner.lines[0]), str(c.banner)


@pytest.mark.moat_conf(message_size_limit="1M")
def test_ehlo_advertises_extensions(env):
    with RawSMTP(env.port) as c:
        r = c.ehlo()
        assert r.code == 250
        assert r.lines[0].split()[0] == HOSTNAME, str(r)
        kw = {l.split()[0].upper(): l.split()[1:] for l in r.lines[1:] if l.strip()}
        for k in ("PIPELINING", "SIZE", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "STARTTLS", "CHUNKING"):
            assert k in kw, "EHLO does not advertise %s: %s" % (k, r)
        assert kw["SIZE"] == ["1048576"], "SIZE should be message_size_limit (1M = 1048576): %s" % kw["SIZE"]


def test_helo_is_enough(env):
    with RawSMTP(env.port) as c:
        assert_reply(c.cmd("HELO client.example.net"), 250)
        assert_reply(c.cmd("MAIL FROM:<bob@example.net>"), 250)
        assert_reply(c.cmd("RCPT TO:<alice@protected.test>"), 250)
        r = c.data(make_message(subject="via HELO"))
        assert_reply(r, 250, "2.0.0")
        assert parse_queued(r.text), str(r)
    env.downstream.wait_for_messages(1)


def test_mail_before_ehlo_is_503(env):
    with RawSMTP(env.port) as c:
        assert_reply(c.cmd("MAIL FROM:<bob@example.net>"), 503, "5.5.1")


def test_rcpt_before_mail_and_data_before_rcpt_are_503(env):
    with RawSMTP(env.port) as c:
        c.ehlo()
        assert_reply(c.cmd("RCPT TO:<alice@protected.test>"), 503, "5.5.1")
        assert_reply(c.cmd("MAIL FROM:<bob@example.net>"), 250)
        assert_reply(c.cmd("DATA"), 503, "5.5.1")


def test_noop_rset_quit(env):
    with RawSMTP(env.port) as c:
        c.ehlo()
        assert_reply(c.cmd("NOOP"), 250)
        assert_reply(c.cmd("MAIL FROM:<bob@example.net>"), 250)
        assert_reply(c.cmd("RSET"), 250)
        # RSET cleared the transaction: a second MAIL is fine
        assert_reply(c.cmd("MAIL FROM:<bob@example.net>"), 250)
        assert_reply(c.cmd("QUIT"), 221)
        assert c.is_closed(5)


def test_unknown_command(env):
    with RawSMTP(env.port) as c:
        c.ehlo()
        r = c.cmd("FROBNICATE now")
        assert r.code == 500 and r.enhanced.startswith("5.5."), str(r)


def test_smtplib_send_queued_reply_format(env):
    msg = make_message(subject="smtplib")
    r = smtp_send(env.port, "bob@example.net", ["alice@protected.test"], msg)
    assert r.code == 250, r
    assert re.fullmatch(r"2\.0\.0 Ok: queued as [0-9A-F]{20}", r.text), "reply text %r" % r.text
    got = env.downstream.wait_for_messages(1)[0]
    split_delivered(got.data, msg)
    assert got.mail_from == "bob@example.net"
    assert got.rcpt_tos == ["alice@protected.test"]


def test_several_messages_on_one_connection_get_distinct_ids(env):
    qids = []
    with RawSMTP(env.port) as c:
        c.ehlo()
        for i in range(3):
            assert_reply(c.cmd("MAIL FROM:<bob@example.net>"), 250)
            assert_reply(c.cmd("RCPT TO:<alice@protected.test>"), 250)
            r = c.data(make_message(subject="multi %d" % i))
            assert_reply(r, 250, "2.0.0")
            qids.append(parse_queued(r.text))
    assert all(qids) and len(set(qids)) == 3, qids
    msgs = env.downstream.wait_for_messages(3)
    assert sorted(m.data.count(b"Subject: multi") for m in msgs) == [1, 1, 1]


def test_swaks_send(env):
    cp = swaks("--server", "127.0.0.1:%d" % env.port, "--to", "alice@protected.test",
               "--from", "bob@example.net", "--header", "Subject: swaks basic", "--body", "hi from swaks")
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert re.search(r"<-  250 2\.0\.0 Ok: queued as [0-9A-F]{20}", cp.stdout), cp.stdout
    got = env.downstream.wait_for_messages(1)[0]
    assert b"Subject: swaks basic" in got.data and b"hi from swaks" in got.data


def test_swaks_pipelining(env):
    cp = swaks("--server", "127.0.0.1:%d" % env.port, "--pipeline", "--to",
               "alice@protected.test,bob@protected.test", "--from", "carol@example.net",
               "--header", "Subject: swaks pipelined")
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert "queued as" in cp.stdout, cp.stdout
    wait_rcpts(env.downstream, ["alice@protected.test", "bob@protected.test"])


def test_null_sender_accepted(env):
    with RawSMTP(env.port) as c:
        c.ehlo()
        assert_reply(c.cmd("MAIL FROM:<>"), 250)
        assert_reply(c.cmd("RCPT TO:<alice@protected.test>"), 250)
        r = c.data(make_message(subject="bounce-ish", sender="MAILER-DAEMON@example.net"))
        assert_reply(r, 250, "2.0.0")
    got = env.downstream.wait_for_messages(1)[0]
    assert got.mail_from == ""


def test_pipelining_whole_transaction_in_one_write(env):
    msg = make_message(subject="pipelined in one write")
    with RawSMTP(env.port) as c:
        assert c.ehlo().code == 250
        c.send(b"MAIL FROM:<bob@example.net>\r\n"
               b"RCPT TO:<alice@protected.test>\r\n"
               b"RCPT TO:<nobody@unprotected.test>\r\n"
               b"RCPT TO:<bob@protected.test>\r\n"
               b"DATA\r\n" + msg + b".\r\n"
               b"QUIT\r\n")
        rs = c.replies(7)
        codes = [r.code for r in rs]
        assert codes == [250, 250, 550, 250, 354, 250, 221], [str(r) for r in rs]
        assert parse_queued(rs[5].text), str(rs[5])
    wait_rcpts(env.downstream, ["alice@protected.test", "bob@protected.test"])
    for m in env.downstream.received():
        split_delivered(m.data, msg)


def test_pipelining_rfc2920_groups(env):
    """The RFC 2920 way: MAIL/RCPT/DATA in one group, wait for 354, then data."""
    msg = make_message(subject="pipelined rfc2920")
    with RawSMTP(env.port) as c:
        c.ehlo()
        c.send(b"MAIL FROM:<bob@example.net>\r\nRCPT TO:<alice@protected.test>\r\nDATA\r\n")
        assert [r.code for r in c.replies(3)] == [250, 250, 354]
        c.send(msg + b".\r\nRSET\r\nNOOP\r\n")
        r = c.reply()
        assert_reply(r, 250, "2.0.0")
        assert [x.code for x in c.replies(2)] == [250, 250]
    env.downstream.wait_for_messages(1)


def test_bdat_chunks(env):
    msg = make_message(subject="bdat chunks", body="line one\r\n.leading dot stays\r\nline three\r\n")
    a, b = msg[:50], msg[50:]
    with RawSMTP(env.port) as c:
        c.ehlo()
        assert_reply(c.cmd("MAIL FROM:<bob@example.net>"), 250)
        assert_reply(c.cmd("RCPT TO:<alice@protected.test>"), 250)
        c.send(b"BDAT %d\r\n" % len(a) + a)
        assert_reply(c.reply(), 250)
        c.send(b"BDAT %d LAST\r\n" % len(b) + b)
        r = c.reply()
        assert_reply(r, 250, "2.0.0")
        assert parse_queued(r.text), str(r)
    got = env.downstream.wait_for_messages(1)[0]
    split_delivered(got.data, msg)


def test_bdat_pipelined_with_empty_last_chunk(env):
    msg = make_message(subject="bdat pipelined")
    with RawSMTP(env.port) as c:
        c.ehlo()
        c.send(b"MAIL FROM:<bob@example.net>\r\nRCPT TO:<alice@protected.test>\r\n"
               + b"BDAT %d\r\n" % len(msg) + msg + b"BDAT 0 LAST\r\nQUIT\r\n")
        rs = c.replies(5)
        assert [r.code for r in rs] == [250, 250, 250, 250, 221], [str(r) for r in rs]
        assert parse_queued(rs[3].text), str(rs[3])
    got = env.downstream.wait_for_messages(1)[0]
    split_delivered(got.data, msg)


def test_smtputf8_addresses(env):
    sender = "jos\u00e9@example.net"
    rcpt = "\u00fcser@protected.test"
    msg = ("From: %s\r\nTo: %s\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\nMessage-ID: <u8@example.net>\r\n"
           "\r\nGr\u00fc\u00dfe\r\n" % (sender, rcpt)).encode()
    r = smtp_send(env.port, sender, [rcpt], msg, mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    assert r.code == 250 and r.qid, r
    got = env.downstream.wait_for_messages(1)[0]
    assert got.mail_from == sender
    assert got.rcpt_tos == [rcpt]
    split_delivered(got.data, msg)


def test_non_ascii_address_without_smtputf8_is_refused(env):
    with RawSMTP(env.port) as c:
        c.ehlo()
        assert_reply(c.cmd("MAIL FROM:<jos\u00e9@example.net>"), 553, "5.6.7")
