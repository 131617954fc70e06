/*
 * mime_archive.c - archives inside attachments, with libarchive: zip, 7z,
 * rar, tar, cpio, cab, iso9660, lha, xar, ar and the single-file
 * compressors (gzip, bzip2, xz, lzma, zstd, lz4, compress) through the
 * "raw" format. Recursive: a member that is itself an archive is opened in
 * turn and its members are recorded as "a.zip/b.tar/c.exe".
 *
 *   mime_archive_is_type        true types opened here
 *   mime_archive_scan           walk one archive (members, limits, passwords)
 *   mime_archive_ratio_exceeded the compression-ratio rule
 *   mime_password_harvest       candidate passwords from the message text
 *
 * Limits (PRODUCT.md §3, struct mime_limits, per tenant), all enforced while
 * extracting - data is read in bounded chunks and counted as it comes:
 *   archive_depth        an archive nested deeper than this is not opened
 *   archive_total_bytes  bytes extracted in total per message (all levels,
 *                        all attachments; a nested archive's bytes count
 *                        when it is extracted and again for what comes out)
 *   archive_files        entries per attachment, all levels together
 *   archive_ratio        bytes out per compressed byte in, per entry (from
 *                        libarchive's raw read position) and per archive
 *                        (against the archive's whole size), from
 *                        MIME_ARCHIVE_RATIO_FLOOR bytes out on
 * A breach adds the flag archive_limits with the evidence and stops the
 * whole attachment's extraction (what was seen so far stays recorded; a
 * member cut short has an empty sha256).
 *
 * Encryption: an encrypted entry (or a 7z with an encrypted header) is
 * recorded encrypted. Candidate passwords are harvested once per attachment
 * from the subject and the body text (mime_password_harvest) plus the tenant's list, at
 * most MIME_MAX_PASSWORDS, and handed to every archive reader before it is
 * opened (libarchive accepts them only then); libarchive tries them in
 * order on encrypted entries only, and at most MIME_MAX_DECRYPT_ENTRIES entries per attachment get those
 * tries. An entry that opens is marked decrypted and inspected like any
 * other; one that does not adds the flag `encrypted` (it could not be
 * scanned). libarchive decrypts ZIP (ZipCrypto, WinZip AES) only.
 */
#include "core/core.h"

#include <archive.h>
#include <archive_entry.h>
#include <iconv.h>

#include "mime/mime_int.h"

#define READ_CHUNK (64 * 1024)
#define MAX_HEADER_RETRIES 16
#define MAX_ENCRYPTED_FLAGS 8 /* `encrypted` flags per attachment (one per entry) */

static const char *const archive_types[] = {
    "application/zip", "application/x-zip-compressed", "application/x-7z-compressed",
    "application/x-rar", "application/x-rar-compressed", "application/vnd.rar", "application/x-tar",
    "application/x-gtar", "application/x-ustar", "application/gzip", "application/x-gzip",
    "application/x-bzip2", "application/x-bzip", "application/x-xz", "application/x-lzma",
    "application/zstd", "application/x-zstd", "application/x-lz4", "application/x-lzip",
    "application/x-compress", "application/vnd.ms-cab-compressed", "application/x-iso9660-image",
    "application/x-cpio", "application/x-archive", "application/x-lha", "application/x-lzh-compressed",
    "application/x-xar", "application/java-archive", "application/x-rpm", "application/x-lrzip",
    "application/x-lzop", "application/x-apple-diskimage", "application/x-iso9660", NULL};

bool mime_archive_is_type(const char *true_type)
{
    if (!true_type)
        return false;
    for (size_t i = 0; archive_types[i]; i++)
        if (strcmp(true_type, archive_types[i]) == 0)
            return true;
    return false;
}

bool mime_archive_ratio_exceeded(uint64_t produced, uint64_t consumed, unsigned ratio)
{
    if (ratio == 0 || produced <= MIME_ARCHIVE_RATIO_FLOOR)
        return false;
    if (consumed == 0)
        consumed = 1;
    if (consumed > UINT64_MAX / ratio)
        return false;
    return produced > consumed * ratio;
}

/* ---------------------------------------------------------------- passwords */

