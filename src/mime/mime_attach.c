/*
 * mime_attach.c - one attachment's record: name, extension, true type,
 * size, SHA-256, and what is inside it (archives, documents, TNEF).
 *
 *   mime_attach_analyse  analyse the decoded bytes of one attachment, append
 *                        the record to a->attachments (flags via analysis_add_flag)
 *   mime_attach_free     free what a record owns (analysis_free calls it)
 *   mime_attach_finish   once the message text is complete: retry encrypted
 *                        archives with the passwords found in it
 *   mime_blob_inspect    dispatch a blob to mime_archive.c / mime_office.c / TNEF
 *   mime_true_type       libmagic MIME type (one magic_t per process, loaded once)
 *   mime_sha256_hex      OpenSSL EVP SHA-256
 *
 * Names: bidi controls (U+202E "RIGHT-TO-LEFT OVERRIDE" and friends) and
 * zero-width characters are removed before the extension is taken, so
 * "invoice\u202Efdp.exe" (displayed "invoiceexe.pdf") has the extension
 * "exe", the one Windows acts on; trailing dots and spaces are dropped as
 * Windows does. Invalid UTF-8 becomes U+FFFD, controls '_'.
 *
 * Limits: the bytes are kept (a->attachments[i].data) up to MIME_MAX_KEEP;
 * libmagic sees at most MAGIC_WINDOW bytes; everything archive-related is
 * bounded in mime_archive.c (PRODUCT.md §3, per-message totals carried
 * from one attachment to the next through mime_attachment.extracted).
 * TNEF (winmail.dat) is read by a small bounded reader here (see
 * tnef_scan for why not libytnef); the files in it become members
 * ("winmail.dat/report.doc") and are inspected like archive members.
 */
#include "core/core.h"

#include <magic.h>
#include <openssl/evp.h>
#include <pthread.h>

#include "mime/mime_int.h"

#define MAGIC_WINDOW (2u * 1024 * 1024) /* bytes libmagic looks at */
#define NAME_MAX_BYTES 1024             /* cleaned file names and member paths */
#define EXT_MAX 32
#define TNEF_MAX_FILES 256

static magic_t magic_cookie;
static pthread_once_t magic_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t magic_lock = PTHREAD_MUTEX_INITIALIZER;

/* magic_setup - open and load the default database once per process */
static void magic_setup(void)
{
    magic_cookie = magic_open(MAGIC_MIME_TYPE | MAGIC_ERROR);
    if (!magic_cookie)
        fatal("mime: magic_open failed");
    if (magic_load(magic_cookie, NULL) < 0) {
        log_error("mime: magic_load failed: %s", magic_error(magic_cookie));
        magic_close(magic_cookie);
        magic_cookie = NULL;
    }
}

char *mime_true_type(const unsigned char *data, size_t len)
{
    const char *t = NULL;
    char *out;

    if (len == 0)
        return xstrdup("application/x-empty");
    pthread_once(&magic_once, magic_setup);
    if (!magic_cookie)
        return xstrdup("application/octet-stream");
    pthread_mutex_lock(&magic_lock);
    t = magic_buffer(magic_cookie, data, len < MAGIC_WINDOW ? len : MAGIC_WINDOW);
    out = xstrdup(t && *t ? t : "application/octet-stream");
    pthread_mutex_unlock(&magic_lock);
    for (char *p = out; *p; p++) {
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
        else if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            *p = '_';
    }
    return out;
}

void mime_sha256_hex(const unsigned char *data, size_t len, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    static const char hex[] = "0123456789abcdef";

    if (!EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32)
        fatal("mime: EVP_Digest(sha256) failed");
    for (unsigned i = 0; i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
}

/* invisible - bidi controls and zero-width characters that disguise names */
static bool invisible(uint32_t cp)
{
    return cp == 0x200b || cp == 0x200c || cp == 0x200d || cp == 0x200e || cp == 0x200f ||
           (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) || cp == 0xfeff ||
           cp == 0x061c;
}

/* mime_clean_name - a valid, bounded UTF-8 copy of n bytes of a name:
 * invisible characters removed (*bidi set when there were any), invalid
 * bytes U+FFFD, controls '_'. Caller frees. */
char *mime_clean_name(const char *in, size_t n, bool *bidi)
{
    struct buf b;
    const unsigned char *s = (const unsigned char *)in;
    size_t i = 0;

    buf_init(&b, NAME_MAX_BYTES);
    while (i < n) {
        uint32_t cp;
        size_t k = core_utf8_decode(s + i, n - i, &cp);
        int rc;
        if (k == 0) {
            rc = buf_append(&b, "\xef\xbf\xbd", 3);
            k = 1;
        } else if (invisible(cp)) {
            if (bidi)
                *bidi = true;
            rc = 0;
        } else if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0)) {
            rc = buf_append(&b, "_", 1);
        } else {
            rc = buf_append(&b, s + i, k);
        }
        if (rc < 0)
            break;
        i += k;
    }
    char *out = xstrdup(buf_cstr(&b));
    buf_free(&b);
    return out;
}

