#!/usr/bin/python3
"""Small helpers for bench/run-bench (all network use is 127.0.0.1 only).

  benchutil.py ports N                 print N distinct free TCP ports on 127.0.0.1
  benchutil.py banner PORT SECS [PID]  wait until 127.0.0.1:PORT answers with a 220 banner
                                       (exit 1 on timeout, or at once if PID is given and dies)
  benchutil.py tree PID...             print "pid starttime" of PID(s) and all descendants
  benchutil.py reap-tree FILE          SIGTERM the processes listed by `tree` in FILE that still
                                       exist with the same start time (never anything else)
  benchutil.py sinkcount FILE          print smtp-sink's message counter from its -c output
  benchutil.py busy SECS               print how many CPU cores the machine kept busy during SECS
  benchutil.py dns-stub PORT STATSFILE answer every DNS query on 127.0.0.1:PORT (UDP) with an
                                       empty NOERROR answer; write the query count on SIGTERM
"""
import os
import re
import signal
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sampler  # noqa: E402


def free_ports(n):
    socks, ports = [], []
    try:
        while len(ports) < n:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            p = s.getsockname()[1]
            socks.append(s)
            # keep a port only if the same number is also free for UDP (the DNS stub uses UDP)
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                u.bind(("127.0.0.1", p))
                socks.append(u)
                ports.append(p)
            except OSError:
                u.close()
    finally:
        for s in socks:
            s.close()
    return ports


def read_banner(port, timeout):
    """One attempt: -> the banner line(s) on success, None if not (yet) a 220."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(timeout)
            buf = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    return None
                buf += chunk
                lines = buf.split(b"\r\n")
                for ln in lines[:-1]:
                    if ln[:4] == b"220 ":
                        try:
                            s.sendall(b"QUIT\r\n")
                        except OSError:
                            pass
                        return buf.decode("latin-1").strip()
                    if ln[:4] != b"220-":
                        return None
    except OSError:
        return None


def wait_banner(port, secs, pid=None):
    end = time.monotonic() + secs
    while time.monotonic() < end:
        if pid is not None and not sampler.alive(pid):
            return None
        b = read_banner(port, 2.0)
        if b:
            return b
        time.sleep(0.1)
    return None


def sink_count(path):
    """smtp-sink -c writes 'sess=N quit=N mesg=N' records separated by CR; use the last complete one."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 400))
            data = f.read()
    except OSError:
        return 0
    end = max(data.rfind(b"\r"), data.rfind(b"\n"))
    if end < 0:
        return 0
    m = re.findall(rb"mesg=(\d+)", data[:end])
    return int(m[-1]) if m else 0


def tree(pids):
    tab = sampler.proc_table()
    return [(p, tab[p][4]) for p in sampler.descendants(pids, tab)]


def reap_tree(path):
    """SIGTERM every recorded process that still exists *with the same start time* (so a
    reused PID is never hit). Returns the number signalled."""
    n = 0
    tab = sampler.proc_table()
    for line in open(path):
        try:
            pid, st = map(int, line.split())
        except ValueError:
            continue
        if pid in tab and tab[pid][4] == st and tab[pid][1] not in ("Z", "X"):
            try:
                os.kill(pid, signal.SIGTERM)
                n += 1
            except OSError:
                pass
    return n


def dns_stub(port, statsfile):
    """Authoritative-looking empty answers (NOERROR, no records) for every question: SPF,
    DMARC, DKIM, PTR lookups find "no record" at once, nothing leaves the machine."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", port))
    count = [0]

    def done(*_):
        with open(statsfile, "w") as f:
            f.write(f"{count[0]}\n")
        sys.exit(0)

    signal.signal(signal.SIGTERM, done)
    signal.signal(signal.SIGINT, done)
    while True:
        try:
            q, addr = s.recvfrom(4096)
        except InterruptedError:
            continue
        if len(q) < 12:
            continue
        qid, flags, qd = struct.unpack("!HHH", q[:6])
        # copy the question section (QDCOUNT questions: labels + QTYPE + QCLASS)
        i = 12
        try:
            for _ in range(qd):
                while q[i] != 0:
                    i += 1 + q[i]
                i += 5
        except IndexError:
            continue
        rd = flags & 0x0100
        rflags = 0x8000 | 0x0400 | rd | 0x0080  # QR, AA, RD copied, RA; RCODE 0
        resp = struct.pack("!HHHHHH", qid, rflags, qd, 0, 0, 0) + q[12:i]
        count[0] += 1
        try:
            s.sendto(resp, addr)
        except OSError:
            pass


def main():
    a = sys.argv[1:]
    if not a:
        sys.exit(__doc__)
    cmd = a[0]
    if cmd == "ports":
        print(" ".join(map(str, free_ports(int(a[1])))))
    elif cmd == "banner":
        b = wait_banner(int(a[1]), float(a[2]), int(a[3]) if len(a) > 3 else None)
        if not b:
            sys.exit(1)
        print(b.splitlines()[-1])
    elif cmd == "tree":
        for p, st in tree([int(x) for x in a[1:]]):
            print(p, st)
    elif cmd == "reap-tree":
        print(reap_tree(a[1]))
    elif cmd == "sinkcount":
        print(sink_count(a[1]))
    elif cmd == "busy":
        b0, t0 = sampler.sys_busy(), time.monotonic()
        time.sleep(float(a[1]))
        print(f"{(sampler.sys_busy() - b0) / sampler.TCK / (time.monotonic() - t0):.2f}")
    elif cmd == "dns-stub":
        dns_stub(int(a[1]), a[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
