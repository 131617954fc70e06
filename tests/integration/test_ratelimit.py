"""Inbound rate limits: by connecting IP and by envelope sender -> 451 4.7.1
at MAIL FROM for limit_block, and tracking says why."""

import time

from conftest import RawSMTP, assert_reply, make_message, strings_in, wait_until

BY_IP = "Exceeded limit \u2013 message count (by IP address)"
BY_SENDER = "Exceeded limit \u2013 message count (by e-mail address)"


def one_message(port, sender, source="127.0.0.1"):
    """MAIL reply, and when it is 250 the rest of the transaction (must be 250)."""
    with RawSMTP(port, source=source) as c:
        c.ehlo()
        r = c.cmd("MAIL FROM:<%s>" % sender)
        if r.code != 250:
            return r
        assert_reply(c.cmd("RCPT TO:<alice@protected.test>"), 250)
        assert_reply(c.data(make_message(sender=sender)), 250, "2.0.0")
        return r


def tracking_mentions(env, text):
    return any(text in s for s in strings_in(env.moat.tracking()))


def test_limit_by_ip(make_env):
    env = make_env(conf={"limit_in_ip": "3/1m", "limit_in_sender": "1000/1m", "limit_block": "1m"})
    for i in range(3):
        assert_reply(one_message(env.port, "s%d@example.net" % i), 250, what="message %d" % (i + 1))
    assert_reply(one_message(env.port, "s9@example.net"), 451, "4.7.1", "4th message from 127.0.0.1")
    # other addresses are not affected
    assert_reply(one_message(env.port, "s9@example.net", source="127.0.0.2"), 250, what="from 127.0.0.2")
    wait_until(lambda: tracking_mentions(env, BY_IP), 10, msg="tracking: %r" % BY_IP)
    env.downstream.wait_for_messages(4)


def test_limit_by_sender(make_env):
    env = make_env(conf={"limit_in_ip": "1000/1m", "limit_in_sender": "3/1m", "limit_block": "1m"})
    for i in range(3):
        assert_reply(one_message(env.port, "flood@example.net", source="127.0.0.%d" % (i + 1)), 250)
    assert_reply(one_message(env.port, "flood@example.net", source="127.0.0.5"), 451, "4.7.1",
                 "4th message from flood@example.net")
    assert_reply(one_message(env.port, "other@example.net"), 250, what="another sender")
    wait_until(lambda: tracking_mentions(env, BY_SENDER), 10, msg="tracking: %r" % BY_SENDER)


def test_block_ends(make_env):
    env = make_env(conf={"limit_in_ip": "2/2s", "limit_block": "2s"})
    for i in range(2):
        assert_reply(one_message(env.port, "a@example.net"), 250)
    assert_reply(one_message(env.port, "a@example.net"), 451, "4.7.1")
    time.sleep(5)
    assert_reply(one_message(env.port, "a@example.net"), 250, what="after limit_block and the window")


def test_still_blocked_during_block_period(make_env):
    env = make_env(conf={"limit_in_ip": "2/1s", "limit_block": "1m"})
    for i in range(2):
        assert_reply(one_message(env.port, "a@example.net"), 250)
    assert_reply(one_message(env.port, "a@example.net"), 451, "4.7.1")
    time.sleep(2)   # the window passed, the block did not
    assert_reply(one_message(env.port, "a@example.net"), 451, "4.7.1", "during limit_block")