/* norm_text - copy of text with full-width ASCII (U+FF01..FF5E) and the
 * ideographic space folded to ASCII, so "ＰＷ：ａｂｃ１２３" reads "PW:abc123" */
static char *norm_text(const char *text, size_t len, size_t *outlen)
{
    char *out = xmalloc(len + 1);
    size_t j = 0;
    const unsigned char *s = (const unsigned char *)text;
    for (size_t i = 0; i < len;) {
        if (i + 2 < len && s[i] == 0xef && (s[i + 1] == 0xbc || s[i + 1] == 0xbd) &&
            (s[i + 2] & 0xc0) == 0x80) {
            unsigned cp = ((s[i] & 0x0fu) << 12) | ((s[i + 1] & 0x3fu) << 6) | (s[i + 2] & 0x3fu);
            if (cp >= 0xff01 && cp <= 0xff5e) {
                out[j++] = (char)(cp - 0xff01 + 0x21);
                i += 3;
                continue;
            }
        }
        if (i + 2 < len && s[i] == 0xe3 && s[i + 1] == 0x80 && s[i + 2] == 0x80) {
            out[j++] = ' ';
            i += 3;
            continue;
        }
        out[j++] = (char)s[i++];
    }
    out[j] = '\0';
    *outlen = j;
    return out;
}

struct pw_keyword {
    const char *word;
    bool ascii;     /* needs a word boundary around it */
    bool need_sep;  /* only when followed by ':' or '=' ("パス:" but not "パスタ") */
};

/* longest first, so "password" wins over "pass" */
static const struct pw_keyword pw_keywords[] = {
    {"passphrase", true, false}, {"password", true, false}, {"passcode", true, false},
    {"passwd", true, false},     {"pass", true, true},      {"pwd", true, false},
    {"pw", true, true},          {"\xe3\x83\x91\xe3\x82\xb9\xe3\x83\xaf\xe3\x83\xbc\xe3\x83\x89", false, false}, /* パスワード */
    {"\xe6\x9a\x97\xe8\xa8\xbc\xe7\x95\xaa\xe5\x8f\xb7", false, false}, /* 暗証番号 */
    {"\xe5\xaf\x86\xe7\xa0\x81", false, false},                         /* 密码 */
    {"\xe3\x83\x91\xe3\x82\xb9", false, true},                          /* パス */
    {NULL, false, false}};

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* skip_connectors - past spaces, ':', '=', '-', "は", "is", "→", closing
 * brackets and the like between a keyword and its value */
static size_t skip_connectors(const char *t, size_t n, size_t i, bool *sep)
{
    static const char *const conn[] = {
        "\xe3\x81\xaf", "\xe3\x81\x8c", "\xe2\x86\x92", "\xe2\x87\x92", "\xe3\x80\x91",
        "\xe3\x80\x8d", "\xe3\x80\x8f", "\xe3\x80\x95", "\xe3\x81\xa7\xe3\x81\x99", /* は が → ⇒ 】 」 』 〕 です */
        NULL};
    for (int guard = 0; guard < 16 && i < n; guard++) {
        char c = t[i];
        if (c == ' ' || c == '\t') {
            i++;
            continue;
        }
        if (c == ':' || c == '=') {
            *sep = true;
            i++;
            continue;
        }
        if (c == '-' || c == '>' || c == ')' || c == ']' || c == '*') {
            i++;
            continue;
        }
        if (n - i >= 2 && (t[i] == 'i' || t[i] == 'I') && (t[i + 1] == 's' || t[i + 1] == 'S') &&
            (n - i == 2 || !is_alpha(t[i + 2]))) {
            i += 2;
            continue;
        }
        bool hit = false;
        for (size_t k = 0; conn[k]; k++) {
            size_t kl = strlen(conn[k]);
            if (n - i >= kl && memcmp(t + i, conn[k], kl) == 0) {
                i += kl;
                hit = true;
                break;
            }
        }
        if (!hit)
            break;
    }
    return i;
}

/* add_candidate - append a copy unless present or full */
static void add_candidate(char **out, size_t *n, size_t max, const char *s, size_t len)
{
    if (len == 0 || len > 64 || *n >= max)
        return;
    for (size_t i = 0; i < *n; i++)
        if (strlen(out[i]) == len && memcmp(out[i], s, len) == 0)
            return;
    out[(*n)++] = xstrndup(s, len);
}

