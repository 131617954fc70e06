/*
 * notify_dsn.c - delivery status notifications (RFC 3464).
 *
 * Owns the text of the bounce / delay message Moat sends back to a sender:
 *   notify_dsn_build   the whole RFC 5322 message, appended to a struct buf
 *
 * Shape: multipart/report; report-type=delivery-status with three parts:
 *   1. text/plain; charset=utf-8, base64: English, then Japanese
 *   2. message/delivery-status: per-message fields (Reporting-MTA,
 *      X-Moat-Queue-ID, Original-Envelope-Id, Arrival-Date) and one block per
 *      recipient (Final-Recipient, Original-Recipient, Action, Status,
 *      Remote-MTA, Diagnostic-Code, Last-Attempt-Date)
 *   3. text/rfc822-headers: the original header block only (RET=HDRS
 *      behaviour), at most NOTIFY_DSN_HEADERS_MAX bytes, cut at a line end
 *
 * Limits: each header-like field value is cut to NOTIFY_FIELD_MAX bytes, so
 * no line exceeds RFC 5322's 998. Returned header lines are cut to 998.
 *
 * Security: every input is untrusted (addresses and reply text come from
 * SMTP peers). Anything placed in a header or a delivery-status field has
 * CR, LF, other controls and DEL removed, and non-ASCII replaced by '?'
 * where the field must be ASCII; the returned headers are normalised to
 * CRLF line ends (bare CR and NUL dropped) so the DSN itself can be relayed
 * without SMTP smuggling. The MIME boundary is random and checked against
 * the content. A null sender never gets a DSN (a bounce is not bounced).
 *
 * The field helpers (notify_sanitize, notify_format_date, base64, the
 * header block, random hex) are shared with the templates (notify_int.h).
 */
#include "core/core.h"

#include <sys/random.h>
#include <time.h>

#include "notify/notify.h"
#include "notify/notify_int.h"

#define NOTIFY_DSN_HEADERS_MAX (64 * 1024) /* returned original headers */

/* notify_sanitize - copy a field value: controls (CR, LF, ...) and DEL dropped,
 * tabs become spaces; non-ASCII kept only when allow_8bit, else '?';
 * cut to outsz-1 bytes. Returns out. */
char *notify_sanitize(const char *in, bool allow_8bit, char *out, size_t outsz)
{
    size_t o = 0;
    if (outsz == 0)
        return out;
    for (const unsigned char *p = (const unsigned char *)(in ? in : ""); *p && o < outsz - 1; p++) {
        unsigned char c = *p;
        if (c == '\t')
            c = ' ';
        if (c < 0x20 || c == 0x7f)
            continue;
        if (c >= 0x80 && !allow_8bit)
            c = '?';
        out[o++] = (char)c;
    }
    /* do not leave a partial UTF-8 sequence at the cut */
    if (allow_8bit && o > 0 && ((unsigned char)out[o - 1] & 0x80)) {
        size_t k = o;
        while (k > 0 && ((unsigned char)out[k - 1] & 0xC0) == 0x80)
            k--;
        if (k > 0 && ((unsigned char)out[k - 1] & 0xC0) == 0xC0) {
            unsigned char lead = (unsigned char)out[k - 1];
            size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
            if (o - (k - 1) < need)
                o = k - 1;
        }
    }
    out[o] = '\0';
    return out;
}

/* notify_sanitize_addr - an address for a header: as sanitize, and without the
 * characters that would end or break an angle-addr ("<>", quotes, commas,
 * colons, backslashes and spaces are kept out so the field stays one
 * mailbox and never becomes a group) */
char *notify_sanitize_addr(const char *in, char *out, size_t outsz)
{
    char tmp[NOTIFY_ADDR_MAX];
    notify_sanitize(in, true, tmp, sizeof tmp);
    size_t o = 0;
    for (const char *p = tmp; *p && o < outsz - 1; p++) {
        if (*p == '<' || *p == '>' || *p == ' ' || *p == ',' || *p == ';' || *p == '(' || *p == ')' || *p == ':' ||
            *p == '"' || *p == '\\')
            continue;
        out[o++] = *p;
    }
    out[o] = '\0';
    return out;
}

