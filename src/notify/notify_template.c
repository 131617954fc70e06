/*
 * notify_template.c - notifications made from templates (the rule action
 * "send a notification", PRODUCT.md §4).
 *
 *   notify_template_load     a tenant's own template, else the shipped one
 *                            (data/templates/<stem>.<lang>.txt)
 *   notify_template_parse    "Subject: ..." + blank line + body
 *   notify_render_text       subject and body with the variables replaced
 *   notify_render            the whole RFC 5322 message
 *   notify_prepare           render + the envelope for queuing
 *   notify_is_generated      the loop guard for automatic mail
 *
 * Templates are data an administrator edits (later in the console), so the
 * text is trusted only as text: variables are replaced by plain string
 * substitution, nothing is evaluated. Variable values come from mail
 * (subject, sender, attachment names) and are hostile: invalid UTF-8
 * becomes U+FFFD, values are cut to NOTIFY_VALUE_MAX at a character, and in
 * the subject every control character (CR, LF, ...) is removed before the
 * rendered subject is RFC 2047-encoded (so no header can be injected). The
 * body is UTF-8 in base64, so no line of it can end the message or smuggle
 * SMTP. Addresses in To are reduced to a bare mailbox (notify_sanitize_addr).
 *
 * Loops: a notification is queued directly (never through SMTP and the
 * scan), with the null sender and the "never bounce" flag (is_dsn), and it
 * carries Auto-Submitted: auto-generated and X-Moat-Notification so that a
 * copy coming back in through SMTP is recognised (notify_is_generated) and
 * never notified about again.
 */
#include "core/core.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "notify/notify.h"

#include <jansson.h>
#include "notify/notify_int.h"

#ifndef MOAT_DATADIR
#define MOAT_DATADIR "data"
#endif

#define NOTIFY_HEADERS_MAX (64 * 1024) /* attached original headers */
#define NOTIFY_BODY_MAX (1024 * 1024)  /* a rendered body */
#define NOTIFY_WORD_RAW 45             /* bytes per RFC 2047 B word: 60 base64 chars, 72 in all */

static const char *const var_names[NOTIFY_NVARS] = {
    "SENDER", "RECIPIENTS",    "SUBJECT",     "RULE", "DETECTIONS", "DATE",   "QID",
    "TENANT", "QUARANTINE_ID", "ATTACHMENTS", "SIZE", "SIZE_LIMIT", "REASON",
    "DOMAIN", "MX_HOST", "TXT_RECORD", "COMPANY_ID", "LINK", "EXPIRES", "EMAIL",
    "USER_NAME", "CODE", "EUC_URL",
};

const struct notify_default notify_defaults[] = {
    {"Virus detection", "virus-detection"},
    {"Attachment deleted", "attachment-deleted"},
    {"Non-delivery report", "non-delivery-report"},
    {"Message size exceeded", "message-size-exceeded"},
    {"Security settings violation", "security-settings-violation"},
    {"Rule triggered", "rule-triggered"},
    {NULL, NULL},
};

int notify_var_find(const char *name)
{
    for (int i = 0; i < NOTIFY_NVARS; i++)
        if (strcasecmp(name, var_names[i]) == 0)
            return i;
    return -1;
}

const char *notify_var_name(enum notify_var v)
{
    return (unsigned)v < NOTIFY_NVARS ? var_names[v] : "";
}

void notify_template_free(struct notify_template *t)
{
    if (!t)
        return;
    free(t->name);
    free(t->lang);
    free(t->subject);
    free(t->body);
    memset(t, 0, sizeof *t);
}

const char *notify_template_dir(void)
{
    const char *d = getenv("MOAT_TEMPLATE_DIR");
    return d && *d ? d : MOAT_DATADIR "/templates";
}

/* ---------------------------------------------------------------- loading */
int notify_template_parse(const char *text, size_t len, struct notify_template *out, char *err, size_t errsz)
{
    size_t i = 0;
    out->subject = NULL; /* name and lang are the caller's */
    out->body = NULL;
    if (len > NOTIFY_TEMPLATE_MAX || memchr(text, '\0', len)) {
        snprintf(err, errsz, "template too large or not text");
        return -1;
    }
    while (i < len && text[i] == '#') { /* comment lines */
        const char *nl = memchr(text + i, '\n', len - i);
        i = nl ? (size_t)(nl - text) + 1 : len;
    }
    if (len - i < 8 || strncasecmp(text + i, "Subject:", 8) != 0) {
        snprintf(err, errsz, "template must start with a \"Subject:\" line");
        return -1;
    }
    i += 8;
    while (i < len && text[i] == ' ')
        i++;
    const char *nl = memchr(text + i, '\n', len - i);
    size_t send = nl ? (size_t)(nl - text) : len;
    size_t slen = send - i;
    if (slen && text[i + slen - 1] == '\r')
        slen--;
    out->subject = xstrndup(text + i, slen);
    i = nl ? send + 1 : len;
    /* the blank line between subject and body */
    if (i < len && text[i] == '\r')
        i++;
    if (i < len && text[i] == '\n')
        i++;
    out->body = xstrndup(text + i, len - i);
    return 0;
}

