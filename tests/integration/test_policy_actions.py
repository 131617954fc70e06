"""Policies that act, end to end over SMTP (issue 5): the scan worker
evaluates each recipient's rules, rewrites the message where a rule modifies
it, and the queue manager carries out the plan - deliver (possibly to a
changed recipient), delete, quarantine, notify, BCC - with each recipient's
outcome and the rules evaluated in tracking."""

import base64
import email
import email.policy
import io
import json
import os
import shutil
import subprocess
import tempfile
import time
import zipfile

import pytest

from conftest import domain, make_message, tenant_doc, wait_until

EICAR = ("X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*").encode()
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*" + "GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def rule(name, criteria, actions, recipients="organization", senders="any", direction="inbound"):
    base = {"intercept": "none", "change_recipient": None, "clean": False, "delete_attachments": False,
            "x_header": None, "stamp": None, "tag_subject": None, "tag_skip_signed": True, "notify": [],
            "bcc": None}
    base.update(actions)
    return {"name": name, "direction": direction, "enabled": True, "recipients": recipients,
            "senders": senders, "exclude_recipients": [], "exclude_senders": [],
            "criteria": criteria, "actions": base}


VIRUS = rule("Virus", {"virus": {"types": ["cleanable", "mass_mailing", "non_mass_mailing"]}},
             {"intercept": "quarantine", "notify": [{"template": "Virus detection", "to": ["admin"]}]})
SPAM_TAG = rule("Spam tag", {"spam": {"level": "moderate"}}, {"tag_subject": "Spam:"})
EXE = rule("No executables", {"content": {"attachment_extensions": ["exe"]}}, {"delete_attachments": True})


def with_rules(*rules, approved=(), extra=None):
    def mk(downstream):
        d = tenant_doc([domain("protected.test", [downstream])])
        t = d["tenants"][0]
        t["policies"] = list(rules)
        t["approved_senders"] = list(approved)
        if extra:
            extra(t)
        return d
    return mk


def multipart(parts, subject="documents", text="The documents, as agreed."):
    body = "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n" % text
    for name, ctype, data in parts:
        b64 = base64.encodebytes(data).decode().replace("\n", "\r\n")
        body += ("--b1\r\nContent-Type: %s; name=\"%s\"\r\n"
                 "Content-Disposition: attachment; filename=\"%s\"\r\n"
                 "Content-Transfer-Encoding: base64\r\n\r\n%s" % (ctype, name, name, b64))
    body += "--b1--\r\n"
    return make_message(subject=subject, body=body,
                        extra_headers=["MIME-Version: 1.0", "Content-Type: multipart/mixed; boundary=\"b1\""])


def zipped(files):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in files:
            z.writestr(name, data)
    return buf.getvalue()


def parsed(received):
    return email.message_from_bytes(received.data, policy=email.policy.default)


def analyse(env, data: bytes) -> dict:
    """the inspection engine's reading of a delivered (rewritten) message"""
    path = env.moat.workdir / ("delivered-%d.eml" % time.monotonic_ns())
    path.write_bytes(data)
    return json.loads(env.moat.ctl("scan", str(path)).stdout)


def timeline(env, qid):
    return env.moat.ctl("tracking", "show", qid).stdout


def quarantine_items(env):
    return env.moat.ctl_json("quarantine", "list")


def test_gtube_subject_tagged_and_delivered(make_env):
    env = make_env(doc=with_rules(VIRUS, SPAM_TAG))
    qid = env.send_ok(["alice@protected.test"], make_message(subject="Cheap watches", body=GTUBE))
    got = env.downstream.wait_for_messages(1)[0]
    m = parsed(got)
    assert m["Subject"] == "Spam: Cheap watches", m["Subject"]
    assert "spam" in m["X-Moat-Scan"]
    # the rest is untouched and the rewritten message still parses
    assert GTUBE in m.get_body().get_content()
    env.moat.flush()
    tl = wait_until(lambda: (lambda t: t if "Spam tag: matched" in t else None)(timeline(env, qid)), 10,
                    msg="the rule trace in tracking")
    assert "Virus: not matched" in tl, tl