/* take_token - the value at t[i]: optionally quoted ("x", 'x', 「x」, 『x』,
 * 【x】, (x), [x]), else a run of printable ASCII. Returns true if one was
 * added (and the variant without trailing punctuation). */
static bool take_token(const char *t, size_t n, size_t i, char **out, size_t *nout, size_t max)
{
    static const char *const open_q[] = {"\xe3\x80\x8c", "\xe3\x80\x8e", "\xe3\x80\x90", NULL};
    static const char *const close_q[] = {"\xe3\x80\x8d", "\xe3\x80\x8f", "\xe3\x80\x91", NULL};
    const char *close = NULL;
    char ascii_close = 0;

    for (size_t k = 0; open_q[k]; k++)
        if (n - i >= 3 && memcmp(t + i, open_q[k], 3) == 0) {
            close = close_q[k];
            i += 3;
            break;
        }
    if (!close && i < n && (t[i] == '"' || t[i] == '\'' || t[i] == '(' || t[i] == '[' || t[i] == '<')) {
        ascii_close = t[i] == '(' ? ')' : t[i] == '[' ? ']' : t[i] == '<' ? '>' : t[i];
        i++;
    }
    size_t start = i;
    /* quoted values may hold spaces */
    unsigned char lowest = (close || ascii_close) ? 0x20 : 0x21;
    while (i < n && (unsigned char)t[i] >= lowest && (unsigned char)t[i] < 0x7f && t[i] != ascii_close)
        i++;
    size_t len = i - start;
    if (len == 0)
        return false;
    add_candidate(out, nout, max, t + start, len);
    size_t trimmed = len;
    while (trimmed > 0 && strchr(".,;:!?)]}>\"'", t[start + trimmed - 1]))
        trimmed--;
    if (trimmed && trimmed != len)
        add_candidate(out, nout, max, t + start, trimmed);
    return true;
}

size_t mime_password_harvest(const char *text, size_t len, char **out, size_t max)
{
    size_t n = 0, tn;
    char *t;

    if (!text || !len || !max)
        return 0;
    t = norm_text(text, len, &tn);
    for (size_t i = 0; i < tn && n < max; i++) {
        const struct pw_keyword *kw = NULL;
        for (size_t k = 0; pw_keywords[k].word; k++) {
            size_t kl = strlen(pw_keywords[k].word);
            if (tn - i < kl)
                continue;
            if (pw_keywords[k].ascii ? strncasecmp(t + i, pw_keywords[k].word, kl) != 0
                                     : memcmp(t + i, pw_keywords[k].word, kl) != 0)
                continue;
            if (pw_keywords[k].ascii && ((i > 0 && is_alpha(t[i - 1])) ||
                                         (i + kl < tn && is_alpha(t[i + kl]))))
                continue;
            kw = &pw_keywords[k];
            break;
        }
        if (!kw)
            continue;
        size_t kl = strlen(kw->word);
        bool sep = false;
        size_t j = skip_connectors(t, tn, i + kl, &sep);
        i += kl - 1;
        if (kw->need_sep && !sep)
            continue;
        if (j < tn && t[j] != '\n' && t[j] != '\r' && take_token(t, tn, j, out, &n, max))
            continue;
        /* "Password:" alone, or a sentence without a value ("パスワードは下記の
         * 通りです。"): the first token of the next non-empty line */
        size_t eol = j;
        while (eol < tn && t[eol] != '\n')
            eol++;
        for (int lines = 0; lines < 3 && eol < tn; lines++) {
            size_t k = eol + 1;
            while (k < tn && (t[k] == ' ' || t[k] == '\t' || t[k] == '\r'))
                k++;
            if (k < tn && t[k] != '\n') {
                take_token(t, tn, k, out, &n, max);
                break;
            }
            eol = k;
        }
    }
    free(t);
    return n;
}

/* passwords_prepare - harvest once per attachment: text candidates first,
 * then the tenant's list, MIME_MAX_PASSWORDS in all */