/* find_default - the shipped template matching name (display name or stem) */
static const struct notify_default *find_default(const char *name)
{
    for (const struct notify_default *d = notify_defaults; d->name; d++)
        if (strcasecmp(d->name, name) == 0 || strcasecmp(d->stem, name) == 0)
            return d;
    return NULL;
}

static bool lang_valid(const char *lang)
{
    return lang && (strcmp(lang, "ja") == 0 || strcmp(lang, "en") == 0);
}

int notify_template_load(const char *name, const char *lang, const struct notify_template *tenant,
                         size_t ntenant, const char *dir, struct notify_template *out, char *err,
                         size_t errsz)
{
    memset(out, 0, sizeof *out);
    if (!name || !name[0]) {
        snprintf(err, errsz, "no template name");
        return -1;
    }
    if (!lang_valid(lang)) {
        snprintf(err, errsz, "language must be ja or en");
        return -1;
    }
    for (size_t i = 0; i < ntenant; i++) {
        const struct notify_template *t = &tenant[i];
        if (t->name && t->lang && t->subject && t->body && strcasecmp(t->name, name) == 0 &&
            strcmp(t->lang, lang) == 0) {
            out->name = xstrdup(t->name);
            out->lang = xstrdup(t->lang);
            out->subject = xstrdup(t->subject);
            out->body = xstrdup(t->body);
            return 0;
        }
    }
    const struct notify_default *d = find_default(name);
    for (size_t i = 0; !d && i < ntenant; i++) {
        /* the tenant's own template exists only in the other language: use it */
        const struct notify_template *t = &tenant[i];
        if (t->name && t->lang && t->subject && t->body && strcasecmp(t->name, name) == 0) {
            out->name = xstrdup(t->name);
            out->lang = xstrdup(t->lang);
            out->subject = xstrdup(t->subject);
            out->body = xstrdup(t->body);
            return 0;
        }
    }
    if (!d) {
        char safe[128];
        snprintf(err, errsz, "no template named \"%s\"", log_escape(name, strlen(name), safe, sizeof safe));
        return -1;
    }
    char path[1200];
    snprintf(path, sizeof path, "%s/%s.%s.txt", dir ? dir : notify_template_dir(), d->stem, lang);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) < 0 || sb.st_size > NOTIFY_TEMPLATE_MAX) {
        snprintf(err, errsz, "%s: %s", path, fd < 0 ? strerror(errno) : "unreadable or too large");
        if (fd >= 0)
            close(fd);
        return -1;
    }
    char *text = xmalloc((size_t)sb.st_size + 1);
    ssize_t n = read(fd, text, (size_t)sb.st_size);
    close(fd);
    int rc = -1;
    if (n != (ssize_t)sb.st_size) {
        snprintf(err, errsz, "%s: short read", path);
    } else if (notify_template_parse(text, (size_t)n, out, err, errsz) == 0) {
        out->name = xstrdup(d->name);
        out->lang = xstrdup(lang);
        rc = 0;
    }
    free(text);
    if (rc < 0)
        notify_template_free(out);
    return rc;
}

/* ---------------------------------------------------------------- substitution */
/* append_value - a variable's value on one line: valid UTF-8 (else
 * U+FFFD), at most NOTIFY_VALUE_MAX bytes cut at a character; LF and tab
 * become spaces, other controls are dropped (a value cannot start a line
 * of its own in the body nor a header field in the subject) */
static int append_value(struct buf *out, const char *v)
{
    size_t len = v ? strlen(v) : 0, used = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = core_utf8_next(v, len, i, &cp);
        i += n;
        if (cp == '\t')
            cp = ' ';
        if (cp == '\n')
            cp = ' ';
        if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0) || cp == 0x2028 || cp == 0x2029)
            continue;
        size_t cl = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
        if (NOTIFY_VALUE_MAX - used < cl)
            break;
        if (buf_append_utf8(out, cp) < 0)
            return -1;
        used += cl;
    }
    return 0;
}

