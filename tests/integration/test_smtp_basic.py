"""SMTP basics: banner, EHLO, the happy path with smtplib, swaks and raw
sockets, pipelining, BDAT/CHUNKING, SMTPUTF8, null sender.

One moatd serves the whole module; each test finds its own messages at the
downstream by a unique token."""

import re
import threading
import uuid

from conftest import (HOSTNAME, RawSMTP, assert_reply, make_message, parse_queued, smtp_send,
                      split_delivered, swaks, wait_until)

MOAT_CONF = {"message_size_limit": "1M"}


def token(label: str = "") -> str:
    return "tok-%s-%s" % (label, uuid.uuid4().hex[:12])


def delivered(env, tok: str, n: int = 1, timeout: float = 15.0):
    """The downstream messages containing tok (waits for at least n)."""
    def enough():
        m = env.downstream.find(tok.encode())
        return m if len(m) >= n else None
    return wait_until(enough, timeout, msg="%d delivered message(s) containing %s" % (n, tok))


def delivered_rcpts(env, tok: str, expected):
    """Wait until the messages containing tok reached exactly the expected
    recipients (in any number of transactions); return those messages."""
    want = sorted(expected)
    wait_until(lambda: sum(len(m.rcpt_tos) for m in env.downstream.find(tok.encode())) >= len(want), 15,
               msg="delivery of %s to %s" % (tok, want))
    got = sorted(r for m in env.downstream.find(tok.encode()) for r in m.rcpt_tos)
    assert got == want, "delivered to %s, expected %s" % (got, want)
    return env.downstream.find(tok.encode())


def test_banner(module_env):
    with RawSMTP(module_env.port) as c:
        assert c.banner.code == 220
        assert re.match(r"%s ESMTP( |$)" % re.escape(HOSTNAME), c.banner.lines[0]), str(c.banner)


def test_ehlo_advertises_extensions(module_env):
    with RawSMTP(module_env.port) as c:
        r = c.ehlo()
        assert r.code == 250
        assert r.lines[0].split()[0] == HOSTNAME, str(r)
        kw = {l.split()[0].upper(): l.split()[1:] for l in r.lines[1:] if l.strip()}
        for k in ("PIPELINING", "SIZE", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "STARTTLS", "CHUNKING"):
            assert k in kw, "EHLO does not advertise %s: %s" % (k, r)
        assert kw["SIZE"] == ["1048576"], "SIZE should be message_size_limit (1M = 1048576): %s" % kw["SIZE"]


def test_helo_is_enough(module_env):
    tok = token("helo")
    with RawSMTP(module_env.port) as c:
        assert_reply(c.cmd("HELO client.example.net"), 250)
        assert_reply(c.cmd("MAIL FROM:<bob@example.net>"), 250)
        assert_reply(c.cmd("RCPT TO:<alice@protected.test>"), 250)
        r = c.data(make_message(subject=tok))
        assert_reply(r, 250, "2.0.0")
        assert parse_queued(r.text), str(r)
    delivered(module_env, tok)


def test_mail_before_ehlo_is_503(module_env):
    with RawSMTP(module_env.port) as c:
        assert_reply(c.cmd("MAIL FROM:<bob@example.net>"), 503, "5.5.1")


def test_rcpt_before_mail_and_data_before_rcpt_are_refused(module_env):
    with RawSMTP(module_env.port) as c:
        c.ehlo()
        assert_reply(c.cmd("RCPT TO:<alice@protected.test>"), 503, "5.5.1")
        assert_reply(c.cmd("MAIL FROM:<bob@example.net>"), 250)
        r = c.cmd("DATA")
        # RFC 5321 3.3: without valid recipients DATA gets 503 or 554 ("no valid recipients")
        assert r.code in (503, 554) and r.enhanced == "5.5.1", str(r)


def test_noop_rset_quit(module_env):
    with RawSMTP(module_env.port) as c:
        c.ehlo()
        assert_reply(c.cmd("NOOP"), 250)
        assert_reply(c.cmd("MAIL FROM:<bob@example.net>"), 250)
        assert_reply(c.cmd("RSET"), 250)
        # RSET cleared the transaction: a second MAIL is fine
        assert_reply(c.cmd("MAIL FROM:<bob@example.net>"), 250)
        assert_reply(c.cmd("QUIT"), 221)
        assert c.is_closed(5)


def test_unknown_command(module_env):
    with RawSMTP(module_env.port) as c:
        c.ehlo()
        r = c.cmd("FROBNICATE now")
        assert r.code == 500 and r.enhanced.startswith("5.5."), str(r)