static void passwords_prepare(struct mime_scan *s)
{
    if (s->passwords_ready)
        return;
    s->passwords_ready = true;
    /* the subject too: "Invoice (password: 1234)" */
    if (s->a->subject)
        s->npasswords = mime_password_harvest(s->a->subject, strlen(s->a->subject), s->passwords,
                                              MIME_MAX_HARVESTED);
    if (s->a->text && s->a->text_len) {
        char *more[MIME_MAX_HARVESTED];
        size_t n = mime_password_harvest(s->a->text, s->a->text_len, more,
                                         MIME_MAX_HARVESTED - s->npasswords);
        for (size_t i = 0; i < n; i++) {
            add_candidate(s->passwords, &s->npasswords, MIME_MAX_HARVESTED, more[i], strlen(more[i]));
            free(more[i]);
        }
    }
    for (size_t i = 0; s->l->passwords && i < s->l->npasswords; i++) {
        const char *p = s->l->passwords[i];
        if (p)
            add_candidate(s->passwords, &s->npasswords, MIME_MAX_PASSWORDS, p, strlen(p));
    }
}

/* ---------------------------------------------------------------- walking */

/* entry_name - the entry's path as UTF-8: as stored when valid UTF-8, else
 * from CP932 (Japanese Windows zips), else cleaned. Caller frees. */
static char *entry_name(struct archive_entry *e)
{
    const char *raw = archive_entry_pathname(e);
    if (!raw || !*raw)
        raw = "data";
    size_t n = strnlen(raw, 4096);
    bool valid = true;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)raw[i] >= 0x80)
            valid = false;
    if (!valid) {
        char *u = mime_clean_name(raw, n, NULL);
        valid = strstr(u, "\xef\xbf\xbd") == NULL;
        if (valid)
            return u;
        free(u);
        iconv_t cd = iconv_open("UTF-8", "CP932");
        if (cd != (iconv_t)-1) {
            char out[4096 * 3];
            char *in = (char *)(uintptr_t)raw, *op = out;
            size_t il = n, ol = sizeof out - 1;
            if (iconv(cd, &in, &il, &op, &ol) != (size_t)-1 && il == 0) {
                iconv_close(cd);
                return mime_clean_name(out, (size_t)(op - out), NULL);
            }
            iconv_close(cd);
        }
    }
    return mime_clean_name(raw, n, NULL);
}

/* raw_name - name for the content of a single-file compressor: the
 * container's last path component without its .gz/.bz2/... suffix */
static char *raw_name(const char *path)
{
    static const char *const sfx[] = {".gz", ".tgz", ".bz2", ".xz", ".lzma", ".zst", ".lz4",
                                      ".lz", ".z", ".gzip", NULL};
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    for (size_t i = 0; sfx[i]; i++) {
        size_t k = strlen(sfx[i]);
        if (n > k && strcasecmp(base + n - k, sfx[i]) == 0) {
            if (strcmp(sfx[i], ".tgz") == 0) {
                char *r = xmalloc(n + 1);
                snprintf(r, n + 1, "%.*s.tar", (int)(n - k), base);
                return r;
            }
            return xstrndup(base, n - k);
        }
    }
    return xstrdup("data");
}

static void facts_or(struct mime_facts *to, const struct mime_facts *from)
{
    to->encrypted |= from->encrypted;
    to->decrypted |= from->decrypted;
    to->macros |= from->macros;
    to->ole_objects |= from->ole_objects;
    to->pdf_javascript |= from->pdf_javascript;
    to->pdf_launch |= from->pdf_launch;
    to->pdf_open_action |= from->pdf_open_action;
}

static void size_text(uint64_t n, char *out, size_t outsz)
{
    if (n >= 1024 * 1024 && n % (1024 * 1024) == 0)
        snprintf(out, outsz, "%llu MB", (unsigned long long)(n / (1024 * 1024)));
    else
        snprintf(out, outsz, "%llu bytes", (unsigned long long)n);
}

/* entry_state - one entry being read */
struct entry_read {
    unsigned char *buf;
    size_t len, cap;
    bool complete;   /* read to its end without error */
    bool failed;     /* libarchive refused the data (bad password, corrupt) */
    bool fatal;      /* the archive cannot go on */
};

/* read_entry - the current entry's data into r, counting every chunk
 * against the limits as it arrives */
