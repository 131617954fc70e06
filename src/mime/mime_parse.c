/*
 * mime_parse.c - one message into one analysis (mime.h): GMime 3 parse,
 * decoded headers and addresses, the part tree, body text, attachments
 * handed to mime_attach.c, signed/encrypted detection, malformed-MIME flags.
 *
 *   mime_init            g_mime_init + xmlInitParser, once per process
 *   mime_analyse         the entry point (never fails on bad input)
 *   analysis_free        frees everything an analysis owns
 *   analysis_add_flag    a flag, once per (name, reason), bounded
 *   mime_limits_default  PRODUCT.md §3 archive limits
 *
 * Part paths: the message's top entity is "1", the children of a multipart
 * at path P are "P.1", "P.2"..., and the top entity of a message/rfc822 at P
 * is "P.1" (so its parts continue the path).
 *
 * Malformed or ambiguous MIME is read the way GMime (and so a mail client)
 * reads it, and flagged "malformed" with the reason: GMime's parser warnings
 * (conflicting or duplicated headers and parameters, invalid Content-Type,
 * multipart without boundary or children, truncated message, nesting
 * overflow), our own checks (duplicate Content-Type / Content-Transfer-
 * Encoding in one entity, a multipart reusing an enclosing boundary, broken
 * base64), and our bounds: MIME_MAX_HEADERS header fields (more are not
 * kept), MIME_MAX_HEADER_VALUE bytes per value, MIME_MAX_PARTS parts and
 * MIME_MAX_DEPTH levels (deeper/more are not analysed), MIME_MAX_TEXT bytes
 * of body text (flag text_limit).
 *
 * Attachments: a leaf part with Content-Disposition attachment, a file name,
 * or a type that is not body text (text/plain, text/html, text/enriched) is
 * an attachment; its decoded bytes go to mime_attach_analyse. uuencoded and
 * yEnc blocks inside text parts are decoded here and handed over the same
 * way (and left out of the body text).
 */
#include <gmime/gmime.h>
#include <libxml/parser.h>

#include "core/core.h"

#include <pthread.h>

#include "mime/mime_int.h"

#define MIME_MAX_FLAGS 64
#define MIME_MAX_ADDRESSES 1000   /* per address field kind */
#define MIME_MAX_INLINE_BLOCKS 64 /* uuencode/yEnc blocks per text part */

/* ---------------------------------------------------------------- basics */
static pthread_once_t mime_once = PTHREAD_ONCE_INIT;

static void mime_init_once(void)
{
    g_mime_init();
    xmlInitParser();
}

void mime_init(void)
{
    pthread_once(&mime_once, mime_init_once);
}

void mime_limits_default(struct mime_limits *l)
{
    memset(l, 0, sizeof *l);
    l->archive_depth = 20;
    l->archive_total_bytes = 60ULL * 1024 * 1024;
    l->archive_files = 353;
    l->archive_ratio = 100;
}

void *mime_array_push(void *arr_ptr, size_t *n, size_t sz)
{
    void **arr = arr_ptr;
    size_t cnt = *n;
    if (cnt == 0 || (cnt & (cnt - 1)) == 0) {
        size_t cap = cnt ? cnt * 2 : 4;
        *arr = xrealloc(*arr, cap * sz);
    }
    char *e = (char *)*arr + cnt * sz;
    memset(e, 0, sz);
    *n = cnt + 1;
    return e;
}

void analysis_add_flag(struct analysis *a, const char *name, const char *reason)
{
    if (!a || !name)
        return;
    bool seen_name = false;
    for (size_t i = 0; i < a->nflags; i++) {
        if (strcmp(a->flags[i].name, name) != 0)
            continue;
        seen_name = true;
        if ((!reason && !a->flags[i].reason) ||
            (reason && a->flags[i].reason && strcmp(a->flags[i].reason, reason) == 0))
            return;
    }
    /* bounded: past MIME_MAX_FLAGS only a flag name not seen yet is added */
    if (a->nflags >= MIME_MAX_FLAGS && (seen_name || a->nflags >= 2 * MIME_MAX_FLAGS))
        return;
    struct mime_flag *f = mime_array_push(&a->flags, &a->nflags, sizeof *f);
    f->name = mime_utf8_clean(name, strlen(name), 64);
    f->reason = reason ? mime_utf8_clean(reason, strlen(reason), 512) : NULL;
}

struct detection *analysis_add_detection(struct analysis *a, const char *category, const char *name,
                                         double score, const char *evidence)
{
    if (!a || !category || !name || a->ndetections >= MIME_MAX_DETECTIONS)
        return NULL;
    struct detection *d = mime_array_push(&a->detections, &a->ndetections, sizeof *d);
    d->category = mime_utf8_clean(category, strlen(category), 32);
    d->name = mime_utf8_clean(name, strlen(name), 256);
    d->score = score < 0 ? 0 : score > 1 ? 1 : score;
    d->evidence = evidence ? mime_utf8_clean(evidence, strlen(evidence), 1024) : NULL;
    d->type = NULL;
    return d;
}

static void free_addresses(struct mime_address *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].name);
        free(v[i].address);
    }
    free(v);
}