def test_smtplib_send_queued_reply_format(module_env):
    tok = token("smtplib")
    msg = make_message(subject=tok)
    r = smtp_send(module_env.port, "bob@example.net", ["alice@protected.test"], msg)
    assert r.code == 250, r
    assert re.fullmatch(r"2\.0\.0 Ok: queued as [0-9A-F]{20}", r.text), "reply text %r" % r.text
    got = delivered(module_env, tok)[0]
    split_delivered(got.data, msg)
    assert got.mail_from == "bob@example.net"
    assert got.rcpt_tos == ["alice@protected.test"]


def test_several_messages_on_one_connection_get_distinct_ids(module_env):
    tok = token("multi")
    qids = []
    with RawSMTP(module_env.port) as c:
        c.ehlo()
        for i in range(3):
            assert_reply(c.cmd("MAIL FROM:<bob@example.net>"), 250)
            assert_reply(c.cmd("RCPT TO:<alice@protected.test>"), 250)
            r = c.data(make_message(subject="%s %d" % (tok, i)))
            assert_reply(r, 250, "2.0.0")
            qids.append(parse_queued(r.text))
    assert all(qids) and len(set(qids)) == 3, qids
    msgs = delivered(module_env, tok, 3)
    assert sorted(re.search(rb"Subject: \S+ (\d)", m.data).group(1) for m in msgs) == [b"0", b"1", b"2"]


def test_swaks_send(module_env):
    tok = token("swaks")
    cp = swaks("--server", "127.0.0.1:%d" % module_env.port, "--to", "alice@protected.test",
               "--from", "bob@example.net", "--header", "Subject: " + tok, "--body", "hi from swaks")
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert re.search(r"<-  250 2\.0\.0 Ok: queued as [0-9A-F]{20}", cp.stdout), cp.stdout
    got = delivered(module_env, tok)[0]
    assert b"hi from swaks" in got.data


def test_swaks_pipelining(module_env):
    tok = token("swakspipe")
    cp = swaks("--server", "127.0.0.1:%d" % module_env.port, "--pipeline", "--to",
               "alice@protected.test,bob@protected.test", "--from", "carol@example.net",
               "--header", "Subject: " + tok)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert "queued as" in cp.stdout, cp.stdout
    delivered_rcpts(module_env, tok, ["alice@protected.test", "bob@protected.test"])


def test_swaks_relay_denied(module_env):
    cp = swaks("--server", "127.0.0.1:%d" % module_env.port, "--to", "someone@example.org",
               "--from", "bob@example.net")
    assert cp.returncode != 0
    assert re.search(r"<\*\* +550 5\.7\.1", cp.stdout), cp.stdout


def test_null_sender_accepted(module_env):
    tok = token("null")
    with RawSMTP(module_env.port) as c:
        c.ehlo()
        assert_reply(c.cmd("MAIL FROM:<>"), 250)
        assert_reply(c.cmd("RCPT TO:<alice@protected.test>"), 250)
        r = c.data(make_message(subject=tok, sender="MAILER-DAEMON@example.net"))
        assert_reply(r, 250, "2.0.0")
    assert delivered(module_env, tok)[0].mail_from == ""


def test_pipelining_whole_transaction_in_one_write(module_env):
    tok = token("pipe")
    msg = make_message(subject=tok)
    with RawSMTP(module_env.port) as c:
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
    for m in delivered_rcpts(module_env, tok, ["alice@protected.test", "bob@protected.test"]):
        split_delivered(m.data, msg)


def test_pipelining_rfc2920_groups(module_env):
    """The RFC 2920 way: MAIL/RCPT/DATA in one group, wait for 354, then data."""
    tok = token("rfc2920")
    with RawSMTP(module_env.port) as c:
        c.ehlo()
        c.send(b"MAIL FROM:<bob@example.net>\r\nRCPT TO:<alice@protected.test>\r\nDATA\r\n")
        assert [r.code for r in c.replies(3)] == [250, 250, 354]
        c.send(make_message(subject=tok) + b".\r\nRSET\r\nNOOP\r\n")
        r = c.reply()
        assert_reply(r, 250, "2.0.0")
        assert [x.code for x in c.replies(2)] == [250, 250]
    delivered(module_env, tok)


