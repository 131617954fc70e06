#!/usr/bin/python3
"""Realistic test messages for bench/run-e2e-bench (smtp-source -F, swaks).

Built like the peer benchmark's realistic set (../shared/bench/peer/mkmsgs.py): the same
headers (a Received line, display names, Message-ID, Thunderbird User-Agent),
multipart/mixed with a text/plain + text/html multipart/alternative body and base64
attachments of incompressible bytes. Two differences, both towards real mail:
  * the body is fixed, coherent business prose (the peer's is random word salad drawn
    from a 40-word list, which a content classifier can fairly call spam-like: Moat's
    classifier put the peer's 100 KB file at spam level "moderate");
  * the 100 KB message has two attachments (a PDF and a PNG), the 2 KB one a small PDF.
Files (LF line endings; smtp-source -F sends CRLF):
   realistic-2k.eml    ~2 KB  text + HTML + agenda.pdf
   realistic-100k.eml  ~100 KB text + HTML + report.pdf (~75 KB) + chart.png (~20 KB)
   eicar.eml           the EICAR test string as an attachment (eicar.com)
Deterministic (fixed seed): reruns produce identical files.
usage: mkmsgs.py OUTDIR [RCPT_DOMAIN]   (default bench.test)"""
import base64
import os
import random
import sys
import textwrap

out = sys.argv[1] if len(sys.argv) > 1 else "msgs"
dom = sys.argv[2] if len(sys.argv) > 2 else "bench.test"
os.makedirs(out, exist_ok=True)
rnd = random.Random(42)

PARAS = [
    "Thank you for joining the review call on Monday. As promised, I am sending the "
    "figures for the third quarter together with the draft agenda for our meeting next week.",
    "Revenue grew in all three regions, mostly thanks to the new onboarding process for "
    "enterprise customers. Costs stayed within the budget we agreed in June, although "
    "travel was slightly higher than planned because of the two trade fairs.",
    "Could you check the numbers in section two before Thursday? The finance team would "
    "like to close the quarter by the end of the month, and your comments on the forecast "
    "would help us a lot.",
    "For the meeting, I suggest Tuesday at 10:00 or Wednesday at 14:00 in the large "
    "conference room. Please let me know which slot works best for you and your team.",
]


def build(nparas, attachments, subject):
    text = "\n\n".join(textwrap.fill(p, 72) for p in PARAS[:nparas])
    html = ("<html><head><meta charset=\"utf-8\"></head><body>\n"
            + "".join("<p>%s</p>\n" % p for p in PARAS[:nparas])
            + "<p>The shared folder is on the portal: "
              "<a href=\"https://portal.example.test/login\">portal.example.test</a></p>\n"
            "<p>Best regards,<br>Alice</p>\n</body></html>")
    parts = []
    for name, ctype, data in attachments:
        parts.append(f"""--------------mixed0123456789
Content-Type: {ctype}; name="{name}"
Content-Disposition: attachment; filename="{name}"
Content-Transfer-Encoding: base64

{base64.encodebytes(data).decode()}""")
    return f"""Return-Path: <alice@sender.test>
Received: from mail.sender.test (mail.sender.test [192.0.2.10])
	by mx.sender.test with ESMTPS id 4Xyz123abc
	for <user@{dom}>; Tue, 26 Nov 2024 10:15:02 +0000
From: Alice Sender <alice@sender.test>
To: Bob User <user@{dom}>
Subject: {subject}
Date: Tue, 26 Nov 2024 10:15:00 +0000
Message-ID: <20241126101500.4711.abcdef@mail.sender.test>
MIME-Version: 1.0
User-Agent: Mozilla/5.0 Thunderbird/115.5.0
Content-Language: en-US
Content-Type: multipart/mixed; boundary="------------mixed0123456789"

This is a multi-part message in MIME format.
--------------mixed0123456789
Content-Type: multipart/alternative; boundary="------------alt0123456789"

--------------alt0123456789
Content-Type: text/plain; charset=UTF-8; format=flowed
Content-Transfer-Encoding: 7bit

Hi Bob,

{text}

Best regards,
Alice

--------------alt0123456789
Content-Type: text/html; charset=UTF-8
Content-Transfer-Encoding: 7bit

{html}

--------------alt0123456789--
{"".join(parts)}
--------------mixed0123456789--
"""


def blob(magic, n):
    return magic + bytes(rnd.getrandbits(8) for _ in range(max(0, n - len(magic))))


def write(name, body):
    with open(os.path.join(out, name), "w") as f:
        f.write(body)
    print(name, len(body.encode()), "bytes")


SUBJ = "Q3 report and meeting agenda"
write("realistic-2k.eml", build(1, [("agenda.pdf", "application/pdf", blob(b"%PDF-1.4\n", 200))], SUBJ))
write("realistic-100k.eml", build(4, [("report.pdf", "application/pdf", blob(b"%PDF-1.4\n", 56000)),
                                      ("chart.png", "image/png", blob(b"\x89PNG\r\n\x1a\n", 16500))], SUBJ))
EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
write("eicar.eml", build(1, [("eicar.com", "application/octet-stream", EICAR)], "EICAR test"))