void analysis_free(struct analysis *a)
{
    if (!a)
        return;
    free(a->message_id);
    free(a->subject);
    free(a->date);
    free_addresses(a->from, a->nfrom);
    free_addresses(a->sender, a->nsender);
    free_addresses(a->reply_to, a->nreply_to);
    free_addresses(a->to, a->nto);
    free_addresses(a->cc, a->ncc);
    free_addresses(a->return_path, a->nreturn_path);
    for (size_t i = 0; i < a->nheaders; i++) {
        free(a->headers[i].name);
        free(a->headers[i].value);
    }
    free(a->headers);
    for (size_t i = 0; i < a->nparts; i++) {
        struct mime_part *p = &a->parts[i];
        free(p->path);
        free(p->content_type);
        free(p->charset);
        free(p->transfer_encoding);
        free(p->disposition);
        free(p->filename);
    }
    free(a->parts);
    for (size_t i = 0; i < a->nattachments; i++)
        mime_attach_free(&a->attachments[i]);
    free(a->attachments);
    for (size_t i = 0; i < a->nurls; i++) {
        free(a->urls[i].url);
        free(a->urls[i].host);
        free(a->urls[i].host_unicode);
        free(a->urls[i].text);
        free(a->urls[i].source);
    }
    free(a->urls);
    for (size_t i = 0; i < a->ndetections; i++) {
        free(a->detections[i].category);
        free(a->detections[i].name);
        free(a->detections[i].evidence);
        free(a->detections[i].type);
    }
    free(a->detections);
    for (size_t i = 0; i < a->nflags; i++) {
        free(a->flags[i].name);
        free(a->flags[i].reason);
    }
    free(a->flags);
    free(a->text);
    free(a->html_text);
    free(a);
}

/* ---------------------------------------------------------------- walk state */
struct walk {
    struct analysis *a;
    const struct mime_limits *l;
    GMimeParserOptions *opts;
    struct buf text, html_text;
    const char *boundaries[MIME_MAX_DEPTH + 2]; /* of the enclosing multiparts */
    unsigned nboundaries;
    unsigned in_message; /* enclosing message/rfc822 parts */
};

static void flag_malformed(struct analysis *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void flag_malformed(struct analysis *a, const char *fmt, ...)
{
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    analysis_add_flag(a, "malformed", why);
}

/* clean - a bounded valid-UTF-8 copy of a GMime string, NULL for NULL */
static char *clean(const char *s, size_t max)
{
    return s ? mime_utf8_clean(s, strlen(s), max) : NULL;
}

/* text_append - add UTF-8 text to a bounded buffer, cut at a character
 * boundary; false once the buffer is full */
static bool text_append(struct buf *b, const char *s, size_t n)
{
    if (b->max - b->len < n) {
        size_t k = b->max - b->len;
        while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80)
            k--;
        buf_append(b, s, k);
        return false;
    }
    buf_append(b, s, n);
    return true;
}

/* normalise_text - CRLF and lone CR to LF, in place; white space trimmed
 * at both ends; returns the new length */
static size_t normalise_text(char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\r') {
            if (i + 1 < n && s[i + 1] == '\n')
                continue;
            s[k++] = '\n';
            continue;
        }
        s[k++] = s[i];
    }
    size_t b = 0;
    while (b < k && (s[b] == ' ' || s[b] == '\n' || s[b] == '\t'))
        b++;
    while (k > b && (s[k - 1] == ' ' || s[k - 1] == '\n' || s[k - 1] == '\t'))
        k--;
    memmove(s, s + b, k - b);
    s[k - b] = '\0';
    return k - b;
}

static void add_text(struct walk *w, struct buf *b, const char *s, size_t n)
{
    if (!n)
        return;
    bool ok = true;
    if (b->len)
        ok = text_append(b, "\n", 1);
    ok = ok && text_append(b, s, n);
    if (!ok)
        analysis_add_flag(w->a, "text_limit", "more than 8 MB of body text; the rest not analysed");
}

