"""docs/api.md's walkthrough, run as written: every ```sh block between the
walkthrough markers runs in order in one bash (set -euo pipefail) against a
moatd with the demo tenant of `make run`, with `moatctl` pointing at it; every
line of every ```text block (the outputs shown) must appear in what the
blocks printed."""

import os
import re
import subprocess
from pathlib import Path

from conftest import MOATCTL, ROOT, domain, tenant_doc

DOC = ROOT / "docs" / "api.md"


def walkthrough():
    text = DOC.read_text()
    m = re.search(r"<!-- walkthrough -->(.*)<!-- /walkthrough -->", text, re.S)
    assert m, "docs/api.md has no walkthrough markers"
    blocks = re.findall(r"```(sh|text)\n(.*?)```", m.group(1), re.S)
    assert blocks
    return [b for k, b in blocks if k == "sh"], [b for k, b in blocks if k == "text"]


def test_api_walkthrough(make_env, tmp_path):
    env = make_env(doc=lambda ds: tenant_doc([domain("demo.test", [ds])], company_id="demo"))
    bindir = tmp_path / "bin"
    bindir.mkdir()
    wrapper = bindir / "moatctl"
    wrapper.write_text('#!/bin/sh\nexec "%s" -c "%s" "$@"\n' % (MOATCTL, env.moat.conf_path))
    wrapper.chmod(0o755)
    scripts, outputs = walkthrough()
    script = "set -euo pipefail\n" + "\n".join(scripts)
    e = dict(os.environ, PATH="%s:%s" % (bindir, os.environ["PATH"]),
             MOAT="http://127.0.0.1:%d" % env.moat.http_port, SMTP="127.0.0.1:%d" % env.port)
    cp = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=e, capture_output=True, text=True, timeout=120)
    assert cp.returncode == 0, "walkthrough failed (%d)\nstdout:\n%s\nstderr:\n%s" % (
        cp.returncode, cp.stdout[-4000:], cp.stderr[-4000:])
    for block in outputs:
        for line in block.strip().splitlines():
            assert line in cp.stdout, "docs/api.md shows %r, the walkthrough printed:\n%s" % (line, cp.stdout)
    env.downstream.wait_for_messages(2, timeout=15)   # the message sent and the released copy