static void read_entry(struct mime_scan *s, struct archive *ar, const char *mpath, uint64_t *archive_out,
                       size_t archive_len, struct entry_read *r)
{
    const struct mime_limits *l = s->l;
    int64_t start_in = archive_filter_bytes(ar, -1);
    uint64_t produced = 0;

    for (;;) {
        uint64_t used = s->extracted_before + s->at->extracted;
        uint64_t room = used < l->archive_total_bytes ? l->archive_total_bytes - used : 0;
        size_t want = room < READ_CHUNK ? (size_t)room + 1 : READ_CHUNK;
        if (r->cap - r->len < want) {
            size_t cap = r->cap ? r->cap : READ_CHUNK;
            while (cap - r->len < want)
                cap *= 2;
            r->buf = xrealloc(r->buf, cap);
            r->cap = cap;
        }
        la_ssize_t n = archive_read_data(ar, r->buf + r->len, want);
        if (n == 0) {
            r->complete = true;
            return;
        }
        if (n < 0) {
            r->failed = true;
            r->fatal = n == ARCHIVE_FATAL;
            return;
        }
        r->len += (size_t)n;
        produced += (uint64_t)n;
        *archive_out += (uint64_t)n;
        s->at->extracted += (uint64_t)n;
        if (s->extracted_before + s->at->extracted > l->archive_total_bytes) {
            char sz[64];
            size_text(l->archive_total_bytes, sz, sizeof sz);
            mime_scan_limit(s, "%s: more than %s extracted", s->at->filename[0] ? s->at->filename : "attachment", sz);
            return;
        }
        int64_t now_in = archive_filter_bytes(ar, -1);
        uint64_t consumed = now_in > start_in ? (uint64_t)(now_in - start_in) : 0;
        if (mime_archive_ratio_exceeded(produced, consumed, l->archive_ratio) ||
            mime_archive_ratio_exceeded(*archive_out, archive_len, l->archive_ratio)) {
            mime_scan_limit(s, "%s: compression ratio over %u:1", mpath, l->archive_ratio);
            return;
        }
    }
}

void (*mime_decrypted_hook)(struct analysis *a, const char *path, const unsigned char *data, size_t len);

static void flag_encrypted(struct mime_scan *s, const char *what)
{
    char reason[1100];
    if (s->defer_encrypted) {
        s->at->passwords_pending = true;
        return;
    }
    if (++s->encrypted_flags > MAX_ENCRYPTED_FLAGS)
        return; /* the first ones say enough */
    snprintf(reason, sizeof reason, "%s: encrypted%s", what,
             s->npasswords ? " (no password found in the message or the tenant list opened it)" : "");
    analysis_add_flag(s->a, "encrypted", reason);
}

/* archive_walk - read one archive (raw_only: as a single compressed
 * stream); returns the entries seen, *compressed when a decompression
 * filter was in use */