/* parser_warning - GMime's parser findings that make a message ambiguous */
static void parser_warning(gint64 offset, GMimeParserWarning code, const gchar *item, gpointer user)
{
    struct analysis *a = user;
    const char *what = NULL;
    switch (code) {
    case GMIME_WARN_DUPLICATED_HEADER:
        what = "duplicated header";
        break;
    case GMIME_WARN_DUPLICATED_PARAMETER:
        what = "duplicated header parameter";
        break;
    case GMIME_WARN_INVALID_CONTENT_TYPE:
        what = "invalid Content-Type";
        break;
    case GMIME_WARN_MALFORMED_MULTIPART:
        what = "multipart without parts";
        break;
    case GMIME_WARN_TRUNCATED_MESSAGE:
        what = "truncated message";
        break;
    case GMIME_WARN_MALFORMED_MESSAGE:
        what = "malformed message";
        break;
    case GMIME_CRIT_INVALID_HEADER_NAME:
        what = "invalid header name";
        break;
    case GMIME_CRIT_CONFLICTING_HEADER:
        what = "conflicting header";
        break;
    case GMIME_CRIT_CONFLICTING_PARAMETER:
        what = "conflicting header parameter";
        break;
    case GMIME_CRIT_MULTIPART_WITHOUT_BOUNDARY:
        what = "multipart without boundary";
        break;
    case GMIME_CRIT_NESTING_OVERFLOW:
        what = "MIME nesting overflow";
        break;
    case GMIME_WARN_PART_WITHOUT_CONTENT:
        what = "part without content";
        break;
    case GMIME_CRIT_PART_WITHOUT_HEADERS_OR_CONTENT:
        what = "part without headers or content";
        break;
    default:
        return; /* 8-bit headers, bad RFC 2047, odd parameters/addresses: common, not ambiguous */
    }
    if ((code == GMIME_WARN_DUPLICATED_HEADER || code == GMIME_CRIT_CONFLICTING_HEADER) && item) {
        /* only headers whose second copy changes how the message is read
         * (mbox Content-Length, trace and X- headers repeat harmlessly) */
        static const char *const matter[] = {"Content-Type",
                                             "Content-Transfer-Encoding",
                                             "Content-Disposition",
                                             "MIME-Version",
                                             "From",
                                             "Sender",
                                             "Reply-To",
                                             "To",
                                             "Cc",
                                             "Subject",
                                             "Message-ID",
                                             "Date",
                                             "Return-Path"};
        bool m = false;
        for (size_t i = 0; i < sizeof matter / sizeof matter[0]; i++)
            m |= strcasecmp(item, matter[i]) == 0;
        if (!m)
            return;
    }
    char esc[80];
    if (item && *item)
        flag_malformed(a, "%s: %s", what, log_escape(item, strnlen(item, 200), esc, sizeof esc));
    else
        flag_malformed(a, "%s", what);
    (void)offset;
}

/* ---------------------------------------------------------------- headers */
static void add_addresses(struct walk *w, InternetAddressList *list, struct mime_address **v, size_t *n,
                          unsigned depth)
{
    int count = list ? internet_address_list_length(list) : 0;
    for (int i = 0; i < count && *n < MIME_MAX_ADDRESSES; i++) {
        InternetAddress *ia = internet_address_list_get_address(list, i);
        if (INTERNET_ADDRESS_IS_GROUP(ia)) {
            if (depth < 2)
                add_addresses(w, internet_address_group_get_members(INTERNET_ADDRESS_GROUP(ia)), v, n,
                              depth + 1);
            continue;
        }
        if (!INTERNET_ADDRESS_IS_MAILBOX(ia))
            continue;
        const char *addr = internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(ia));
        const char *name = internet_address_get_name(ia);
        struct mime_address *m = mime_array_push(v, n, sizeof *m);
        m->address = clean(addr ? addr : "", MIME_MAX_NAME);
        m->name = name && *name ? clean(name, MIME_MAX_NAME) : NULL;
    }
}