def test_bdat_chunks(module_env):
    tok = token("bdat")
    msg = make_message(subject=tok, body="line one\r\n.leading dot stays\r\nline three\r\n")
    a, b = msg[:50], msg[50:]
    with RawSMTP(module_env.port) as c:
        c.ehlo()
        assert_reply(c.cmd("MAIL FROM:<bob@example.net>"), 250)
        assert_reply(c.cmd("RCPT TO:<alice@protected.test>"), 250)
        c.send(b"BDAT %d\r\n" % len(a) + a)
        assert_reply(c.reply(), 250)
        c.send(b"BDAT %d LAST\r\n" % len(b) + b)
        r = c.reply()
        assert_reply(r, 250, "2.0.0")
        assert parse_queued(r.text), str(r)
    split_delivered(delivered(module_env, tok)[0].data, msg)


def test_bdat_pipelined_with_empty_last_chunk(module_env):
    tok = token("bdat0")
    msg = make_message(subject=tok)
    with RawSMTP(module_env.port) as c:
        c.ehlo()
        c.send(b"MAIL FROM:<bob@example.net>\r\nRCPT TO:<alice@protected.test>\r\n"
               + b"BDAT %d\r\n" % len(msg) + msg + b"BDAT 0 LAST\r\nQUIT\r\n")
        rs = c.replies(5)
        assert [r.code for r in rs] == [250, 250, 250, 250, 221], [str(r) for r in rs]
        assert parse_queued(rs[3].text), str(rs[3])
    split_delivered(delivered(module_env, tok)[0].data, msg)


def test_smtputf8_addresses(module_env):
    tok = token("utf8")
    sender = "jos\u00e9@example.net"
    rcpt = "\u00fcser@protected.test"
    msg = ("From: %s\r\nTo: %s\r\nSubject: %s =?utf-8?q?caf=C3=A9?=\r\nMessage-ID: <%s@example.net>\r\n"
           "\r\nGr\u00fc\u00dfe\r\n" % (sender, rcpt, tok, tok)).encode()
    r = smtp_send(module_env.port, sender, [rcpt], msg, mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    assert r.code == 250 and r.qid, r
    got = delivered(module_env, tok)[0]
    assert got.mail_from == sender
    assert got.rcpt_tos == [rcpt]
    split_delivered(got.data, msg)


def test_non_ascii_address_without_smtputf8_is_refused(module_env):
    with RawSMTP(module_env.port) as c:
        c.ehlo()
        assert_reply(c.cmd("MAIL FROM:<jos\u00e9@example.net>"), 553, "5.6.7")


def test_large_message_intact(module_env):
    """Close to message_size_limit (1M): many buffers' worth, byte for byte."""
    tok = token("large")
    line = "".join(chr(0x21 + (i % 90)) for i in range(76))
    body = "".join("%06d %s\r\n" % (i, line) for i in range(11500))
    msg = make_message(subject=tok, body=body)
    assert 900 * 1024 < len(msg) < 1024 * 1024 - 2048
    r = smtp_send(module_env.port, "bob@example.net", ["alice@protected.test"], msg,
                  mail_options=["SIZE=%d" % len(msg)])
    assert r.code == 250, r
    split_delivered(delivered(module_env, tok, timeout=30)[0].data, msg)


def test_size_equal_to_limit_is_accepted_at_mail(module_env):
    with RawSMTP(module_env.port) as c:
        c.ehlo()
        assert_reply(c.cmd("MAIL FROM:<bob@example.net> SIZE=1048576"), 250)
        assert_reply(c.cmd("RSET"), 250)
        assert_reply(c.cmd("MAIL FROM:<bob@example.net> SIZE=1048577"), 552, "5.3.4")


def test_concurrent_clients(module_env):
    tok = token("conc")
    errors, qids = [], []

    def client(n):
        try:
            with RawSMTP(module_env.port) as c:
                c.ehlo()
                for i in range(5):
                    assert_reply(c.cmd("MAIL FROM:<c%d@example.net>" % n), 250)
                    assert_reply(c.cmd("RCPT TO:<alice@protected.test>"), 250)
                    r = c.data(make_message(subject="%s %d-%d" % (tok, n, i)))
                    assert_reply(r, 250, "2.0.0")
                    qids.append(parse_queued(r.text))
        except Exception as e:   # noqa: BLE001 - collected and reported below
            errors.append("client %d: %r" % (n, e))
    threads = [threading.Thread(target=client, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert len(set(qids)) == 100, "%d distinct queue IDs for 100 messages" % len(set(qids))
    msgs = delivered(module_env, tok, 100, timeout=60)
    subjects = sorted(re.search(rb"Subject: \S+ (\d+-\d+)", m.data).group(1) for m in msgs)
    assert len(set(subjects)) == 100 and len(subjects) == 100, "duplicates or losses: %d/%d" % (
        len(set(subjects)), len(subjects))