/* trim_tail - length of name without trailing dots and white space (ASCII
 * and U+3000), as Windows ignores them */
static size_t trim_tail(const char *name, size_t n)
{
    for (;;) {
        if (n > 0 && (name[n - 1] == '.' || name[n - 1] == ' ' || name[n - 1] == '\t'))
            n--;
        else if (n >= 3 && memcmp(name + n - 3, "\xe3\x80\x80", 3) == 0)
            n -= 3;
        else
            return n;
    }
}

/* ext_of - lower-case extension of name[0..n) (basename, tail trimmed) into
 * out, or "" */
static void ext_of(const char *name, size_t n, char out[EXT_MAX + 1], size_t *stem_len)
{
    size_t start = 0, dot;
    out[0] = '\0';
    for (size_t i = 0; i < n; i++)
        if (name[i] == '/' || name[i] == '\\')
            start = i + 1;
    n = trim_tail(name, n);
    *stem_len = n;
    for (dot = n; dot > start; dot--)
        if (name[dot - 1] == '.')
            break;
    if (dot == start || n - dot == 0 || n - dot > EXT_MAX)
        return;
    size_t j = 0;
    for (size_t i = dot; i < n; i++) {
        char c = name[i];
        out[j++] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    out[j] = '\0';
    *stem_len = dot - 1;
}

static bool in_list(const char *ext, const char *const *list)
{
    for (size_t i = 0; list[i]; i++)
        if (strcmp(ext, list[i]) == 0)
            return true;
    return false;
}

static const char *const doc_exts[] = {
    "pdf", "doc", "docx", "docm", "xls", "xlsx", "xlsm", "ppt", "pptx", "txt", "rtf", "csv", "jpg",
    "jpeg", "png", "gif", "bmp", "htm", "html", "zip", "mp3", "mp4", "wav", "avi", "mov", NULL};
static const char *const exec_exts[] = {
    "exe", "scr", "com", "bat", "cmd", "pif", "cpl", "dll", "msi", "vbs", "vbe", "js", "jse", "wsf",
    "wsh", "hta", "jar", "ps1", "lnk", "reg", "iso", "img", "vhd", "chm", "hlp", "application", NULL};

/* name_facts - extension (lower-case, or NULL) and the double-extension fact */
static char *name_facts(const char *name, bool *double_ext)
{
    char ext[EXT_MAX + 1], inner[EXT_MAX + 1];
    size_t stem, stem2;

    ext_of(name, strlen(name), ext, &stem);
    if (!ext[0])
        return NULL;
    ext_of(name, stem, inner, &stem2);
    if (inner[0] && in_list(inner, doc_exts) && in_list(ext, exec_exts))
        *double_ext = true;
    return xstrdup(ext);
}

static bool type_is(const char *t, const char *const *list)
{
    return t && in_list(t, list);
}

static const char *const tnef_types[] = {"application/vnd.ms-tnef", "application/ms-tnef",
                                         NULL};

static uint32_t rd32(const unsigned char *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* tnef_member - one file found in a TNEF blob becomes a member */
static void tnef_member(struct mime_scan *s, const char *path, const char *name, size_t nlen,
                        const unsigned char *data, size_t len, unsigned depth, struct mime_facts *f)
{
    char *clean = mime_clean_name(name ? name : "attachment", name ? nlen : 10, NULL);
    size_t plen = strlen(path) + strlen(clean) + 2;
    char *mpath = xmalloc(plen);
    struct mime_facts mf = {0};
    size_t idx = 0;

    snprintf(mpath, plen, "%s/%s", path, clean[0] ? clean : "attachment");
    free(clean);
    char *tt = mime_true_type(data, len);
    struct mime_member *m = mime_scan_add_member(s, &idx);
    if (m) {
        m->path = xstrdup(mpath);
        m->true_type = xstrdup(tt);
        m->size = len;
        m->depth = depth + 1;
        mime_sha256_hex(data, len, m->sha256);
    }
    mime_blob_inspect(s, mpath, tt, data, len, depth + 1, &mf);
    if (m) {
        m = &s->at->members[idx];
        m->encrypted = mf.encrypted;
        m->decrypted = mf.decrypted;
        m->macros = mf.macros;
        m->ole_objects = mf.ole_objects;
        m->pdf_javascript = mf.pdf_javascript;
        m->pdf_launch = mf.pdf_launch;
        m->pdf_open_action = mf.pdf_open_action;
    }
    f->encrypted |= mf.encrypted;
    f->decrypted |= mf.decrypted;
    f->macros |= mf.macros;
    f->ole_objects |= mf.ole_objects;
    f->pdf_javascript |= mf.pdf_javascript;
    f->pdf_launch |= mf.pdf_launch;
    f->pdf_open_action |= mf.pdf_open_action;
    free(tt);
    free(mpath);
}

/* tnef_scan - the files inside a TNEF (winmail.dat) blob become members.
 * Our own small reader rather than libytnef: that library prints to stdout
 * (which is `moatctl scan`'s JSON) and gives up on any checksum mismatch.
 * A TNEF stream: signature, key, then attributes (level u8, tag u32,
 * length u32, data, checksum u16). At attachment level, attAttachRendData
 * starts an attachment, attAttachTitle names it, attAttachData holds it. */
static void tnef_scan(struct mime_scan *s, const char *path, const unsigned char *data, size_t len,
                      unsigned depth, struct mime_facts *f)
{
    const char *name = NULL;
    size_t nlen = 0, pos = 6;
    unsigned files = 0;

    if (len < 6 || rd32(data) != 0x223e9f78)
        return;
    while (len - pos >= 9 && !s->stopped) {
        unsigned level = data[pos];
        uint32_t tag = rd32(data + pos + 1), alen = rd32(data + pos + 5);
        pos += 9;
        if (alen > len - pos)
            break;
        const unsigned char *v = data + pos;
        pos += alen;
        pos += len - pos >= 2 ? 2 : len - pos; /* checksum, not checked */
        if (level != 2)
            continue;
        if (tag == 0x00069002) { /* attAttachRendData */
            name = NULL;
            nlen = 0;
        } else if (tag == 0x00018010) { /* attAttachTitle */
            name = (const char *)v;
            nlen = strnlen(name, alen);
        } else if (tag == 0x0006800f && alen > 0) { /* attAttachData */
            if (++files > TNEF_MAX_FILES)
                break;
            s->files++;
            tnef_member(s, path, name, nlen, v, alen, depth, f);
        }
    }
}

void mime_blob_inspect(struct mime_scan *s, const char *path, const char *true_type,
                       const unsigned char *data, size_t len, unsigned depth, struct mime_facts *f)
{
    if (s->stopped || len == 0)
        return;
    if (mime_archive_is_type(true_type))
        mime_archive_scan(s, path, data, len, depth + 1, f);
    else if (mime_office_is_type(true_type))
        mime_office_scan(s, path, true_type, data, len, f);
    else if (type_is(true_type, tnef_types) ||
             (len >= 4 && data[0] == 0x78 && data[1] == 0x9f && data[2] == 0x3e && data[3] == 0x22))
        tnef_scan(s, path, data, len, depth, f);
}

void mime_scan_limit(struct mime_scan *s, const char *fmt, ...)
{
    char reason[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    analysis_add_flag(s->a, "archive_limits", reason);
    s->stopped = true;
}

struct mime_member *mime_scan_add_member(struct mime_scan *s, size_t *index)
{
    struct mime_attachment *at = s->at;
    if (s->members_before + at->nmembers >= MIME_MAX_MEMBERS) {
        at->too_many_entries = true;
        mime_scan_limit(s, "%s: more than %u archive members in the message", at->filename,
                        (unsigned)MIME_MAX_MEMBERS);
        return NULL;
    }
    /* grow by doubling: counts stay small, and MIME_MAX_MEMBERS bounds them */
    if ((at->nmembers & (at->nmembers - 1)) == 0) {
        size_t cap = at->nmembers ? at->nmembers * 2 : 4;
        at->members = xrealloc(at->members, cap * sizeof *at->members);
    }
    *index = at->nmembers;
    struct mime_member *m = &at->members[at->nmembers++];
    memset(m, 0, sizeof *m);
    return m;
}

/* attach_inspect - fill at's members and facts from its bytes; index is
 * its place in a->attachments (== nattachments while it is not there yet),
 * left out of the message-wide totals. defer: the message text is not
 * complete yet, so encrypted entries wait for mime_attach_finish. */
static void attach_inspect(struct analysis *a, const struct mime_limits *l, struct mime_attachment *at,
                           size_t index, const unsigned char *data, size_t len, bool defer)
{
    struct mime_scan s;
    struct mime_facts f = {0};

    memset(&s, 0, sizeof s);
    s.a = a;
    s.l = l;
    s.at = at;
    s.defer_encrypted = defer;
    for (size_t i = 0; i < a->nattachments; i++) {
        if (i == index)
            continue;
        s.extracted_before += a->attachments[i].extracted;
        s.members_before += a->attachments[i].nmembers;
    }
    mime_blob_inspect(&s, at->filename[0] ? at->filename : "attachment", at->true_type, data, len,
                      0, &f);
    for (size_t i = 0; i < s.npasswords; i++)
        free(s.passwords[i]);
    at->encrypted = f.encrypted;
    at->decrypted = f.decrypted;
    at->macros = f.macros;
    at->ole_objects = f.ole_objects;
    at->pdf_javascript = f.pdf_javascript;
    at->pdf_launch = f.pdf_launch;
    at->pdf_open_action = f.pdf_open_action;
}

void mime_attach_analyse(struct analysis *a, const struct mime_limits *l, const char *part_path,
                         const char *filename, const char *declared_type, const unsigned char *data,
                         size_t len)
{
    struct mime_limits defaults;
    struct mime_attachment at;
    bool dbl = false;

    if (!l) {
        mime_limits_default(&defaults);
        l = &defaults;
    }
    if (!data)
        len = 0;
    memset(&at, 0, sizeof at);
    at.filename = mime_clean_name(filename ? filename : "", filename ? strlen(filename) : 0,
                                  &at.name_bidi);
    at.extension = name_facts(at.filename, &dbl);
    at.double_extension = dbl;
    if (declared_type) {
        at.declared_type = mime_clean_name(declared_type, strlen(declared_type), NULL);
        for (char *p = at.declared_type; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a');
    }
    at.true_type = mime_true_type(data, len);
    at.size = len;
    mime_sha256_hex(data ? data : (const unsigned char *)"", len, at.sha256);
    at.part_path = xstrdup(part_path ? part_path : "");
    if (len > 0 && len <= MIME_MAX_KEEP) {
        at.data = xmalloc(len);
        memcpy(at.data, data, len);
    }
    /* a->text is NULL while mime_parse.c is still walking the message */
    attach_inspect(a, l, &at, a->nattachments, data, len, a->text == NULL);
    a->attachments = xrealloc(a->attachments, (a->nattachments + 1) * sizeof *a->attachments);
    a->attachments[a->nattachments++] = at;
}

void mime_attach_finish(struct analysis *a, const struct mime_limits *l)
{
    struct mime_limits defaults;

    if (!l) {
        mime_limits_default(&defaults);
        l = &defaults;
    }
    for (size_t i = 0; i < a->nattachments; i++) {
        struct mime_attachment *at = &a->attachments[i];
        if (!at->passwords_pending)
            continue;
        at->passwords_pending = false;
        if (!at->data) {
            char reason[1100];
            snprintf(reason, sizeof reason, "%s: encrypted", at->filename);
            analysis_add_flag(a, "encrypted", reason);
            continue;
        }
        /* again, from the start, now with the message's passwords */
        for (size_t k = 0; k < at->nmembers; k++) {
            free(at->members[k].path);
            free(at->members[k].true_type);
        }
        free(at->members);
        at->members = NULL;
        at->nmembers = 0;
        at->extracted = 0;
        attach_inspect(a, l, at, i, at->data, at->size, false);
    }
}

void mime_attach_free(struct mime_attachment *at)
{
    if (!at)
        return;
    free(at->filename);
    free(at->extension);
    free(at->declared_type);
    free(at->true_type);
    free(at->part_path);
    free(at->data);
    for (size_t i = 0; i < at->nmembers; i++) {
        free(at->members[i].path);
        free(at->members[i].true_type);
    }
    free(at->members);
    memset(at, 0, sizeof *at);
}
