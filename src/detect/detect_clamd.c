/*
 * detect_clamd.c - the clamd client of the malware detector (config key
 * clamd_socket, docs/detection.md "Malware"): one INSTREAM exchange per
 * scanned object.
 *
 *   clamd_target_parse  a clamd_socket value into an address
 *   clamd_scan          stream bytes to clamd, read its verdict
 *
 * Protocol (clamd(8)): "zINSTREAM\0", then chunks each preceded by its
 * length as 4 bytes big-endian, a zero length ends the stream. The reply is
 * one NUL-terminated line: "stream: OK", "stream: NAME FOUND" (with
 * ExtendedDetectionInfo "stream: NAME(MD5:SIZE) FOUND"), or "... ERROR"
 * (e.g. "INSTREAM size limit exceeded. ERROR", after which clamd closes).
 * One connection per object (no IDSESSION): a broken exchange cannot spill
 * into the next one.
 *
 * Limits: connect, stream and reply together must finish within the
 * timeout (one deadline, so a clamd that drips its reply cannot hold a
 * worker longer); at most stream_max bytes are sent (clamd's
 * StreamMaxLength must be at least as large); the reply is read up to
 * CLAMD_MAX_REPLY bytes. Anything but OK or FOUND - refused, timed out,
 * oversize, an ERROR, a reply we cannot parse - is CLAMD_ERROR with a
 * reason: the caller makes it a scan_exclusion, never "clean".
 *
 * Security: the reply is hostile input: bounded, and the name is kept only
 * when it is printable ASCII without blanks. Only loopback addresses are
 * accepted (config_clamd_socket_check): INSTREAM is unauthenticated
 * cleartext carrying customer mail. Writes use MSG_NOSIGNAL (clamd may
 * close the connection while we are still sending).
 */
#include "core/core.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "detect/detect_int.h"

#define CLAMD_CHUNK (64u * 1024) /* bytes per INSTREAM chunk */
#define CLAMD_MAX_REPLY 1024u    /* longest reply read */
#define CLAMD_MAX_NAME 255u      /* longest signature name kept */

const char *clamd_target_parse(const char *spec, struct clamd_target *t)
{
    char host[256];
    uint16_t port;
    const char *why = config_clamd_socket_check(spec);

    memset(t, 0, sizeof *t);
    if (why)
        return why;
    if (spec[0] == '\0')
        return "empty";
    snprintf(t->name, sizeof t->name, "%s", spec);
    if (spec[0] == '/') {
        struct sockaddr_un *un = (struct sockaddr_un *)(void *)&t->sa;
        un->sun_family = AF_UNIX;
        core_strlcpy(un->sun_path, spec, sizeof un->sun_path);
        t->salen = (socklen_t)sizeof *un;
        return NULL;
    }
    if (core_parse_hostport(spec, host, sizeof host, &port) < 0)
        return "neither an absolute unix socket path nor host:port";
    if (strcmp(host, "localhost") == 0)
        core_strlcpy(host, "127.0.0.1", sizeof host);
    struct sockaddr_in *in4 = (struct sockaddr_in *)(void *)&t->sa;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)(void *)&t->sa;
    if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons(port);
        t->salen = (socklen_t)sizeof *in4;
    } else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        t->salen = (socklen_t)sizeof *in6;
    } else {
        return "not an IP address";
    }
    return NULL;
}

/* left_ms - milliseconds until the deadline (0 when past it) */
static int left_ms(double deadline)
{
    double d = (deadline - core_monotonic()) * 1000.0;
    return d <= 0 ? 0 : d > 600000.0 ? 600000 : (int)d + 1;
}

/* wait_fd - 0 when fd is ready for events before the deadline, -1 on timeout/error */
static int wait_fd(int fd, short events, double deadline)
{
    for (;;) {
        struct pollfd p = {.fd = fd, .events = events};
        int ms = left_ms(deadline);
        if (ms == 0)
            return -1;
        int n = poll(&p, 1, ms);
        if (n > 0)
            return 0;
        if (n == 0)
            return -1;
        if (errno != EINTR)
            return -1;
    }
}

/* send_all - 0, or -1 with errno (ETIMEDOUT at the deadline) */
static int send_all(int fd, const unsigned char *p, size_t n, double deadline)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (wait_fd(fd, POLLOUT, deadline) < 0) {
                errno = ETIMEDOUT;
                return -1;
            }
            continue;
        }
        if (w == 0)
            errno = EPIPE;
        return -1;
    }
    return 0;
}

/* read_reply - up to the NUL (or EOF) into r, NUL-terminated; its
 * length, or -1 with why */
static ssize_t read_reply(int fd, char *r, size_t rsz, double deadline, const char **why)
{
    size_t n = 0;
    for (;;) {
        if (n == rsz - 1) {
            *why = "reply too long";
            return -1;
        }
        ssize_t got = recv(fd, r + n, rsz - 1 - n, 0);
        if (got > 0) {
            char *nul = memchr(r + n, '\0', (size_t)got);
            n += (size_t)got;
            if (nul) {
                n = (size_t)(nul - r);
                break;
            }
            continue;
        }
        if (got == 0)
            break; /* EOF: an unterminated reply is still read */
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (wait_fd(fd, POLLIN, deadline) < 0) {
                *why = "timed out waiting for the reply";
                return -1;
            }
            continue;
        }
        *why = "connection error while reading the reply";
        return -1;
    }
    r[n] = '\0';
    return (ssize_t)n;
}

/* printable - copy untrusted reply text for a reason: controls and
 * non-ASCII become '?', truncated */