/* substitute - tpl with %VARS% replaced into out */
static int substitute(const char *tpl, const struct notify_vars *vars, struct buf *out)
{
    for (const char *p = tpl; *p;) {
        if (*p != '%') {
            const char *q = strchr(p, '%');
            size_t n = q ? (size_t)(q - p) : strlen(p);
            if (buf_append(out, p, n) < 0)
                return -1;
            p += n;
            continue;
        }
        if (p[1] == '%') {
            if (buf_append(out, "%", 1) < 0)
                return -1;
            p += 2;
            continue;
        }
        const char *end = strchr(p + 1, '%');
        char name[32];
        size_t nl = end ? (size_t)(end - p - 1) : 0;
        int var = -1;
        if (end && nl > 0 && nl < sizeof name) {
            memcpy(name, p + 1, nl);
            name[nl] = '\0';
            var = notify_var_find(name);
        }
        if (var < 0) { /* not a variable: keep the percent sign */
            if (buf_append(out, "%", 1) < 0)
                return -1;
            p++;
            continue;
        }
        if (append_value(out, vars ? vars->v[var] : NULL) < 0)
            return -1;
        p = end + 1;
    }
    return 0;
}

/* ---------------------------------------------------------------- header encoding */
static bool all_ascii(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80)
            return false;
    return true;
}

/* append_encoded_words - s (UTF-8) as RFC 2047 B words of at most
 * NOTIFY_WORD_RAW bytes each, never splitting a character; words after the
 * first on folded lines ("\r\n "). */
static int append_encoded_words(struct buf *out, const char *s)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t len = strlen(s), i = 0;
    bool first = true;
    while (i < len) {
        size_t n = 0;
        while (i + n < len) {
            uint32_t cp;
            size_t cl = core_utf8_next(s, len, i + n, &cp);
            if (n + cl > NOTIFY_WORD_RAW)
                break;
            n += cl;
        }
        char word[100];
        size_t w = 0;
        for (size_t k = 0; k < n; k += 3) {
            const unsigned char *d = (const unsigned char *)s + i + k;
            size_t rem = n - k;
            unsigned v = (unsigned)d[0] << 16 | (rem > 1 ? (unsigned)d[1] << 8 : 0) | (rem > 2 ? d[2] : 0);
            word[w++] = tbl[(v >> 18) & 63];
            word[w++] = tbl[(v >> 12) & 63];
            word[w++] = rem > 1 ? tbl[(v >> 6) & 63] : '=';
            word[w++] = rem > 2 ? tbl[v & 63] : '=';
        }
        if (buf_printf(out, "%s=?UTF-8?B?%.*s?=", first ? "" : "\r\n ", (int)w, word) < 0)
            return -1;
        first = false;
        i += n;
    }
    return 0;
}

/* append_phrase - a display name: quoted-string when ASCII, else RFC 2047 */
static int append_phrase(struct buf *out, const char *s)
{
    if (!all_ascii(s))
        return append_encoded_words(out, s);
    if (buf_append(out, "\"", 1) < 0)
        return -1;
    for (; *s; s++) {
        if ((*s == '"' || *s == '\\') && buf_append(out, "\\", 1) < 0)
            return -1;
        if (buf_append(out, s, 1) < 0)
            return -1;
    }
    return buf_append(out, "\"", 1);
}

/* append_body_crlf - text with every line end made CRLF (bare CR dropped) */
static int append_body_crlf(struct buf *out, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\r')
            continue;
        if (s[i] == '\n') {
            if (buf_append(out, "\r\n", 2) < 0)
                return -1;
        } else if (buf_append(out, s + i, 1) < 0) {
            return -1;
        }
    }
    if (len && s[len - 1] != '\n')
        return buf_append(out, "\r\n", 2);
    return 0;
}

/* ---------------------------------------------------------------- rendering */
int notify_render_text(const struct notify_template *tpl, const struct notify_vars *vars, char *subject,
                       size_t subjectsz, struct buf *body)
{
    struct buf subj;
    if (!tpl || !tpl->subject || !tpl->body)
        return -1;
    buf_init(&subj, 64 * 1024);
    int rc = substitute(tpl->subject, vars, &subj);
    notify_sanitize(rc == 0 ? buf_cstr(&subj) : "", true, subject, subjectsz);
    buf_free(&subj);
    if (rc < 0 || substitute(tpl->body, vars, body) < 0)
        return -1;
    return 0;
}