/* notify_format_date - RFC 5322 date-time in UTC (locale independent) */
void notify_format_date(double t, char *out, size_t outsz)
{
    static const char *const wd[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const mo[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    time_t s = t > 0 ? (time_t)t : 0;
    if (!gmtime_r(&s, &tm)) {
        core_strlcpy(out, "Thu, 01 Jan 1970 00:00:00 +0000", outsz);
        return;
    }
    snprintf(out, outsz, "%s, %02d %s %04d %02d:%02d:%02d +0000", wd[tm.tm_wday % 7], tm.tm_mday,
             mo[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* status_valid - "c.sss.ddd" (RFC 3463), class 2, 4 or 5 */
static bool status_valid(const char *s)
{
    if (!s || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
        return false;
    const char *p = s + 2;
    for (int part = 0; part < 2; part++) {
        size_t n = 0;
        while (p[n] >= '0' && p[n] <= '9')
            n++;
        if (n == 0 || n > 3)
            return false;
        p += n;
        if (part == 0) {
            if (*p != '.')
                return false;
            p++;
        }
    }
    return *p == '\0';
}

/* diagnostic_has_type - the text already starts with "type;" (e.g. "smtp;") */
static bool diagnostic_has_type(const char *s)
{
    size_t n = 0;
    while ((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z') || (s[n] >= '0' && s[n] <= '9') ||
           (n > 0 && s[n] == '-'))
        n++;
    return n > 0 && n <= 32 && s[n] == ';';
}

/* xtext_decode - RFC 3461 xtext ("+2B" -> '+') into out; bad escapes kept */
static void xtext_decode(const char *in, char *out, size_t outsz)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const char *p = in; *p && o < outsz - 1; p++) {
        const char *h1, *h2;
        if (*p == '+' && p[1] && p[2] && (h1 = strchr(hex, p[1])) && (h2 = strchr(hex, p[2]))) {
            out[o++] = (char)(((h1 - hex) << 4) | (h2 - hex));
            p += 2;
        } else {
            out[o++] = *p;
        }
    }
    out[o] = '\0';
}

/* notify_append_base64 - base64 of data, lines of 76 characters, CRLF-ended */
int notify_append_base64(struct buf *out, const char *data, size_t len)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char line[80];
    size_t n = 0;
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned char)data[i] << 16;
        size_t rem = len - i;
        if (rem > 1)
            v |= (unsigned char)data[i + 1] << 8;
        if (rem > 2)
            v |= (unsigned char)data[i + 2];
        line[n++] = tbl[(v >> 18) & 63];
        line[n++] = tbl[(v >> 12) & 63];
        line[n++] = rem > 1 ? tbl[(v >> 6) & 63] : '=';
        line[n++] = rem > 2 ? tbl[v & 63] : '=';
        if (n == 76) {
            line[n++] = '\r';
            line[n++] = '\n';
            if (buf_append(out, line, n) < 0)
                return -1;
            n = 0;
        }
    }
    if (n) {
        line[n++] = '\r';
        line[n++] = '\n';
        if (buf_append(out, line, n) < 0)
            return -1;
    }
    return 0;
}

/* notify_append_header_block - the original's header block (up to the first empty
 * line), normalised to CRLF, lines cut to 998, at most max bytes, cut at a
 * line end. Always ends with CRLF when anything was written. */
int notify_append_header_block(struct buf *out, const char *msg, size_t len, size_t max, bool *eightbit)
{
    size_t written = 0, i = 0;
    char line[NOTIFY_LINE_MAX + 2];
    while (i < len) {
        size_t n = 0;
        bool saw_lf = false;
        for (; i < len; i++) {
            unsigned char ch = (unsigned char)msg[i];
            if (ch == '\n') {
                i++;
                saw_lf = true;
                break;
            }
            if (ch == '\r' || ch == '\0')
                continue;
            if (ch >= 0x80)
                *eightbit = true;
            if (n < NOTIFY_LINE_MAX)
                line[n++] = (char)ch;
        }
        if (n == 0 && saw_lf)
            break; /* the empty line: end of the header block */
        if (n == 0)
            break;
        if (max - written < n + 2)
            break;
        line[n++] = '\r';
        line[n++] = '\n';
        if (buf_append(out, line, n) < 0)
            return -1;
        written += n;
    }
    return 0;
}

/* human_text - the English and Japanese explanation (UTF-8) */
static int human_text(const struct dsn_info *info, const char *mta, bool any_failed, struct buf *t)
{
    char addr[NOTIFY_ADDR_MAX], diag[NOTIFY_FIELD_MAX];
    int rc = 0;
    rc |= buf_printf(t, "This is the mail system at host %s.\r\n\r\n", mta);
    if (any_failed)
        rc |= buf_append_str(t, "I'm sorry to have to inform you that your message could not be\r\n"
                                "delivered to one or more recipients. The details are below.\r\n\r\n");
    else
        rc |= buf_append_str(t, "This is a warning only: your message has not yet been delivered to\r\n"
                                "one or more recipients. The mail system will keep trying; you do\r\n"
                                "not need to send it again.\r\n\r\n");
    for (size_t i = 0; i < info->nrcpts; i++) {
        const struct dsn_recipient *r = &info->rcpts[i];
        notify_sanitize(r->addr, true, addr, sizeof addr);
        notify_sanitize(r->diagnostic ? r->diagnostic : "", true, diag, sizeof diag);
        rc |= buf_printf(t, "<%s>: %s%s%s\r\n", addr, r->failed ? "delivery failed" : "delivery delayed",
                         diag[0] ? ": " : "", diag);
    }
    rc |= buf_append_str(t, "\r\n");
    /* Japanese */
    rc |= buf_printf(t, "こちらは %s のメールシステムです。\r\n\r\n", mta);
    if (any_failed)
        rc |= buf_append_str(t, "申し訳ありませんが、お送りいただいたメッセージを次の宛先に配信できません\r\n"
                                "でした。詳細は以下のとおりです。\r\n\r\n");
    else
        rc |= buf_append_str(
            t, "これは警告のみです。お送りいただいたメッセージは次の宛先にまだ配信されて\r\n"
               "いません。メールシステムは配信を引き続き試みますので、再送の必要はありません。\r\n\r\n");
    for (size_t i = 0; i < info->nrcpts; i++) {
        const struct dsn_recipient *r = &info->rcpts[i];
        notify_sanitize(r->addr, true, addr, sizeof addr);
        notify_sanitize(r->diagnostic ? r->diagnostic : "", true, diag, sizeof diag);
        rc |= buf_printf(t, "<%s>: %s%s%s\r\n", addr, r->failed ? "配信失敗" : "配信遅延",
                         diag[0] ? ": " : "", diag);
    }
    return rc ? -1 : 0;
}

/* status_block - the message/delivery-status body */
static int status_block(const struct dsn_info *info, const char *mta, struct buf *s)
{
    char v[NOTIFY_FIELD_MAX], v2[NOTIFY_FIELD_MAX], date[64];
    int rc = 0;
    rc |= buf_printf(s, "Reporting-MTA: dns; %s\r\n", mta);
    rc |= buf_printf(s, "X-Moat-Queue-ID: %s\r\n", notify_sanitize(info->qid, false, v, sizeof v));
    if (info->envid && info->envid[0]) {
        xtext_decode(info->envid, v2, sizeof v2);
        rc |= buf_printf(s, "Original-Envelope-Id: %s\r\n", notify_sanitize(v2, false, v, sizeof v));
    }
    notify_format_date(info->arrival, date, sizeof date);
    rc |= buf_printf(s, "Arrival-Date: %s\r\n", date);
    for (size_t i = 0; i < info->nrcpts; i++) {
        const struct dsn_recipient *r = &info->rcpts[i];
        rc |= buf_append_str(s, "\r\n");
        rc |= buf_printf(s, "Final-Recipient: rfc822; %s\r\n", notify_sanitize(r->addr, false, v, sizeof v));
        if (r->orcpt && r->orcpt[0]) {
            const char *semi = strchr(r->orcpt, ';');
            if (semi && diagnostic_has_type(r->orcpt)) {
                char type[40];
                size_t tl = (size_t)(semi - r->orcpt);
                memcpy(type, r->orcpt, tl);
                type[tl] = '\0';
                const char *val = semi + 1;
                while (*val == ' ')
                    val++;
                xtext_decode(val, v2, sizeof v2);
                rc |= buf_printf(s, "Original-Recipient: %s; %s\r\n", type, notify_sanitize(v2, false, v, sizeof v));
            } else {
                rc |= buf_printf(s, "Original-Recipient: rfc822; %s\r\n",
                                 notify_sanitize(r->orcpt, false, v, sizeof v));
            }
        }
        rc |= buf_printf(s, "Action: %s\r\n", r->failed ? "failed" : "delayed");
        rc |= buf_printf(s, "Status: %s\r\n",
                         status_valid(r->status) ? r->status
                         : r->failed             ? "5.0.0"
                                                 : "4.0.0");
        if (r->remote_mta && r->remote_mta[0])
            rc |= buf_printf(s, "Remote-MTA: dns; %s\r\n", notify_sanitize(r->remote_mta, false, v, sizeof v));
        if (r->diagnostic && r->diagnostic[0]) {
            notify_sanitize(r->diagnostic, false, v, sizeof v);
            rc |= buf_printf(s, "Diagnostic-Code: %s%s\r\n", diagnostic_has_type(v) ? "" : "X-Moat; ", v);
        }
        if (r->last_attempt > 0) {
            notify_format_date(r->last_attempt, date, sizeof date);
            rc |= buf_printf(s, "Last-Attempt-Date: %s\r\n", date);
        }
    }
    return rc ? -1 : 0;
}

/* notify_random_hex - n random bytes as hex into out (2n+1) */
void notify_random_hex(char *out, size_t nbytes)
{
    unsigned char r[16];
    if (nbytes > sizeof r)
        nbytes = sizeof r;
    if (getrandom(r, nbytes, 0) != (ssize_t)nbytes) {
        double t = core_monotonic();
        uint64_t x = (uint64_t)(t * 1e9) ^ ((uint64_t)getpid() << 32);
        for (size_t i = 0; i < nbytes; i++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            r[i] = (unsigned char)(x >> 56);
        }
    }
    for (size_t i = 0; i < nbytes; i++)
        snprintf(out + 2 * i, 3, "%02x", r[i]);
}

int notify_dsn_build(const struct dsn_info *info, struct buf *out)
{
    char mta[256], qid[64], sender[NOTIFY_ADDR_MAX], date[64], boundary[80], rnd[33];
    struct buf text, status, hdrs;
    size_t start = out->len;
    bool any_failed = false, eightbit = false;
    int rc = -1;

    if (!info || !info->sender || !info->sender[0])
        return -1; /* never send a DSN to the null sender */
    notify_sanitize_addr(info->sender, sender, sizeof sender);
    if (!sender[0])
        return -1;
    notify_sanitize(info->reporting_mta && info->reporting_mta[0] ? info->reporting_mta : "localhost", false, mta,
             sizeof mta);
    for (char *p = mta; *p; p++)
        if (*p == ' ' || *p == '<' || *p == '>' || *p == '"' || *p == '@' || *p == '(' || *p == ')')
            *p = '-';
    notify_sanitize(info->qid ? info->qid : "", false, qid, sizeof qid);
    for (size_t i = 0; i < info->nrcpts; i++)
        any_failed |= info->rcpts[i].failed;

    buf_init(&text, 4 * 1024 * 1024);
    buf_init(&status, 4 * 1024 * 1024);
    buf_init(&hdrs, NOTIFY_DSN_HEADERS_MAX + 16);
    if (human_text(info, mta, any_failed, &text) < 0 || status_block(info, mta, &status) < 0)
        goto done;
    if (info->original && info->original_len &&
        notify_append_header_block(&hdrs, info->original, info->original_len, NOTIFY_DSN_HEADERS_MAX, &eightbit) < 0)
        goto done;

    /* a boundary that does not occur in the content */
    for (int tries = 0;; tries++) {
        notify_random_hex(rnd, 12);
        snprintf(boundary, sizeof boundary, "=_moat_dsn_%s", rnd);
        size_t bl = strlen(boundary);
        bool clash = (hdrs.len && memmem(hdrs.ptr, hdrs.len, boundary, bl)) ||
                     (status.len && memmem(status.ptr, status.len, boundary, bl));
        if (!clash)
            break;
        if (tries > 8)
            goto done;
    }

    notify_format_date(core_now(), date, sizeof date);
    notify_random_hex(rnd, 8);
    int e = 0;
    e |= buf_printf(out, "From: \"Mail Delivery System\" <MAILER-DAEMON@%s>\r\n", mta);
    e |= buf_printf(out, "To: <%s>\r\n", sender);
    e |=
        buf_printf(out, "Subject: %s\r\n",
                   any_failed ? "Undelivered Mail Returned to Sender" : "Delayed Mail (still being retried)");
    e |= buf_printf(out, "Date: %s\r\n", date);
    e |= buf_printf(out, "Message-ID: <dsn.%s.%s@%s>\r\n", qid[0] ? qid : "noqid", rnd, mta);
    e |= buf_append_str(out, "Auto-Submitted: auto-replied\r\n");
    e |= buf_append_str(out, "MIME-Version: 1.0\r\n");
    e |= buf_printf(out,
                    "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"%s\"\r\n",
                    boundary);
    e |= buf_printf(out, "Content-Transfer-Encoding: %s\r\n", eightbit ? "8bit" : "7bit");
    e |= buf_append_str(out, "\r\nThis is a MIME-encapsulated message.\r\n\r\n");
    /* 1. human-readable */
    e |= buf_printf(out, "--%s\r\n", boundary);
    e |= buf_append_str(out, "Content-Description: Notification\r\n"
                             "Content-Type: text/plain; charset=utf-8\r\n"
                             "Content-Transfer-Encoding: base64\r\n\r\n");
    if (e || notify_append_base64(out, text.ptr ? text.ptr : "", text.len) < 0)
        goto done;
    /* 2. machine-readable */
    e |= buf_printf(out, "\r\n--%s\r\n", boundary);
    e |= buf_append_str(out, "Content-Description: Delivery report\r\n"
                             "Content-Type: message/delivery-status\r\n\r\n");
    e |= buf_append(out, status.ptr ? status.ptr : "", status.len);
    /* 3. the original headers */
    e |= buf_printf(out, "\r\n--%s\r\n", boundary);
    e |= buf_append_str(out, "Content-Description: Undelivered Message Headers\r\n"
                             "Content-Type: text/rfc822-headers\r\n");
    if (eightbit)
        e |= buf_append_str(out, "Content-Transfer-Encoding: 8bit\r\n");
    e |= buf_append_str(out, "\r\n");
    e |= buf_append(out, hdrs.ptr ? hdrs.ptr : "", hdrs.len);
    e |= buf_printf(out, "\r\n--%s--\r\n", boundary);
    if (e)
        goto done;
    rc = 0;
done:
    if (rc < 0) {
        out->len = start;
        if (out->ptr)
            out->ptr[start] = '\0';
    }
    buf_free(&text);
    buf_free(&status);
    buf_free(&hdrs);
    return rc;
}
