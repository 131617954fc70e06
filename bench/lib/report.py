#!/usr/bin/python3
"""Markdown report from the CSV files written by cell.py and idle.py.

usage: report.py THROUGHPUT.csv [--idle IDLE.csv] [--env ENV.txt] [--status STATUS.txt]
Each table cell is the median over the measured runs of that cell (RUNS, default 1).
"""
import argparse
import csv
import os
import statistics

NAMES = {"a": "(a) smtp-sink direct (limit)", "b": "(b) Postfix relay", "c": "(c) moatd relay"}


def size_label(n):
    n = int(n)
    return f"{n // 1024} KB" if n % 1024 == 0 and n >= 1024 else f"{n} B"


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def med(rows, k):
    v = [num(r[k]) for r in rows if num(r[k]) is not None]
    return statistics.median(v) if v else None


def mx(rows, k):
    v = [num(r[k]) for r in rows if num(r[k]) is not None]
    return max(v) if v else None


def f0(x):
    return "–" if x is None else f"{x:,.0f}"


def f1(x):
    return "–" if x is None else f"{x:,.1f}"


def f2(x):
    return "–" if x is None else f"{x:,.2f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("--idle")
    ap.add_argument("--env")
    ap.add_argument("--status")
    a = ap.parse_args()

    rows = []
    if os.path.exists(a.csv):
        rows = list(csv.DictReader(open(a.csv)))
    cells = {}
    for r in rows:
        cells.setdefault((r["scenario"], int(r["size_bytes"]), int(r["conc"])), []).append(r)
    scen = sorted({k[0] for k in cells})
    grid = sorted({(k[1], k[2]) for k in cells})
    out = ["# Moat benchmark results", ""]
    if a.env and os.path.exists(a.env):
        out += ["```", open(a.env).read().rstrip(), "```", ""]
    if a.status and os.path.exists(a.status) and os.path.getsize(a.status):
        out += ["**Notes from this run:**", ""]
        out += [f"* {ln.rstrip()}" for ln in open(a.status) if ln.strip()]
        out += [""]

    if cells:
        out += ["## Accepted messages/s (end-to-end delivered msg/s in parentheses)", "",
                "One message per SMTP session. Accepted = messages / wall time of the smtp-source run; "
                "end-to-end = messages / time until smtp-sink had counted the last one.", ""]
        hdr = ["size", "conc"] + [NAMES.get(s, s) for s in scen]
        if "b" in scen and "c" in scen:
            hdr.append("moatd / Postfix (accepted)")
        out += ["| " + " | ".join(hdr) + " |", "|" + "---|" * len(hdr)]
        for size, conc in grid:
            line = [size_label(size), str(conc)]
            acc = {}
            for s in scen:
                c = cells.get((s, size, conc))
                if not c:
                    line.append("–")
                    continue
                acc[s] = med(c, "accept_mps")
                bad = "" if all(r["ok"] == "yes" for r in c) else " ⚠"
                line.append(f"**{f0(acc[s])}** ({f0(med(c, 'e2e_mps'))}){bad}")
            if "b" in scen and "c" in scen:
                line.append(f"{acc['c'] / acc['b']:.2f}×" if acc.get("b") and acc.get("c") is not None else "–")
            out.append("| " + " | ".join(line) + " |")
        out += [""]
        if any(r["ok"] != "yes" for r in rows):
            out += ["⚠ = some messages were not accepted or not delivered, or smtp-source reported errors "
                "(see the detail table and the CSV `note` column).", ""]

        out += ["## Peak memory of the server under test, MiB (sum of VmRSS / sum of PSS over all its processes)", ""]
        hdr = ["size", "conc"] + [NAMES.get(s, s) for s in scen]
        out += ["| " + " | ".join(hdr) + " |", "|" + "---|" * len(hdr)]
        for size, conc in grid:
            line = [size_label(size), str(conc)]
            for s in scen:
                c = cells.get((s, size, conc))
                line.append(f"{f1(mx(c, 'peak_rss_mib'))} / {f1(mx(c, 'peak_pss_mib'))}" if c else "–")
            out.append("| " + " | ".join(line) + " |")
        out += [""]

        out += ["## Detail (median of runs; peak memory = max of runs)", "",
                "| scenario | size | conc | runs | msgs/run | accepted msg/s | e2e msg/s | mean session ms | "
                "server CPU ms/msg | busy cores | peak RSS MiB | peak PSS MiB | max procs | all delivered |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for s in scen:
            for size, conc in grid:
                c = cells.get((s, size, conc))
                if not c:
                    continue
                okc = sum(r["ok"] == "yes" for r in c)
                notes = {r["note"] for r in c if r["note"]}
                out.append("| " + " | ".join([
                    NAMES.get(s, s), size_label(size), str(conc), str(len(c)), f0(med(c, "sent")),
                    f0(med(c, "accept_mps")), f0(med(c, "e2e_mps")), f2(med(c, "mean_session_ms")),
                    f2(med(c, "server_cpu_ms_per_msg")), f2(med(c, "sys_busy_cores")),
                    f1(mx(c, "peak_rss_mib")), f1(mx(c, "peak_pss_mib")), f0(mx(c, "max_procs")),
                    ("yes" if okc == len(c) else f"NO ({okc}/{len(c)} ok)") + (f" – {'; '.join(sorted(notes))[:120]}" if notes else ""),
                ]) + " |")
        out += [""]
    else:
        out += ["(no throughput rows were recorded)", ""]

    if a.idle and os.path.exists(a.idle):
        irows = list(csv.DictReader(open(a.idle)))
        if irows:
            out += ["## Idle connections", "",
                    "| server | connections (banners) | RSS before, MiB | RSS idle, MiB (sum) | main process RSS, MiB | "
                    "PSS idle, MiB | KiB/connection | after close, MiB | target | result |",
                    "|---|---|---|---|---|---|---|---|---|---|"]
            for r in irows:
                out.append("| " + " | ".join([
                    r["server"], f"{r['connected']}/{r['requested']} ({r['banners']})", r["rss_before_mib"],
                    r["rss_idle_mib"], r["main_rss_idle_mib"], r["pss_idle_mib"], r["kib_per_conn_rss"],
                    r["rss_after_close_mib"], f"< {float(r['target_mib']):g} MiB",
                    f"sum RSS {'PASS' if r['pass_rss'] == 'yes' else 'FAIL'}, PSS {'PASS' if r['pass_pss'] == 'yes' else 'FAIL'}"
                    + ("" if r["ok"] == "yes" else " (test incomplete)") + (f" – {r['note']}" if r["note"] else ""),
                ]) + " |")
            out += [""]
    print("\n".join(out))


if __name__ == "__main__":
    main()