int notify_render(const struct notify_message *m, struct buf *out)
{
    char host[256], qid[64], addr[NOTIFY_ADDR_MAX], date[64], rnd[33], boundary[64], stem[64];
    char newqid[CORE_QID_LEN + 1];
    struct buf name, body, text, hdrs;
    size_t start = out->len;
    bool eightbit = false;
    int rc = -1, e = 0;

    if (!m || !m->tpl || !m->tpl->subject || !m->tpl->body || m->nto == 0 || m->nto > NOTIFY_RCPTS_MAX)
        return -1;
    buf_init(&name, 4096);
    buf_init(&body, NOTIFY_BODY_MAX);
    buf_init(&text, 2 * NOTIFY_BODY_MAX);
    buf_init(&hdrs, NOTIFY_HEADERS_MAX + 16);

    notify_sanitize(m->hostname && m->hostname[0] ? m->hostname : "localhost", false, host, sizeof host);
    for (char *p = host; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '.' ||
              *p == '-'))
            *p = '-';
    if (!m->qid || !m->qid[0])
        core_qid_new(newqid); /* a preview: any ID */
    notify_sanitize(m->qid && m->qid[0] ? m->qid : newqid, false, qid, sizeof qid);
    for (char *p = qid; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')))
            *p = 'X';
    /* the stem of a shipped template, else "custom" */
    const struct notify_default *d = m->tpl->name ? find_default(m->tpl->name) : NULL;
    core_strlcpy(stem, d ? d->stem : "custom", sizeof stem);

    /* subject: substituted on one line, cut at a character (encoded below) */
    char subject[NOTIFY_SUBJECT_MAX + 1];
    if (notify_render_text(m->tpl, m->vars, subject, sizeof subject, &body) < 0)
        goto done;
    /* the tenant's name for From */
    if (append_value(&name, m->tenant_name && m->tenant_name[0] ? m->tenant_name : "Moat") < 0)
        goto done;
    char from_name[300];
    notify_sanitize(buf_cstr(&name), true, from_name, sizeof from_name);
    if (append_body_crlf(&text, body.ptr ? body.ptr : "", body.len) < 0)
        goto done;
    if (m->original && m->original_len &&
        notify_append_header_block(&hdrs, m->original, m->original_len, NOTIFY_HEADERS_MAX, &eightbit) < 0)
        goto done;

    double now = core_now();
    char rdate[64];
    notify_format_date(now, rdate, sizeof rdate);
    notify_format_date(m->date > 0 ? m->date : now, date, sizeof date);
    notify_random_hex(rnd, 8);
    e |= buf_printf(out, "Received: by %s (Moat) id %s; %s\r\n", host, qid, rdate);
    e |= buf_append_str(out, "From: ");
    e |= append_phrase(out, from_name);
    e |= buf_printf(out, " <postmaster@%s>\r\n", host);
    e |= buf_append_str(out, "To: ");
    for (size_t i = 0; i < m->nto; i++) {
        notify_sanitize_addr(m->to[i], addr, sizeof addr);
        e |= buf_printf(out, "%s<%s>", i ? ",\r\n " : "", addr);
    }
    e |= buf_append_str(out, "\r\nSubject: ");
    if (all_ascii(subject))
        e |= buf_append_str(out, subject);
    else
        e |= append_encoded_words(out, subject);
    e |= buf_printf(out, "\r\nDate: %s\r\n", date);
    e |= buf_printf(out, "Message-ID: <notify.%s.%s@%s>\r\n", qid, rnd, host);
    e |= buf_append_str(out, "Auto-Submitted: auto-generated\r\n");
    e |= buf_printf(out, "X-Moat-Notification: %s\r\n", stem);
    e |= buf_append_str(out, "MIME-Version: 1.0\r\n");
    if (e)
        goto done;
    if (!hdrs.len) {
        e |= buf_append_str(out, "Content-Type: text/plain; charset=utf-8\r\n"
                                 "Content-Transfer-Encoding: base64\r\n\r\n");
        if (e || notify_append_base64(out, text.ptr ? text.ptr : "", text.len) < 0)
            goto done;
    } else {
        for (int tries = 0;; tries++) {
            notify_random_hex(rnd, 12);
            snprintf(boundary, sizeof boundary, "=_moat_notify_%s", rnd);
            if (!memmem(hdrs.ptr, hdrs.len, boundary, strlen(boundary)))
                break;
            if (tries > 8)
                goto done;
        }
        e |= buf_printf(out, "Content-Type: multipart/mixed;\r\n\tboundary=\"%s\"\r\n", boundary);
        e |= buf_printf(out, "Content-Transfer-Encoding: %s\r\n", eightbit ? "8bit" : "7bit");
        e |= buf_append_str(out, "\r\nThis is a MIME-encapsulated message.\r\n\r\n");
        e |= buf_printf(out, "--%s\r\n", boundary);
        e |= buf_append_str(out, "Content-Type: text/plain; charset=utf-8\r\n"
                                 "Content-Transfer-Encoding: base64\r\n\r\n");
        if (e || notify_append_base64(out, text.ptr ? text.ptr : "", text.len) < 0)
            goto done;
        e |= buf_printf(out, "\r\n--%s\r\n", boundary);
        e |= buf_append_str(out, "Content-Description: Original message headers\r\n"
                                 "Content-Type: text/rfc822-headers\r\n");
        if (eightbit)
            e |= buf_append_str(out, "Content-Transfer-Encoding: 8bit\r\n");
        e |= buf_append_str(out, "\r\n");
        e |= buf_append(out, hdrs.ptr, hdrs.len);
        e |= buf_printf(out, "\r\n--%s--\r\n", boundary);
        if (e)
            goto done;
    }
    rc = 0;
done:
    if (rc < 0) {
        out->len = start;
        if (out->ptr)
            out->ptr[start] = '\0';
    }
    buf_free(&name);
    buf_free(&body);
    buf_free(&text);
    buf_free(&hdrs);
    return rc;
}