def test_eicar_zipped_quarantined_and_admin_notified(make_env):
    env = make_env(doc=with_rules(VIRUS, SPAM_TAG))
    msg = multipart([("docs.zip", "application/zip", zipped([("readme.com", EICAR)]))])
    qid = env.send_ok(["alice@protected.test"], msg)
    got = env.downstream.wait_for_messages(1)[0]
    # the only delivery is the notification to the tenant's admin
    assert got.rcpt_tos == ["admin@protected.test"], got.rcpt_tos
    n = parsed(got)
    assert n["X-Moat-Notification"], n
    text = n.get_body(preferencelist=("plain",)).get_content()
    items = wait_until(lambda: quarantine_items(env), 10, msg="the quarantined copy")
    assert len(items) == 1, items
    for want in (qid, "alice@protected.test", "EICAR", "Virus", items[0]["id"], "Acme Test Corp"):
        assert want in text, (want, text)
    assert "alice@protected.test" in str(items[0]) and "Virus" in str(items[0]), items
    time.sleep(1.0)
    assert len(env.downstream.messages) == 1, "nothing else may be delivered"
    env.moat.flush()
    wait_until(lambda: "quarantined" in timeline(env, qid), 10, msg="quarantined in tracking")


def test_exe_in_zip_deleted_with_a_note(make_env):
    env = make_env(doc=with_rules(VIRUS, EXE))
    other = b"%PDF-1.4\n% an innocent document\n"
    msg = multipart([("tool.zip", "application/zip", zipped([("setup.exe", b"MZ\x90\x00" + b"\x00" * 200)])),
                     ("report.pdf", "application/pdf", other)])
    env.send_ok(["alice@protected.test"], msg)
    got = env.downstream.wait_for_messages(1)[0]
    m = parsed(got)
    names = [p.get_filename() for p in m.iter_attachments()]
    assert "tool.zip" not in names and "report.pdf" in names, names
    pdf = [p for p in m.iter_attachments() if p.get_filename() == "report.pdf"][0]
    assert pdf.get_content() == other
    alltext = " ".join(p.get_content() for p in m.walk() if p.get_content_type() == "text/plain")
    assert "tool.zip" in alltext, alltext  # the note names what was removed
    # the rewritten message parses cleanly in the inspection engine too
    a = analyse(env, got.data)
    assert not [f for f in a.get("flags", []) if f.get("name") == "malformed"], a.get("flags")
    assert sorted(x["filename"] for x in a["attachments"]) == ["report.pdf"], a["attachments"]


def test_two_recipients_two_outcomes(make_env):
    ceo = rule("CEO sees spam, tagged", {"spam": {"level": "moderate"}}, {"tag_subject": "[SPAM?]"},
               recipients=["ceo@protected.test"])
    quarantine_spam = rule("Spam or Phish", {"spam": {"level": "moderate"}}, {"intercept": "quarantine"})
    quarantine_spam["exclude_recipients"] = ["ceo@protected.test"]
    env = make_env(doc=with_rules(quarantine_spam, ceo))
    qid = env.send_ok(["ceo@protected.test", "alice@protected.test"], make_message(subject="Win", body=GTUBE))
    got = env.downstream.wait_for_messages(1)[0]
    assert got.rcpt_tos == ["ceo@protected.test"], got.rcpt_tos
    assert parsed(got)["Subject"] == "[SPAM?] Win"
    items = wait_until(lambda: quarantine_items(env), 10, msg="alice's quarantined copy")
    assert len(items) == 1 and "alice@protected.test" in str(items[0]), items
    time.sleep(0.5)
    assert len(env.downstream.messages) == 1
    env.moat.flush()
    tl = timeline(env, qid)
    assert "ceo@protected.test" in tl and "alice@protected.test" in tl, tl


def test_approved_sender_gtube_delivered_untagged_but_virus_still_caught(make_env):
    env = make_env(doc=with_rules(VIRUS, SPAM_TAG, approved=["*@partner.test"]))
    env.send_ok(["alice@protected.test"], make_message(subject="Offer", body=GTUBE), sender="sales@partner.test")
    got = env.downstream.wait_for_messages(1)[0]
    assert parsed(got)["Subject"] == "Offer"
    msg = multipart([("docs.zip", "application/zip", zipped([("readme.com", EICAR)]))])
    env.send_ok(["alice@protected.test"], msg, sender="sales@partner.test")
    wait_until(lambda: quarantine_items(env), 10, msg="the virus is quarantined despite the approval")