static unsigned archive_walk(struct mime_scan *s, const char *path, const unsigned char *data, size_t len,
                             unsigned depth, struct mime_facts *f, bool raw_only, bool *compressed)
{
    unsigned entries = 0;
    const struct mime_limits *l = s->l;
    struct archive *ar;
    struct archive_entry *e;
    uint64_t out = 0;
    int retries = 0;

    ar = archive_read_new();
    if (!ar)
        fatal("mime: archive_read_new failed");
    archive_read_support_filter_all(ar);
    if (!raw_only)
        archive_read_support_format_all(ar);
    archive_read_support_format_raw(ar);
    /* passphrases can only be given before the archive is opened;
     * libarchive tries them only on encrypted entries */
    passwords_prepare(s);
    for (size_t i = 0; i < s->npasswords; i++)
        archive_read_add_passphrase(ar, s->passwords[i]);
    if (archive_read_open_memory(ar, data, len) != ARCHIVE_OK) {
        archive_read_free(ar);
        return 0;
    }
    while (!s->stopped) {
        int rc = archive_read_next_header(ar, &e);
        if (rc == ARCHIVE_EOF)
            break;
        if (rc == ARCHIVE_RETRY && ++retries < MAX_HEADER_RETRIES)
            continue;
        if (rc < ARCHIVE_WARN) {
            /* 7z with encrypted headers, or an unreadable archive */
            if (archive_read_has_encrypted_entries(ar) > 0) {
                f->encrypted = true;
                flag_encrypted(s, path);
            }
            break;
        }
        *compressed = archive_filter_count(ar) > 1;
        if (archive_format(ar) == ARCHIVE_FORMAT_RAW && !*compressed)
            break; /* not compressed: not an archive after all */
        entries++;
        if (archive_entry_filetype(e) != AE_IFREG && archive_format(ar) != ARCHIVE_FORMAT_RAW) {
            /* directories, links...: not files, but bounded too */
            if (++s->other_entries > 8u * l->archive_files + 1024) {
                s->at->too_many_entries = true;
                mime_scan_limit(s, "%s: more than %u directory or link entries",
                                s->at->filename[0] ? s->at->filename : path, 8u * l->archive_files + 1024);
                break;
            }
            continue;
        }
        if (++s->files > l->archive_files) {
            s->at->too_many_entries = true;
            mime_scan_limit(s, "%s: more than %u files", s->at->filename[0] ? s->at->filename : path,
                            l->archive_files);
            break;
        }

        char *name = archive_format(ar) == ARCHIVE_FORMAT_RAW ? raw_name(path) : entry_name(e);
        size_t plen = strlen(path) + strlen(name) + 2;
        char *mpath = xmalloc(plen);
        snprintf(mpath, plen, "%s/%s", path, name);
        free(name);
        {
            char *c = mime_clean_name(mpath, strlen(mpath), NULL);
            free(mpath);
            mpath = c;
        }

        bool enc = archive_entry_is_encrypted(e) != 0;
        bool try_data = true;
        if (enc) {
            if (!s->npasswords || s->decrypt_entries >= MIME_MAX_DECRYPT_ENTRIES)
                try_data = false;
            else
                s->decrypt_entries++;
        }

        struct entry_read r = {0};
        if (try_data)
            read_entry(s, ar, mpath, &out, len, &r);
        struct mime_facts mf = {0};
        mf.encrypted = enc;
        mf.decrypted = enc && r.complete;
        if (enc && !r.complete && !s->stopped)
            flag_encrypted(s, mpath);

        size_t idx = 0;
        struct mime_member *m = mime_scan_add_member(s, &idx);
        char *tt = NULL;
        if (m) {
            m->path = xstrdup(mpath);
            m->depth = depth;
            if (r.complete || (!enc && r.len)) {
                tt = mime_true_type(r.buf, r.len);
                m->true_type = xstrdup(tt);
                m->size = r.len;
            } else {
                m->true_type = xstrdup("application/octet-stream");
                m->size = archive_entry_size_is_set(e) && archive_entry_size(e) > 0
                              ? (uint64_t)archive_entry_size(e)
                              : 0;
            }
            if (r.complete)
                mime_sha256_hex(r.buf, r.len, m->sha256);
        }
        /* a vbaProject.bin anywhere is a macro project (an OOXML document
         * seen as a plain zip, or one unpacked into the archive) */
        {
            size_t ml = strlen(mpath);
            if (ml >= 14 && strcasecmp(mpath + ml - 14, "vbaProject.bin") == 0)
                mf.macros = true;
        }
        if (enc && r.complete && mime_decrypted_hook)
            mime_decrypted_hook(s->a, mpath, r.buf, r.len);
        if (r.complete && tt && !s->stopped)
            mime_blob_inspect(s, mpath, tt, r.buf, r.len, depth, &mf);
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
        facts_or(f, &mf);
        free(tt);
        free(r.buf);
        free(mpath);
        if (r.fatal)
            break;
    }
    if (!entries)
        *compressed = archive_filter_count(ar) > 1;
    archive_read_free(ar);
    return entries;
}

void mime_archive_scan(struct mime_scan *s, const char *path, const unsigned char *data, size_t len,
                       unsigned depth, struct mime_facts *f)
{
    bool compressed = false;

    if (s->stopped)
        return;
    if (depth > s->l->archive_depth) {
        mime_scan_limit(s, "%s: nested deeper than %u levels", path, s->l->archive_depth);
        return;
    }
    /* compressed data that reads as an empty archive (a gzip of zeros is
     * an empty tar) is read again as one compressed stream, so its size
     * and ratio are counted and its content seen */
    if (archive_walk(s, path, data, len, depth, f, false, &compressed) == 0 && compressed && !s->stopped)
        archive_walk(s, path, data, len, depth, f, true, &compressed);
}