int notify_prepare(const struct notify_message *m, struct buf *out, struct queue_envelope *env)
{
    char addr[NOTIFY_ADDR_MAX];
    memset(env, 0, sizeof *env);
    if (!m || m->nto == 0 || m->nto > NOTIFY_RCPTS_MAX)
        return -1;
    struct notify_message copy = *m;
    core_qid_new(env->qid);
    copy.qid = env->qid;
    if (notify_render(&copy, out) < 0)
        return -1;
    env->arrival = core_now();
    env->sender = xstrdup("");
    env->rcpts = xcalloc(m->nto, sizeof *env->rcpts);
    env->orcpts = xcalloc(m->nto, sizeof *env->orcpts);
    for (size_t i = 0; i < m->nto; i++) {
        notify_sanitize_addr(m->to[i], addr, sizeof addr);
        if (!addr[0] || !strchr(addr, '@')) {
            queue_envelope_free(env);
            return -1;
        }
        env->rcpts[env->nrcpts++] = xstrdup(addr);
    }
    for (size_t i = 0; i < out->len; i++)
        if ((unsigned char)out->ptr[i] >= 0x80) {
            env->eightbit = true;
            break;
        }
    env->is_dsn = true; /* generated: never bounced, never notified about */
    env->scan_summary = xstrdup("generated notification");
    char subject[NOTIFY_SUBJECT_MAX + 1];
    if (core_header_value(out->ptr, out->len, "Subject", subject, sizeof subject))
        env->subject = xstrdup(subject);
    return 0;
}

bool notify_is_generated(const char *msg, size_t len)
{
    char v[128];
    if (!msg)
        return false;
    if (core_header_value(msg, len, "X-Moat-Notification", v, sizeof v))
        return true;
    if (core_header_value(msg, len, "Auto-Submitted", v, sizeof v)) {
        char *p = v;
        while (*p == ' ')
            p++;
        return !(strncasecmp(p, "no", 2) == 0 && (p[2] == '\0' || p[2] == ' ' || p[2] == ';' || p[2] == '('));
    }
    return false;
}

size_t notify_templates_from_json(const json_t *arr, struct notify_template **out)
{
    size_t n = json_array_size(arr), k = 0;
    *out = n ? xcalloc(n, sizeof **out) : NULL;
    for (size_t i = 0; i < n; i++) {
        const json_t *t = json_array_get(arr, i);
        const char *name = json_string_value(json_object_get(t, "name"));
        const char *lang = json_string_value(json_object_get(t, "lang"));
        const char *subject = json_string_value(json_object_get(t, "subject"));
        const char *body = json_string_value(json_object_get(t, "body"));
        if (!name || !lang || !subject || !body)
            continue;
        (*out)[k].name = xstrdup(name);
        (*out)[k].lang = xstrdup(lang);
        (*out)[k].subject = xstrdup(subject);
        (*out)[k].body = xstrdup(body);
        k++;
    }
    return k;
}

void notify_templates_free(struct notify_template *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        notify_template_free(&t[i]);
    free(t);
}