def test_delete_change_recipient_xheader_stamp_bcc(make_env):
    delete = rule("Drop invoices", {"content": {"keywords": [{"pattern": "(?i)fake invoice", "in": ["subject"]}]}},
                  {"intercept": "delete"})
    redirect = rule("Big to archive", {"content": {"keywords": [{"pattern": "REDIRECT-ME", "in": ["body"]}]}},
                    {"intercept": "change_recipient", "change_recipient": "archive@protected.test"})
    mark = rule("Mark external", {"content": {"keywords": [{"pattern": "(?i)quarterly", "in": ["subject"]}]}},
                {"x_header": {"name": "X-Moat-Rule", "value": "external"},
                 "stamp": {"text": "[External mail]", "html": None},
                 "bcc": "audit@protected.test"})
    env = make_env(doc=with_rules(delete, redirect, mark))
    qid = env.send_ok(["alice@protected.test"], make_message(subject="Your FAKE INVOICE"))
    env.send_ok(["alice@protected.test"], make_message(subject="hello", body="REDIRECT-ME please"))
    env.send_ok(["alice@protected.test"], make_message(subject="Quarterly numbers", body="See below.\r\n"))
    got = env.downstream.wait_for_messages(3)
    by_rcpt = {tuple(g.rcpt_tos): g for g in got}
    assert ("archive@protected.test",) in by_rcpt, [g.rcpt_tos for g in got]
    assert ("alice@protected.test",) in by_rcpt and ("audit@protected.test",) in by_rcpt
    m = parsed(by_rcpt[("alice@protected.test",)])
    assert m["Subject"] == "Quarterly numbers"
    assert m["X-Moat-Rule"] == "external"
    assert "[External mail]" in m.get_body().get_content()
    bcc = parsed(by_rcpt[("audit@protected.test",)])
    assert bcc["X-Moat-Rule"] == "external"
    time.sleep(0.5)
    assert len(env.downstream.messages) == 3, "the deleted message must not arrive"
    env.moat.flush()
    wait_until(lambda: "deleted" in timeline(env, qid), 10, msg="deleted in tracking")


def test_password_zip_with_password_in_body_quarantined(make_env):
    if not shutil.which("zip"):
        pytest.skip("zip(1) not installed (scripts/install-deps installs it)")
    d = tempfile.mkdtemp(prefix="moat-zip-")
    try:
        with open(os.path.join(d, "readme.com"), "wb") as f:
            f.write(EICAR)
        subprocess.run(["zip", "-q", "-P", "Tiger-4711", "p.zip", "readme.com"], cwd=d, check=True)
        with open(os.path.join(d, "p.zip"), "rb") as f:
            data = f.read()
    finally:
        shutil.rmtree(d)
    env = make_env(doc=with_rules(VIRUS))
    msg = multipart([("p.zip", "application/zip", data)], text="パスワード：Tiger-4711")
    env.send_ok(["alice@protected.test"], msg)
    wait_until(lambda: quarantine_items(env), 10, msg="the encrypted EICAR is found and quarantined")


def test_plan_survives_a_restart(make_env):
    """A message whose delivery is deferred keeps its rewritten copy and its
    plan across a restart: after it, the tagged copy is delivered once."""
    env = make_env(doc=with_rules(SPAM_TAG))
    env.downstream.set(mode="tempfail", fail_at="rcpt", fail_count=0)
    qid = env.send_ok(["alice@protected.test"], make_message(subject="Deal", body=GTUBE))
    wait_until(lambda: any(q == qid for q in env.moat.queue_qids()), 10, msg="the deferred message")
    time.sleep(1.0)
    env.moat.restart()
    env.downstream.set(mode="accept")
    env.moat.ctl("queue", "flush")
    got = env.downstream.wait_for_messages(1, timeout=30)[0]
    assert parsed(got)["Subject"] == "Spam: Deal"


def test_release_runs_the_rules_after_quarantine(make_env):
    """A released copy continues through the policy: only the rules after the
    one that quarantined run (the seed: released messages continue through
    the policy), with the verdict it was quarantined with."""
    spam_q = rule("Spam or Phish", {"spam": {"level": "moderate"}}, {"intercept": "quarantine"})
    tag = rule("Tag released spam", {"spam": {"level": "moderate"}}, {"tag_subject": "[spam]"})
    earlier = rule("Mark all", {"content": {"keywords": [{"pattern": "(?i)offer", "in": ["subject"]}]}},
                   {"x_header": {"name": "X-Early", "value": "yes"}})
    env = make_env(doc=with_rules(VIRUS, spam_q, tag, earlier))
    # 1) GTUBE: quarantined by "Spam or Phish"; on release the later tag rule runs,
    #    the earlier content rule does not run again (its header was added once)
    env.send_ok(["alice@protected.test"], make_message(subject="Offer", body=GTUBE))
    items = wait_until(lambda: quarantine_items(env), 10, msg="the quarantined spam")
    assert len(items) == 1 and items[0]["rule"] == "Spam or Phish", items
    env.moat.ctl("quarantine", "release", items[0]["id"])
    got = env.downstream.wait_for_messages(1)[0]
    m = parsed(got)
    assert m["Subject"] == "[spam] Offer", m["Subject"]
    assert m.get_all("X-Early") == ["yes"], m.get_all("X-Early")
    # 2) EICAR + GTUBE: quarantined by "Virus"; released, the spam rule quarantines it again
    msg = multipart([("docs.zip", "application/zip", zipped([("readme.com", EICAR)]))], subject="x",
                    text=GTUBE)
    env.send_ok(["bob@protected.test"], msg)
    def virus_item():
        return [i for i in quarantine_items(env) if i["rule"] == "Virus"]
    first = wait_until(virus_item, 10, msg="the quarantined virus")[0]
    cp = env.moat.ctl("quarantine", "release", first["id"])
    assert "quarantined again" in cp.stdout, cp.stdout
    again = wait_until(lambda: [i for i in quarantine_items(env) if i["rcpt"] == "bob@protected.test"
                                and i["rule"] == "Spam or Phish"], 10, msg="quarantined again")
    assert len(again) == 1
    time.sleep(0.5)
    assert all("bob@protected.test" not in g.rcpt_tos for g in env.downstream.received())