static void trim(char *s)
{
    size_t n = strlen(s), b = 0;
    while (b < n && (s[b] == ' ' || s[b] == '\t'))
        b++;
    while (n > b && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    memmove(s, s + b, n - b);
    s[n - b] = '\0';
}

static void parse_headers(struct walk *w, GMimeObject *msg)
{
    struct analysis *a = w->a;
    GMimeHeaderList *hl = g_mime_object_get_header_list(msg);
    int count = hl ? g_mime_header_list_get_count(hl) : 0;
    if (count > MIME_MAX_HEADERS)
        flag_malformed(a, "more than %d header fields; the rest not kept", MIME_MAX_HEADERS);
    for (int i = 0; i < count; i++) {
        GMimeHeader *h = g_mime_header_list_get_header_at(hl, i);
        const char *name = g_mime_header_get_name(h);
        const char *value = g_mime_header_get_value(h);
        if (!name)
            continue;
        if (!value)
            value = "";
        size_t vlen = strlen(value);
        if (vlen > MIME_MAX_HEADER_VALUE)
            flag_malformed(a, "header %.64s longer than %d bytes", name, MIME_MAX_HEADER_VALUE);
        struct mime_address **list = NULL;
        size_t *nlist = NULL;
        enum { H_OTHER, H_SUBJECT, H_DATE, H_MID, H_ADDR } kind = H_OTHER;
        if (strcasecmp(name, "Subject") == 0 && !a->subject)
            kind = H_SUBJECT;
        else if (strcasecmp(name, "Date") == 0 && !a->date)
            kind = H_DATE;
        else if (strcasecmp(name, "Message-ID") == 0 && !a->message_id)
            kind = H_MID;
        else if (strcasecmp(name, "From") == 0)
            list = &a->from, nlist = &a->nfrom;
        else if (strcasecmp(name, "Sender") == 0)
            list = &a->sender, nlist = &a->nsender;
        else if (strcasecmp(name, "Reply-To") == 0)
            list = &a->reply_to, nlist = &a->nreply_to;
        else if (strcasecmp(name, "To") == 0)
            list = &a->to, nlist = &a->nto;
        else if (strcasecmp(name, "Cc") == 0)
            list = &a->cc, nlist = &a->ncc;
        else if (strcasecmp(name, "Return-Path") == 0)
            list = &a->return_path, nlist = &a->nreturn_path;
        if (list && *nlist < MIME_MAX_ADDRESSES)
            kind = H_ADDR;
        /* past the header cap only what fills the summary fields is decoded */
        if ((size_t)i >= MIME_MAX_HEADERS && kind == H_OTHER)
            continue;
        const char *rawv = g_mime_header_get_raw_value(h);
        char *v;
        if (rawv && strstr(rawv, "=?") && strlen(rawv) <= MIME_MAX_HEADER_VALUE) {
            /* our own RFC 2047 decoding: GMime's iconv refuses the CP50221
             * characters (circled digits...) of Japanese ISO-2022-JP mail */
            char *unfolded = xstrdup(rawv);
            size_t k = 0;
            for (size_t r = 0; unfolded[r]; r++)
                if (unfolded[r] != '\r' && unfolded[r] != '\n')
                    unfolded[k++] = unfolded[r];
            unfolded[k] = '\0';
            v = mime_rfc2047_decode(unfolded, k, MIME_MAX_HEADER_VALUE);
            free(unfolded);
        } else {
            v = mime_utf8_clean(value, vlen < MIME_MAX_HEADER_VALUE ? vlen : MIME_MAX_HEADER_VALUE,
                                MIME_MAX_HEADER_VALUE);
        }
        trim(v);
        if ((size_t)i < MIME_MAX_HEADERS) {
            struct mime_header *mh = mime_array_push(&a->headers, &a->nheaders, sizeof *mh);
            mh->name = clean(name, 256);
            mh->value = xstrdup(v);
        }
        if (kind == H_SUBJECT)
            a->subject = xstrdup(v);
        else if (kind == H_DATE)
            a->date = xstrdup(v);
        else if (kind == H_MID)
            a->message_id = clean(v, 998);
        if (kind == H_ADDR && vlen <= MIME_MAX_HEADER_VALUE) {
            InternetAddressList *al = internet_address_list_parse(w->opts, rawv ? rawv : value);
            if (al) {
                add_addresses(w, al, list, nlist, 0);
                g_object_unref(al);
            }
        }
        free(v);
    }
}

/* ---------------------------------------------------------------- content */
/* part_bytes - the decoded content of a leaf part (caller g_byte_array_free) */
static GByteArray *part_bytes(GMimePart *part)
{
    GMimeDataWrapper *dw = g_mime_part_get_content(part);
    GMimeStream *mem = g_mime_stream_mem_new();
    if (dw)
        g_mime_data_wrapper_write_to_stream(dw, mem);
    GByteArray *ba = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
    /* the stream would empty the array when finalized, whatever its refcount */
    g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(mem), FALSE);
    g_object_unref(mem);
    return ba;
}

void (*mime_body_hook)(struct analysis *a, const char *path, const unsigned char *data, size_t len);

static unsigned char b64_cls[256];

static void base64_classes_init(void)
{
    static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (const char *c = alpha; *c; c++)
        b64_cls[(unsigned char)*c] = 1;
    b64_cls[' '] = b64_cls['\t'] = b64_cls['\r'] = b64_cls['\n'] = 2;
    b64_cls['='] = 3;
}

/* base64_broken - the encoded content is not clean base64: other
 * characters, data after the padding, or an impossible length */
static const char *base64_broken(GMimePart *part)
{
    GMimeDataWrapper *dw = g_mime_part_get_content(part);
    GMimeStream *s = dw ? g_mime_data_wrapper_get_stream(dw) : NULL;
    if (!s)
        return NULL;
    g_mime_stream_reset(s);
    char buf[4096];
    ssize_t r;
    uint64_t count = 0;
    bool pad = false;
    const char *why = NULL;
    /* byte classes: 0 other, 1 base64 alphabet, 2 white space, 3 '=' (a
     * table: this loop sees every encoded byte of every attachment) */
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, base64_classes_init);
    while (!why && (r = g_mime_stream_read(s, buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i < r; i++) {
            unsigned char k = b64_cls[(unsigned char)buf[i]];
            if (k == 1 && !pad) {
                count++;
                continue;
            }
            if (k == 2)
                continue;
            if (k == 3) {
                pad = true;
                continue;
            }
            why = k == 1 ? "data after padding" : "invalid characters";
            break;
        }
    }
    g_mime_stream_reset(s);
    if (!why && count % 4 == 1)
        why = "truncated";
    return why;
}

/* html_meta_charset - a charset named by <meta> in the first 2 KB, into out */
static bool html_meta_charset(const char *s, size_t n, char *out, size_t outsz)
{
    size_t lim = n < 2048 ? n : 2048;
    for (size_t i = 0; i + 8 < lim; i++) {
        if (strncasecmp(s + i, "charset=", 8) != 0)
            continue;
        size_t j = i + 8, k = 0;
        while (j < lim && (s[j] == '"' || s[j] == '\'' || s[j] == ' '))
            j++;
        while (j < lim && k + 1 < outsz &&
               ((s[j] >= 'a' && s[j] <= 'z') || (s[j] >= 'A' && s[j] <= 'Z') ||
                (s[j] >= '0' && s[j] <= '9') || s[j] == '-' || s[j] == '_' || s[j] == ':' || s[j] == '.'))
            out[k++] = s[j++];
        out[k] = '\0';
        return k > 0;
    }
    return false;
}

