"""moatctl tracking search: messages with per-recipient status."""

import json

from conftest import make_message, rcpt_statuses, strings_in, wait_until


def test_find_delivered_message_by_recipient(env):
    qid = env.send_ok("alice@protected.test", make_message(subject="track me"))
    env.downstream.wait_for_messages(1)
    wait_until(lambda: "delivered" in rcpt_statuses(env.moat.tracking("--rcpt", "alice@protected.test"),
                                                    "alice@protected.test", qid),
               10, msg="tracking: %s delivered to alice@protected.test" % qid)
    human = env.moat.ctl("tracking", "search", "--rcpt", "alice@protected.test").stdout
    assert qid in human and "delivered" in human, human


def test_rcpt_search_is_case_insensitive_and_filters(env):
    qa = env.send_ok("alice@protected.test", make_message(subject="for alice"))
    qb = env.send_ok("bob@protected.test", make_message(subject="for bob"))
    env.downstream.wait_for_messages(2)
    wait_until(lambda: qa in strings_in(env.moat.tracking("--rcpt", "ALICE@Protected.TEST")), 10,
               msg="case-insensitive --rcpt")
    doc = env.moat.tracking("--rcpt", "alice@protected.test")
    assert qb not in strings_in(doc), "--rcpt alice returned bob's message"


def test_search_by_sender(env):
    q1 = env.send_ok("alice@protected.test", make_message(sender="carol@example.org"), sender="carol@example.org")
    q2 = env.send_ok("alice@protected.test", make_message(sender="dave@example.org"), sender="dave@example.org")
    wait_until(lambda: q1 in strings_in(env.moat.tracking("--sender", "carol@example.org")), 10,
               msg="--sender finds the message")
    assert q2 not in strings_in(env.moat.tracking("--sender", "carol@example.org"))


def test_search_by_action(env):
    env.downstream.set(rcpt_replies={"gone@protected.test": "550 5.1.1 No such user"})
    ok = env.send_ok("alice@protected.test", make_message(subject="fine"))
    bad = env.send_ok("gone@protected.test", make_message(subject="bounces"))
    wait_until(lambda: bad in strings_in(env.moat.tracking("--action", "bounced")), 15,
               msg="--action bounced finds the bounced message")
    wait_until(lambda: ok in strings_in(env.moat.tracking("--action", "delivered")), 15,
               msg="--action delivered finds the delivered message")
    assert ok not in strings_in(env.moat.tracking("--action", "bounced"))
    assert bad not in strings_in(env.moat.tracking("--action", "delivered"))


def test_per_recipient_status(env):
    env.downstream.set(rcpt_replies={"later@protected.test": "450 4.2.1 Try later"})
    qid = env.send_ok(["alice@protected.test", "later@protected.test"], make_message(subject="two rcpts"))

    def both():
        doc = env.moat.tracking("--rcpt", "*@protected.test")
        return ("delivered" in rcpt_statuses(doc, "alice@protected.test", qid)
                and "deferred" in rcpt_statuses(doc, "later@protected.test", qid))
    wait_until(both, 15, msg="alice delivered and later@ deferred in one message's tracking")


def test_no_match_is_empty_and_exit_0(env):
    cp = env.moat.ctl("tracking", "search", "--rcpt", "nobody@nowhere.test", "--json")
    assert cp.returncode == 0
    assert not any(s for s in strings_in(json.loads(cp.stdout)) if "nowhere" in s)