def test_clean_removes_the_infected_part_and_keeps_the_rest(make_env):
    clean = rule("Clean viruses", {"virus": {"types": ["cleanable", "mass_mailing", "non_mass_mailing"]}},
                 {"clean": True, "tag_subject": "[cleaned]"})
    env = make_env(doc=with_rules(clean))
    keep = b"quarterly figures\r\n" * 20
    msg = multipart([("eicar.com", "application/octet-stream", EICAR), ("figures.txt", "text/plain", keep)],
                    subject="report")
    env.send_ok(["alice@protected.test"], msg)
    got = env.downstream.wait_for_messages(1)[0]
    assert EICAR not in got.data
    m = parsed(got)
    assert m["Subject"] == "[cleaned] report"
    names = [p.get_filename() for p in m.iter_attachments()]
    assert "eicar.com" not in names and "figures.txt" in names, names
    # the kept attachment is byte-identical (its base64 lines were copied as they were)
    assert base64.encodebytes(keep).decode().replace("\n", "\r\n").encode() in got.data


def test_many_recipients_many_rules_plan_stays_small(make_env):
    """400 recipients x 20 rules: the plan stores each distinct trace once, the
    message is accepted and everybody gets the tagged copy in one delivery."""
    rules = [rule("Keyword %d" % i, {"content": {"keywords": [{"pattern": "never-%d-matches" % i,
                                                               "in": ["subject", "body"]}]}},
                  {"x_header": {"name": "X-K%d" % i, "value": "x"}}) for i in range(18)]
    env = make_env(doc=with_rules(VIRUS, SPAM_TAG, *rules))
    rcpts = ["user%03d@protected.test" % i for i in range(400)]
    env.send_ok(rcpts, make_message(subject="all hands", body=GTUBE))
    got = env.downstream.wait_for_messages(1, timeout=30)
    delivered = sorted(r for g in got for r in g.rcpt_tos)
    assert delivered == sorted(rcpts)
    assert all(parsed(g)["Subject"] == "Spam: all hands" for g in got)


def test_japanese_tag_on_iso2022jp_subject_and_japanese_removal_note(make_env):
    tag_ja = rule("迷惑メール", {"spam": {"level": "moderate"}}, {"tag_subject": "[迷惑メール]"})
    env = make_env(doc=with_rules(tag_ja, EXE))
    subject = "=?ISO-2022-JP?B?" + base64.b64encode("会議の件".encode("iso2022_jp")).decode() + "?="
    body = "本文です。\r\n" + GTUBE
    env.send_ok(["alice@protected.test"], make_message(subject=subject, body=body))
    got = env.downstream.wait_for_messages(1)[0]
    assert parsed(got)["Subject"] == "[迷惑メール] 会議の件", parsed(got)["Subject"]
    # a Japanese message's removal note is in Japanese
    msg = multipart([("setup.exe", "application/octet-stream", b"MZ\x90\x00" + b"\x00" * 100)],
                    subject="資料", text="資料を送ります。")
    env.send_ok(["alice@protected.test"], msg)
    got = env.downstream.wait_for_messages(2)[1]
    notes = [p.get_content() for p in parsed(got).walk() if p.get_content_type() == "text/plain"]
    assert any("setup.exe" in n and any("\u3040" <= ch <= "\u30ff" or "\u4e00" <= ch <= "\u9fff" for ch in n)
               for n in notes[1:]), notes