/* inline_pgp - inline PGP armour in body text */
static void inline_pgp(struct walk *w, const char *s, size_t n, const char *path)
{
    if (n < 27 || !memmem(s, n, "-----BEGIN PGP ", 15))
        return;
    if (memmem(s, n, "-----BEGIN PGP MESSAGE-----", 27)) {
        w->a->encrypted_pgp = true;
        char why[128];
        snprintf(why, sizeof why, "part %s: inline PGP encrypted text", path);
        analysis_add_flag(w->a, "encrypted", why);
    }
    if (memmem(s, n, "-----BEGIN PGP SIGNED MESSAGE-----", 34))
        w->a->signed_pgp = true;
}

/* uu_line - decode one uuencoded line into out; -1 if it is not one */
static int uu_line(const unsigned char *s, size_t n, struct buf *out)
{
    if (!n)
        return -1;
    size_t len = (size_t)((s[0] - 0x20) & 0x3F);
    if (len == 0)
        return 0;
    size_t need = (len + 2) / 3 * 4;
    if (n - 1 < need)
        return -1;
    size_t got = 0;
    for (size_t i = 1; got < len && i + 3 < n; i += 4) {
        unsigned char q[4];
        for (int k = 0; k < 4; k++) {
            if (s[i + k] < 0x20 || s[i + k] > 0x60)
                return -1;
            q[k] = (unsigned char)((s[i + k] - 0x20) & 0x3F);
        }
        unsigned char b[3] = {(unsigned char)(q[0] << 2 | q[1] >> 4), (unsigned char)(q[1] << 4 | q[2] >> 2),
                              (unsigned char)(q[2] << 6 | q[3])};
        size_t take = len - got < 3 ? len - got : 3;
        if (buf_append(out, b, take) < 0)
            return -1;
        got += take;
    }
    return got == len ? 0 : -1;
}

/* yenc_param - value of " key=" on a =ybegin line (name= runs to the end) */
static bool yenc_param(const char *line, size_t n, const char *key, char *out, size_t outsz)
{
    size_t kl = strlen(key);
    for (size_t i = 0; i + kl < n; i++) {
        if ((i == 0 || line[i - 1] == ' ') && strncmp(line + i, key, kl) == 0) {
            size_t j = i + kl, k = 0;
            bool rest = strcmp(key, "name=") == 0;
            while (j < n && k + 1 < outsz && (rest || line[j] != ' ') && line[j] != '\r' && line[j] != '\n')
                out[k++] = line[j++];
            out[k] = '\0';
            return true;
        }
    }
    return false;
}

/* inline_attachments - decode uuencode ("begin 644 name" ... "end") and yEnc
 * ("=ybegin ... name=" ... "=yend") blocks in a decoded text part, hand them
 * to mime_attach_analyse, and copy the other lines to rest */
static void inline_attachments(struct walk *w, const char *path, const char *s, size_t n, struct buf *rest)
{
    size_t i = 0, blocks = 0;
    while (i < n) {
        const char *eol = memchr(s + i, '\n', n - i);
        size_t le = eol ? (size_t)(eol - s) : n, next = eol ? le + 1 : n;
        size_t ll = le - i;
        if (ll && s[i + ll - 1] == '\r')
            ll--;
        const char *line = s + i;
        bool uu = ll > 10 && strncmp(line, "begin ", 6) == 0 && line[6] >= '0' && line[6] <= '7';
        bool ye = ll > 8 && strncmp(line, "=ybegin ", 8) == 0;
        if ((uu || ye) && blocks < MIME_MAX_INLINE_BLOCKS) {
            char name[MIME_MAX_NAME];
            name[0] = '\0';
            if (uu) {
                size_t k = 6;
                while (k < ll && line[k] != ' ')
                    k++;
                while (k < ll && line[k] == ' ')
                    k++;
                size_t nl = ll - k < sizeof name - 1 ? ll - k : sizeof name - 1;
                memcpy(name, line + k, nl);
                name[nl] = '\0';
            } else {
                yenc_param(line, ll, "name=", name, sizeof name);
            }
            struct buf data;
            buf_init(&data, n); /* never more than the text itself */
            size_t j = next;
            bool ended = false, bad = false;
            while (j < n) {
                const char *e2 = memchr(s + j, '\n', n - j);
                size_t l2e = e2 ? (size_t)(e2 - s) : n, n2 = e2 ? l2e + 1 : n;
                size_t l2 = l2e - j;
                if (l2 && s[j + l2 - 1] == '\r')
                    l2--;
                const char *ln = s + j;
                j = n2;
                if (uu) {
                    if (l2 >= 3 && strncmp(ln, "end", 3) == 0 && (l2 == 3 || ln[3] == ' ')) {
                        ended = true;
                        break;
                    }
                    if (l2 == 0 || (l2 == 1 && (ln[0] == '`' || ln[0] == ' ')))
                        continue;
                    if (uu_line((const unsigned char *)ln, l2, &data) < 0) {
                        bad = true;
                        break;
                    }
                } else {
                    if (l2 >= 5 && strncmp(ln, "=yend", 5) == 0) {
                        ended = true;
                        break;
                    }
                    if (l2 >= 6 && strncmp(ln, "=ypart", 6) == 0)
                        continue;
                    for (size_t k = 0; k < l2; k++) {
                        unsigned char c = (unsigned char)ln[k];
                        if (c == '=' && k + 1 < l2)
                            c = (unsigned char)(ln[++k] - 64);
                        c = (unsigned char)(c - 42);
                        if (buf_append(&data, &c, 1) < 0)
                            break;
                    }
                }
            }
            if (!bad && (ended || data.len)) {
                blocks++;
                char *fname = name[0] ? mime_utf8_clean(name, strlen(name), MIME_MAX_NAME) : NULL;
                mime_attach_analyse(w->a, w->l, path, fname, uu ? "text/x-uuencode" : "application/x-yenc",
                                    (const unsigned char *)(data.ptr ? data.ptr : ""), data.len);
                free(fname);
                if (!ended)
                    flag_malformed(w->a, "part %s: %s block without end", path, uu ? "uuencode" : "yEnc");
                buf_free(&data);
                i = j;
                continue;
            }
            buf_free(&data);
        }
        buf_append(rest, s + i, next - i);
        i = next;
    }
}