static void printable(char *out, size_t outsz, const char *in, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k + 1 < outsz; i++) {
        unsigned char c = (unsigned char)in[i];
        out[k++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    out[k] = '\0';
}

/* parse_reply - the verdict of one reply line (r is NUL-terminated, n its length) */
static enum clamd_verdict parse_reply(char *r, size_t n, char *out, size_t outsz)
{
    static const char prefix[] = "stream: ", found[] = " FOUND", error[] = "ERROR";
    const size_t pl = sizeof prefix - 1, fl = sizeof found - 1, el = sizeof error - 1;
    char shown[160];

    while (n && (r[n - 1] == '\n' || r[n - 1] == '\r' || r[n - 1] == ' '))
        r[--n] = '\0';
    printable(shown, sizeof shown, r, n);
    if (n >= el && memcmp(r + n - el, error, el) == 0) {
        snprintf(out, outsz, "clamd: %s", shown);
        return CLAMD_ERROR;
    }
    if (n < pl || memcmp(r, prefix, pl) != 0) {
        snprintf(out, outsz, "clamd: unexpected reply \"%s\"", shown);
        return CLAMD_ERROR;
    }
    char *v = r + pl;
    size_t vl = n - pl;
    if (vl == 2 && memcmp(v, "OK", 2) == 0)
        return CLAMD_CLEAN;
    if (vl > fl && memcmp(v + vl - fl, found, fl) == 0) {
        vl -= fl;
        /* ExtendedDetectionInfo: NAME(MD5:SIZE) */
        if (v[vl - 1] == ')') {
            char *open = memchr(v, '(', vl);
            if (open)
                vl = (size_t)(open - v);
        }
        bool ok = vl > 0 && vl <= CLAMD_MAX_NAME;
        for (size_t i = 0; ok && i < vl; i++)
            ok = v[i] > 0x20 && v[i] < 0x7f;
        if (ok) {
            snprintf(out, outsz, "%.*s", (int)vl, v);
            return CLAMD_FOUND;
        }
    }
    snprintf(out, outsz, "clamd: unexpected reply \"%s\"", shown);
    return CLAMD_ERROR;
}

/* connect_to - a connected non-blocking socket, or -1 with why */
static int connect_to(const struct clamd_target *t, double deadline, const char **why)
{
    int fd = socket(t->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *why = "cannot create a socket";
        return -1;
    }
    if (t->sa.ss_family != AF_UNIX) {
        int one = 1; /* each frame is one write: no Nagle/delayed-ACK stall */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    if (connect(fd, (const struct sockaddr *)&t->sa, t->salen) == 0)
        return fd;
    if (errno != EINPROGRESS && errno != EAGAIN) {
        *why =
            errno == ENOENT || errno == ECONNREFUSED ? "not running (connection refused)" : "cannot connect";
        close(fd);
        return -1;
    }
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    if (wait_fd(fd, POLLOUT, deadline) < 0) {
        *why = "timed out connecting";
        close(fd);
        return -1;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr) {
        *why = soerr == ECONNREFUSED ? "not running (connection refused)" : "cannot connect";
        close(fd);
        return -1;
    }
    return fd;
}

/* stream - the command, the chunks and the terminator; 0, or -1 with errno */
static int stream(int fd, const unsigned char *p, size_t len, double deadline)
{
    static const unsigned char cmd[] = "zINSTREAM"; /* sent with its NUL */
    unsigned char *frame;
    int rc = 0;

    if (send_all(fd, cmd, sizeof cmd, deadline) < 0)
        return -1;
    frame = xmalloc(4 + CLAMD_CHUNK + 4);
    for (size_t off = 0;;) {
        size_t n = len - off < CLAMD_CHUNK ? len - off : CLAMD_CHUNK, fl = 0;
        if (n) {
            frame[0] = (unsigned char)(n >> 24);
            frame[1] = (unsigned char)(n >> 16);
            frame[2] = (unsigned char)(n >> 8);
            frame[3] = (unsigned char)n;
            memcpy(frame + 4, p + off, n);
            fl = 4 + n;
            off += n;
        }
        bool last = off == len;
        if (last) { /* the terminator travels with the last chunk */
            memset(frame + fl, 0, 4);
            fl += 4;
        }
        if (send_all(fd, frame, fl, deadline) < 0) {
            rc = -1;
            break;
        }
        if (last)
            break;
    }
    int saved = errno;
    free(frame);
    errno = saved;
    return rc;
}

enum clamd_verdict clamd_scan(const struct clamd_target *t, const void *data, size_t len, unsigned timeout_ms,
                              uint64_t stream_max, char *out, size_t outsz)
{
    const char *why = NULL;
    char reply[CLAMD_MAX_REPLY];
    double deadline = core_monotonic() + timeout_ms / 1000.0;
    int fd;

    out[0] = '\0';
    if (len > stream_max) {
        snprintf(out, outsz, "clamd: %zu bytes, over clamd_stream_max (%llu)", len,
                 (unsigned long long)stream_max);
        return CLAMD_ERROR;
    }
    if ((fd = connect_to(t, deadline, &why)) < 0)
        goto fail;
    /* when sending fails, clamd may have said why before it closed */
    bool send_failed = stream(fd, data, len, deadline) < 0;
    int send_errno = errno;
    ssize_t rl = read_reply(fd, reply, sizeof reply, deadline, &why);
    close(fd);
    if (rl > 0) {
        enum clamd_verdict v = parse_reply(reply, (size_t)rl, out, outsz);
        /* a verdict on a stream clamd did not get whole is not one */
        if (!send_failed || v == CLAMD_ERROR)
            return v;
    }
    if (send_failed)
        why = send_errno == ETIMEDOUT ? "timed out sending" : "connection closed while sending";
    else if (rl == 0)
        why = "connection closed without a reply";
fail:
    snprintf(out, outsz, "clamd %s: %s", t->name, why ? why : "failed");
    return CLAMD_ERROR;
}