def test_concurrent_mixed_traffic_each_message_gets_its_outcome(make_env):
    """120 messages from 6 clients at once, mixing clean, spam (tagged), virus
    (quarantined, admin notified) and a removed .exe: every message gets
    exactly its own outcome, nothing is lost or duplicated."""
    import threading
    env = make_env(doc=with_rules(VIRUS, SPAM_TAG, EXE))
    kinds = ["clean", "spam", "virus", "exe"]
    sent = {k: [] for k in kinds}
    errors = []

    def client(n):
        for i in range(20):
            kind = kinds[(n + i) % 4]
            subject = "%s-%d-%d" % (kind, n, i)
            if kind == "clean":
                msg = make_message(subject=subject)
            elif kind == "spam":
                msg = make_message(subject=subject, body=GTUBE)
            elif kind == "virus":
                msg = multipart([("v.zip", "application/zip", zipped([("readme.com", EICAR)]))], subject=subject)
            else:
                msg = multipart([("setup.exe", "application/octet-stream", b"MZ\x90\x00" + b"\x00" * 64)],
                                subject=subject)
            try:
                env.send_ok(["alice@protected.test"], msg)
                sent[kind].append(subject)
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(repr(e))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    expect = len(sent["clean"]) + len(sent["spam"]) + len(sent["exe"]) + len(sent["virus"])  # + notifications
    got = env.downstream.wait_for_messages(expect, timeout=60)
    time.sleep(1.0)
    got = env.downstream.received()
    assert len(got) == expect, (len(got), expect)
    subjects = [parsed(g)["Subject"] for g in got]
    for s in sent["clean"] + sent["exe"]:
        assert subjects.count(s) == 1, s
    for s in sent["spam"]:
        assert subjects.count("Spam: " + s) == 1, s
    notes = [g for g in got if g.rcpt_tos == ["admin@protected.test"]]
    assert len(notes) == len(sent["virus"])
    for g in got:
        if parsed(g)["Subject"] in sent["exe"]:
            assert b"MZ\x90" not in g.data and b"TVqQ" not in g.data
    items = wait_until(lambda: (lambda q: q if len(q) == len(sent["virus"]) else None)(quarantine_items(env)), 15,
                       msg="every virus quarantined once")
    assert sorted(i["subject"] for i in items) == sorted(sent["virus"])


def test_tenant_own_notification_template(make_env):
    hold = rule("Legal hold", {"content": {"keywords": [{"pattern": "(?i)contract", "in": ["subject"]}]}},
                {"notify": [{"template": "Legal hold", "to": ["admin", "compliance@protected.test"]}]})

    def templates(t):
        t["notification_templates"] = [
            {"name": "Legal hold", "lang": "en", "subject": "Held for legal: %SUBJECT%",
             "body": "Rule %RULE% matched a message from %SENDER% to %RECIPIENTS% (%QID%).\n"},
            {"name": "Legal hold", "lang": "ja", "subject": "法務確認: %SUBJECT%",
             "body": "ルール %RULE% に一致しました。送信者 %SENDER%\n"}]
    env = make_env(doc=with_rules(hold, extra=templates))
    qid = env.send_ok(["alice@protected.test"], make_message(subject="Contract draft"))
    got = env.downstream.wait_for_messages(3)
    by = {tuple(g.rcpt_tos): parsed(g) for g in got}
    assert by[("alice@protected.test",)]["Subject"] == "Contract draft"
    for who in ("admin@protected.test", "compliance@protected.test"):
        n = by[(who,)]
        assert n["Subject"] == "Held for legal: Contract draft", n["Subject"]
        body = n.get_body(preferencelist=("plain",)).get_content()
        assert "Legal hold" in body and qid in body and "bob@example.net" in body, body
    listed = env.moat.ctl_json("notify", "list", "--tenant", "acme")
    assert [t for t in listed if t["name"] == "Legal hold" and t["source"] == "tenant"], listed
    assert [t for t in listed if t["name"] == "Virus detection" and t["source"] == "default"], listed
    # a Japanese message gets the Japanese version
    env.send_ok(["alice@protected.test"], make_message(subject="契約書 contract"))
    got = env.downstream.wait_for_messages(6)
    subjects = [parsed(g)["Subject"] for g in got]
    assert subjects.count("法務確認: 契約書 contract") == 2, subjects


def test_unknown_template_name_is_a_clear_import_error(make_env):
    env = make_env(doc=with_rules(VIRUS))
    bad = with_rules(rule("X", {"spam": {"level": "high"}},
                          {"notify": [{"template": "No such template", "to": ["admin"]}]}))(env.downstream)
    cp = env.moat.import_doc(bad, check=False)
    assert cp.returncode != 0
    assert 'template "No such template" is neither a default template' in cp.stderr, cp.stderr