static bool is_body_type(const char *ct)
{
    return strcmp(ct, "text/plain") == 0 || strcmp(ct, "text/html") == 0 ||
           strcmp(ct, "text/enriched") == 0 || strcmp(ct, "text/richtext") == 0 || strcmp(ct, "text") == 0;
}

/* attachment_name - the best file name: Content-Disposition filename /
 * Content-Type name (GMime: RFC 2231 continuations and charsets, RFC 2047),
 * else the last segment of Content-Location */
static char *attachment_name(GMimeObject *obj)
{
    const char *fn = GMIME_IS_PART(obj) ? g_mime_part_get_filename(GMIME_PART(obj)) : NULL;
    if (!fn || !*fn)
        fn = g_mime_object_get_content_disposition_parameter(obj, "filename");
    if (!fn || !*fn)
        fn = g_mime_object_get_content_type_parameter(obj, "name");
    if (fn && *fn)
        return clean(fn, MIME_MAX_NAME);
    const char *loc = g_mime_object_get_header(obj, "Content-Location");
    if (loc && *loc) {
        char *c = clean(loc, MIME_MAX_NAME);
        trim(c);
        char *q = strpbrk(c, "?#");
        if (q)
            *q = '\0';
        char *slash = strrchr(c, '/');
        char *base = slash ? slash + 1 : c;
        char *r = *base ? xstrdup(base) : NULL;
        free(c);
        return r;
    }
    return NULL;
}

static void walk_object(struct walk *w, GMimeObject *obj, const char *path, unsigned depth);

static void walk_leaf(struct walk *w, GMimeObject *obj, struct mime_part *mp, const char *path)
{
    GMimePart *part = GMIME_PART(obj);
    struct analysis *a = w->a;
    const char *ct = mp->content_type;
    GByteArray *ba = part_bytes(part);
    mp->size = ba->len;
    if (mp->transfer_encoding && strcmp(mp->transfer_encoding, "base64") == 0) {
        const char *why = base64_broken(part);
        if (why)
            flag_malformed(a, "part %s: broken base64 (%s)", path, why);
    }
    if (strcmp(ct, "application/pkcs7-mime") == 0 || strcmp(ct, "application/x-pkcs7-mime") == 0) {
        const char *st = g_mime_object_get_content_type_parameter(obj, "smime-type");
        if (st && (strcasecmp(st, "signed-data") == 0 || strcasecmp(st, "certs-only") == 0)) {
            a->signed_smime = true;
        } else {
            char why[128];
            a->encrypted_smime = true;
            snprintf(why, sizeof why, "part %s: S/MIME encrypted", path);
            analysis_add_flag(a, "encrypted", why);
        }
    }
    bool attachment_disp = mp->disposition && strcmp(mp->disposition, "attachment") == 0;
    bool body = is_body_type(ct) && !attachment_disp;
    bool signature =
        strcmp(ct, "application/pgp-signature") == 0 || strcmp(ct, "application/pkcs7-signature") == 0 ||
        strcmp(ct, "application/x-pkcs7-signature") == 0 || strcmp(ct, "application/pgp-encrypted") == 0;
    bool attachment = !signature && (attachment_disp || mp->filename || !is_body_type(ct));
    mp->is_text = body;
    if (body && ba->len && mime_body_hook)
        mime_body_hook(a, path, ba->data, ba->len);
    if (body) {
        const char *data = ba->data ? (const char *)ba->data : "";
        size_t len = ba->len;
        struct buf rest;
        buf_init(&rest, len + 1);
        if (len && (memmem(data, len, "begin ", 6) || memmem(data, len, "=ybegin ", 8))) {
            inline_attachments(w, path, data, len, &rest);
            data = rest.ptr ? rest.ptr : "";
            len = rest.len;
        }
        const char *cs = mp->charset;
        char meta[64];
        bool html = strcmp(ct, "text/html") == 0;
        if (html && !cs && html_meta_charset(data, len, meta, sizeof meta))
            cs = meta;
        size_t ulen;
        char *u = mime_text_to_utf8(cs, data, len, MIME_MAX_TEXT, &ulen, NULL);
        ulen = normalise_text(u, ulen);
        inline_pgp(w, u, ulen, path);
        if (html) {
            struct buf vis;
            buf_init(&vis, MIME_MAX_TEXT);
            mime_html_extract(a, u, ulen, &vis);
            if (vis.ptr)
                vis.len = normalise_text(vis.ptr, vis.len);
            mime_url_scan_text(a, vis.ptr ? vis.ptr : "", vis.len);
            add_text(w, &w->text, vis.ptr ? vis.ptr : "", vis.len);
            add_text(w, &w->html_text, vis.ptr ? vis.ptr : "", vis.len);
            buf_free(&vis);
        } else {
            mime_url_scan_text(a, u, ulen);
            add_text(w, &w->text, u, ulen);
        }
        free(u);
        buf_free(&rest);
    }
    if (attachment)
        mime_attach_analyse(a, w->l, path, mp->filename, ct, ba->data, ba->len);
    g_byte_array_free(ba, TRUE);
}

static void walk_multipart(struct walk *w, GMimeObject *obj, struct mime_part *mp, const char *path,
                           unsigned depth)
{
    struct analysis *a = w->a;
    const char *ct = mp->content_type;
    const char *boundary = g_mime_object_get_content_type_parameter(obj, "boundary");
    if (!boundary || !*boundary) {
        flag_malformed(a, "part %s: multipart without boundary", path);
    } else {
        for (unsigned i = 0; i < w->nboundaries; i++)
            if (w->boundaries[i] && strcmp(w->boundaries[i], boundary) == 0) {
                flag_malformed(a, "part %s: nested multipart reuses an enclosing boundary", path);
                break;
            }
    }
    const char *proto = g_mime_object_get_content_type_parameter(obj, "protocol");
    if (strcmp(ct, "multipart/signed") == 0) {
        if (proto && strcasestr(proto, "pgp"))
            a->signed_pgp = true;
        else
            a->signed_smime = true;
    } else if (strcmp(ct, "multipart/encrypted") == 0) {
        char why[128];
        a->encrypted_pgp = true;
        snprintf(why, sizeof why, "part %s: PGP/MIME encrypted", path);
        analysis_add_flag(a, "encrypted", why);
    }
    int n = g_mime_multipart_get_count(GMIME_MULTIPART(obj));
    if (n == 0) {
        /* no parts (no or wrong boundary): what the parser kept as prologue
         * is what a client shows; analyse it as text rather than hide it */
        const char *pro = g_mime_multipart_get_prologue(GMIME_MULTIPART(obj));
        if (pro && *pro) {
            size_t pl = strlen(pro);
            char *u = mime_text_to_utf8(NULL, pro, pl, MIME_MAX_TEXT, &pl, NULL);
            pl = normalise_text(u, pl);
            mime_url_scan_text(a, u, pl);
            add_text(w, &w->text, u, pl);
            free(u);
        }
    }
    if (w->nboundaries >= sizeof w->boundaries / sizeof w->boundaries[0])
        return;
    w->boundaries[w->nboundaries++] = boundary;
    for (int i = 0; i < n; i++) {
        if (a->nparts >= MIME_MAX_PARTS) {
            flag_malformed(a, "more than %d MIME parts; the rest not analysed", MIME_MAX_PARTS);
            break;
        }
        char cp[512];
        if ((size_t)snprintf(cp, sizeof cp, "%s.%d", path, i + 1) >= sizeof cp)
            break;
        walk_object(w, g_mime_multipart_get_part(GMIME_MULTIPART(obj), i), cp, depth + 1);
    }
    w->nboundaries--;
}

/* count_header - occurrences of name in obj's own header list */
static int count_header(GMimeObject *obj, const char *name)
{
    GMimeHeaderList *hl = g_mime_object_get_header_list(obj);
    int n = hl ? g_mime_header_list_get_count(hl) : 0, c = 0;
    for (int i = 0; i < n && i < 4 * MIME_MAX_HEADERS; i++) {
        const char *hn = g_mime_header_get_name(g_mime_header_list_get_header_at(hl, i));
        if (hn && strcasecmp(hn, name) == 0)
            c++;
    }
    return c;
}

static void walk_object(struct walk *w, GMimeObject *obj, const char *path, unsigned depth)
{
    struct analysis *a = w->a;
    if (!obj)
        return;
    if (a->nparts >= MIME_MAX_PARTS) {
        flag_malformed(a, "more than %d MIME parts; the rest not analysed", MIME_MAX_PARTS);
        return;
    }
    if (depth >= MIME_MAX_DEPTH) {
        flag_malformed(a, "MIME nesting deeper than %d levels; the rest not analysed", MIME_MAX_DEPTH);
        return;
    }
    struct mime_part *mp = mime_array_push(&a->parts, &a->nparts, sizeof *mp);
    size_t idx = a->nparts - 1;
    mp->path = xstrdup(path);
    GMimeContentType *ctype = g_mime_object_get_content_type(obj);
    char *mt = ctype ? g_mime_content_type_get_mime_type(ctype) : NULL;
    mp->content_type = clean(mt ? mt : "text/plain", 256);
    g_free(mt);
    for (char *p = mp->content_type; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p + 32);
    mp->charset = clean(g_mime_object_get_content_type_parameter(obj, "charset"), 64);
    const char *cte = g_mime_object_get_header(obj, "Content-Transfer-Encoding");
    if (cte) {
        mp->transfer_encoding = clean(cte, 64);
        trim(mp->transfer_encoding);
        for (char *p = mp->transfer_encoding; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p + 32);
    }
    const char *disp = g_mime_object_get_disposition(obj);
    if (disp) {
        mp->disposition = clean(disp, 64);
        for (char *p = mp->disposition; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p + 32);
    }
    if (count_header(obj, "Content-Type") > 1)
        flag_malformed(a, "part %s: duplicate Content-Type", path);
    if (count_header(obj, "Content-Transfer-Encoding") > 1)
        flag_malformed(a, "part %s: duplicate Content-Transfer-Encoding", path);

    if (GMIME_IS_MULTIPART(obj)) {
        walk_multipart(w, obj, mp, path, depth);
    } else if (GMIME_IS_MESSAGE_PART(obj)) {
        GMimeMessage *m = g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));
        char cp[512];
        if (m && (size_t)snprintf(cp, sizeof cp, "%s.1", path) < sizeof cp) {
            char *mct = xstrdup(a->parts[idx].content_type);
            char *fn = attachment_name(obj);
            w->in_message++;
            walk_object(w, g_mime_message_get_mime_part(m), cp, depth + 1);
            w->in_message--;
            /* the embedded message as a whole is an attachment too (hashes,
             * virus scan) - only the outermost one, so the bytes handed over
             * stay within the message's size however deep they nest */
            if (w->in_message == 0) {
                GMimeStream *mem = g_mime_stream_mem_new();
                g_mime_object_write_to_stream(GMIME_OBJECT(m), NULL, mem);
                GByteArray *ba = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
                a->parts[idx].size = ba->len;
                mime_attach_analyse(a, w->l, path, fn, mct, ba->data, ba->len);
                g_object_unref(mem);
            }
            free(mct);
            free(fn);
        }
    } else if (GMIME_IS_PART(obj)) {
        mp->filename = attachment_name(obj);
        walk_leaf(w, obj, mp, path);
    }
}

/* ---------------------------------------------------------------- entry */
struct analysis *mime_analyse(const char *msg, size_t len, const struct mime_limits *limits)
{
    struct mime_limits defl;
    if (!limits) {
        mime_limits_default(&defl);
        limits = &defl;
    }
    mime_init();
    struct analysis *a = xcalloc(1, sizeof *a);
    a->size = len;
    struct walk w = {.a = a, .l = limits};
    buf_init(&w.text, MIME_MAX_TEXT);
    buf_init(&w.html_text, MIME_MAX_TEXT);
    w.opts = g_mime_parser_options_new();
    static const char *fallback[] = {"utf-8", "euc-jp", "cp932", "windows-1252", NULL};
    g_mime_parser_options_set_fallback_charsets(w.opts, fallback);
    g_mime_parser_options_set_rfc2047_compliance_mode(w.opts, GMIME_RFC_COMPLIANCE_LOOSE);
    g_mime_parser_options_set_parameter_compliance_mode(w.opts, GMIME_RFC_COMPLIANCE_LOOSE);
    g_mime_parser_options_set_address_compliance_mode(w.opts, GMIME_RFC_COMPLIANCE_LOOSE);
    g_mime_parser_options_set_warning_callback(w.opts, parser_warning, a);

    GMimeStream *stream = g_mime_stream_mem_new_with_buffer(msg ? msg : "", len);
    GMimeParser *parser = g_mime_parser_new_with_stream(stream);
    g_mime_parser_set_format(parser, GMIME_FORMAT_MESSAGE);
    g_mime_parser_set_respect_content_length(parser, FALSE);
    GMimeMessage *m = g_mime_parser_construct_message(parser, w.opts);
    if (!m) {
        flag_malformed(a, "not a message");
    } else {
        parse_headers(&w, GMIME_OBJECT(m));
        GMimeObject *top = g_mime_message_get_mime_part(m);
        if (top)
            walk_object(&w, top, "1", 0);
        else
            flag_malformed(a, "message without a body");
        g_object_unref(m);
    }
    g_object_unref(parser);
    g_object_unref(stream);
    g_mime_parser_options_free(w.opts);
    a->text = w.text.ptr ? w.text.ptr : xstrdup("");
    a->text_len = w.text.len;
    a->html_text = w.html_text.ptr ? w.html_text.ptr : xstrdup("");
    /* the text is complete: encrypted archives get the passwords it names */
    mime_attach_finish(a, limits);
    return a;
}
