/*
 * rewrite_mime.c - the MIME structure of a message as byte ranges, for
 * surgery that leaves everything else byte-identical.
 *
 *   rw_tree_parse    header blocks, fields, parts and their content ranges
 *   rw_tree_verify   the same structure as GMime reads it, or why not
 *   rw_tree_free / rw_tree_find / rw_field_is / rw_field_value / rw_init
 *
 * The reading follows GMime 3's parser (which mime/, so the detectors and
 * the policy, use): lines end at LF (a CR before it is part of the line
 * ending); a header block ends at an empty line, or without one at a line
 * that is not a header field once a Content-Type (a message: a Subject,
 * From, Date, To or Cc) was seen; a leading mbox "From " line is skipped;
 * a boundary line is "--" boundary ["--"] followed only by white space and
 * is looked for against every enclosing multipart, the innermost first,
 * the closing form before the plain one; the line ending before a boundary
 * line belongs to the boundary; a part without Content-Type is text/plain
 * (message/rfc822 in a multipart/digest); a multipart without boundary has
 * no parts; message/rfc822 content is a message of its own whose parts
 * continue the path ("1.2" -> "1.2.1"). Paths are those of mime/.
 *
 * rw_tree_verify parses the message with GMime too and compares types,
 * child counts and the content offsets of every leaf: where the two differ
 * (malformed input read two ways) the caller refuses to change parts.
 *
 * Limits: REWRITE_MAX_PARTS entities, REWRITE_MAX_DEPTH nesting levels,
 * REWRITE_MAX_HEADERS fields per header block (beyond them: an error).
 */
#include <gmime/gmime.h>

#include "core/core.h"

#include <pthread.h>

#include "rewrite/rewrite_int.h"

enum found {
    FOUND_EOS,
    FOUND_IMMEDIATE,
    FOUND_IMMEDIATE_END,
    FOUND_PARENT,
    FOUND_PARENT_END,
};

#define RW_MAX_BOUNDS (REWRITE_MAX_DEPTH + 2)

struct scan {
    struct rw_tree *t;
    const char *bnd[RW_MAX_BOUNDS];
    size_t blen[RW_MAX_BOUNDS];
    unsigned nb;
    char *err;
    size_t errsz;
};

static pthread_once_t rw_once = PTHREAD_ONCE_INIT;

static void rw_init_once(void)
{
    g_mime_init();
}

void rw_init(void)
{
    pthread_once(&rw_once, rw_init_once);
}

/* line_end - index of the LF ending the line at pos, or t->len */
static size_t line_end(const struct rw_tree *t, size_t pos)
{
    const char *nl = memchr(t->msg + pos, '\n', t->len - pos);
    return nl ? (size_t)(nl - t->msg) : t->len;
}

static bool is_lwsp(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* is_boundary - "--" b ["--"] then only white space */
static bool is_boundary(const char *p, size_t len, const char *b, size_t bl, bool final)
{
    size_t need = 2 + bl + (final ? 2 : 0);
    if (len < need || memcmp(p + 2, b, bl) != 0)
        return false;
    if (final && (p[2 + bl] != '-' || p[3 + bl] != '-'))
        return false;
    for (size_t i = need; i < len; i++)
        if (!is_lwsp(p[i]))
            return false;
    return true;
}

/* check_boundary - is the line [start, end) a boundary of an enclosing
 * multipart; FOUND_EOS stands for "no" here */
static enum found check_boundary(const struct scan *s, size_t start, size_t end)
{
    const char *p = s->t->msg + start;
    size_t len = end - start;
    if (len && p[len - 1] == '\r')
        len--;
    if (len < 2 || p[0] != '-' || p[1] != '-')
        return FOUND_EOS;
    for (unsigned i = s->nb; i-- > 0;) {
        if (is_boundary(p, len, s->bnd[i], s->blen[i], true))
            return i == s->nb - 1 ? FOUND_IMMEDIATE_END : FOUND_PARENT_END;
        if (is_boundary(p, len, s->bnd[i], s->blen[i], false))
            return i == s->nb - 1 ? FOUND_IMMEDIATE : FOUND_PARENT;
    }
    return FOUND_EOS;
}

/* scan_content - from pos to the next boundary line (*bline) or the end;
 * *cend is the raw end of the content before it (fix_ends later takes the
 * line ending before the boundary off, as GMime does) */
static enum found scan_content(const struct scan *s, size_t pos, size_t *bline, size_t *cend)
{
    const struct rw_tree *t = s->t;
    while (pos < t->len) {
        size_t le = line_end(t, pos);
        enum found f = s->nb ? check_boundary(s, pos, le) : FOUND_EOS;
        if (f != FOUND_EOS) {
            *bline = pos;
            *cend = pos;
            return f;
        }
        if (le >= t->len)
            break;
        pos = le + 1;
    }
    *bline = *cend = t->len;
    return FOUND_EOS;
}

static void errf(struct scan *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void errf(struct scan *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err, s->errsz, fmt, ap);
    va_end(ap);
}

bool rw_field_is(const struct rw_tree *t, const struct rw_field *f, const char *name)
{
    size_t n = strlen(name), k = f->colon - f->start;
    while (k > 0 && (t->msg[f->start + k - 1] == ' ' || t->msg[f->start + k - 1] == '\t'))
        k--;
    return k == n && strncasecmp(t->msg + f->start, name, n) == 0;
}

char *rw_field_value(const struct rw_tree *t, const struct rw_field *f)
{
    struct buf b;
    buf_init(&b, REWRITE_MAX_FIELD);
    for (size_t i = f->colon + 1; i < f->end; i++) {
        char c = t->msg[i];
        if (c == '\r' || c == '\n')
            continue;
        if (buf_append(&b, &c, 1) < 0)
            break;
    }
    const char *v = buf_cstr(&b);
    while (*v == ' ' || *v == '\t')
        v++;
    char *r = xstrdup(v);
    buf_free(&b);
    size_t n = strlen(r);
    while (n > 0 && (r[n - 1] == ' ' || r[n - 1] == '\t'))
        r[--n] = '\0';
    return r;
}

static bool valid_name_char(unsigned char c)
{
    return c > 32 && c != 127 && c != ':'; /* GMime: anything but white space and controls */
}

/* has_field - a field of that name among e's fields */
static bool has_field(const struct rw_tree *t, const struct rw_entity *e, const char *name)
{
    for (size_t i = 0; i < e->nfields; i++)
        if (rw_field_is(t, &e->fields[i], name))
            return true;
    return false;
}

/* parse_headers - e->start .. the end of the header block; message: the
 * header block of a message (top level or message/rfc822); outer: the
 * top-level one (where a first line that is no field means "not a
 * message"). -1 on error. */
static int parse_headers(struct scan *s, struct rw_entity *e, bool message, bool outer)
{
    struct rw_tree *t = s->t;
    size_t pos = e->start;
    bool in_field = false, junk = false, any_line = false;
    while (pos < t->len) {
        size_t le = line_end(t, pos);
        size_t ll = le - pos;
        size_t next = le < t->len ? le + 1 : t->len;
        if (ll && t->msg[le - 1] == '\r')
            ll--;
        if (ll == 0 && le < t->len) {
            e->hdr_end = pos;
            e->body_start = next;
            return 0;
        }
        char c = t->msg[pos];
        if ((c == ' ' || c == '\t') && (in_field || junk)) {
            if (in_field)
                e->fields[e->nfields - 1].end = next;
            pos = next;
            continue;
        }
        size_t k = 0;
        while (k < ll && valid_name_char((unsigned char)t->msg[pos + k]))
            k++;
        size_t colon = k;
        while (colon < ll && (t->msg[pos + colon] == ' ' || t->msg[pos + colon] == '\t'))
            colon++;
        bool valid = k > 0 && colon < ll && t->msg[pos + colon] == ':';
        if (!valid) {
            bool from_line = ll >= 5 && memcmp(t->msg + pos, "From ", 5) == 0;
            bool enough = message ? (has_field(t, e, "Subject") || has_field(t, e, "From") ||
                                     has_field(t, e, "Date") || has_field(t, e, "To") || has_field(t, e, "Cc"))
                                  : has_field(t, e, "Content-Type");
            if (e->nfields && enough) {
                e->hdr_end = e->body_start = pos; /* a mailer forgot the blank line */
                return 0;
            }
            if (outer && !e->nfields && !from_line) {
                errf(s, "not a message: line %s is not a header field", any_line ? "after the first" : "1");
                return -1;
            }
            if (!message && s->nb && check_boundary(s, pos, le) != FOUND_EOS) {
                e->hdr_end = e->body_start = pos; /* a part without headers or content */
                return 0;
            }
            in_field = false;
            junk = true;
            any_line = true;
            pos = next;
            continue;
        }
        if (e->nfields >= REWRITE_MAX_HEADERS) {
            errf(s, "more than %d header fields in part %s", REWRITE_MAX_HEADERS, e->path);
            return -1;
        }
        e->fields = xrealloc(e->fields, (e->nfields + 1) * sizeof *e->fields);
        e->fields[e->nfields++] = (struct rw_field){pos, pos + colon, next};
        in_field = true;
        junk = false;
        any_line = true;
        pos = next;
    }
    if (outer && !e->nfields) {
        errf(s, "not a message: no header field");
        return -1;
    }
    e->hdr_end = e->body_start = t->len;
    return 0;
}

static char *lower_dup(const char *s)
{
    if (!s)
        return NULL;
    char *r = xstrdup(s);
    for (char *p = r; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p + 32);
    return r;
}

static char *trim_dup(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    char *r = xstrdup(s);
    size_t n = strlen(r);
    while (n > 0 && (r[n - 1] == ' ' || r[n - 1] == '\t'))
        r[--n] = '\0';
    return r;
}

/* content_fields - type, parameters, encoding and disposition from the
 * entity's fields (the first of each kind, as GMime's parser decides the
 * structure by the first Content-Type) */
static void content_fields(struct rw_tree *t, struct rw_entity *e, const char *deftype)
{
    e->ct_field = e->cte_field = -1;
    int cd_field = -1;
    for (size_t i = 0; i < e->nfields; i++) {
        if (rw_field_is(t, &e->fields[i], "Content-Type")) {
            e->nct++;
            if (e->ct_field < 0)
                e->ct_field = (int)i;
        } else if (rw_field_is(t, &e->fields[i], "Content-Transfer-Encoding")) {
            e->ncte++;
            if (e->cte_field < 0)
                e->cte_field = (int)i;
        } else if (rw_field_is(t, &e->fields[i], "Content-Disposition") && cd_field < 0) {
            cd_field = (int)i;
        }
    }
    GMimeContentType *ct = NULL;
    if (e->ct_field >= 0) {
        char *v = rw_field_value(t, &e->fields[e->ct_field]);
        ct = g_mime_content_type_parse(NULL, v);
        free(v);
    }
    if (ct) {
        e->type = lower_dup(g_mime_content_type_get_media_type(ct));
        e->subtype = lower_dup(g_mime_content_type_get_media_subtype(ct));
        const char *b = g_mime_content_type_get_parameter(ct, "boundary");
        e->boundary = b ? xstrdup(b) : NULL;
        const char *cs = g_mime_content_type_get_parameter(ct, "charset");
        e->charset = cs ? lower_dup(cs) : NULL;
        if (e->charset) {
            char *tr = trim_dup(e->charset);
            free(e->charset);
            e->charset = tr;
        }
        const char *st = g_mime_content_type_get_parameter(ct, "smime-type");
        e->smime_type = st ? lower_dup(st) : NULL;
        const char *pr = g_mime_content_type_get_parameter(ct, "protocol");
        e->protocol = pr ? lower_dup(pr) : NULL;
        const char *nm = g_mime_content_type_get_parameter(ct, "name");
        if (nm && *nm)
            e->filename = xstrdup(nm);
        g_object_unref(ct);
    }
    if (!e->type || !e->subtype || !*e->type || !*e->subtype) {
        free(e->type);
        free(e->subtype);
        const char *slash = strchr(deftype, '/');
        e->type = xstrndup(deftype, (size_t)(slash - deftype));
        e->subtype = xstrdup(slash + 1);
    }
    if (e->cte_field >= 0) {
        char *v = rw_field_value(t, &e->fields[e->cte_field]);
        e->cte = lower_dup(v);
        free(v);
    }
    if (cd_field >= 0) {
        char *v = rw_field_value(t, &e->fields[cd_field]);
        GMimeContentDisposition *cd = g_mime_content_disposition_parse(NULL, v);
        free(v);
        if (cd) {
            const char *d = g_mime_content_disposition_get_disposition(cd);
            e->disposition = d ? lower_dup(d) : NULL;
            const char *fn = g_mime_content_disposition_get_parameter(cd, "filename");
            if (fn && *fn) {
                free(e->filename);
                e->filename = xstrdup(fn);
            }
            g_object_unref(cd);
        }
    }
}

static bool is_type(const struct rw_entity *e, const char *type, const char *subtype)
{
    return strcmp(e->type, type) == 0 && (!subtype || strcmp(e->subtype, subtype) == 0);
}

/* new_entity - append one (e[] may move: use indices) */
static int new_entity(struct scan *s, size_t start, int parent, const char *path, unsigned depth)
{
    struct rw_tree *t = s->t;
    if (t->n >= REWRITE_MAX_PARTS) {
        t->truncated = true;
        errf(s, "more than %d MIME parts", REWRITE_MAX_PARTS);
        return -1;
    }
    if (depth >= REWRITE_MAX_DEPTH) {
        t->truncated = true;
        errf(s, "MIME nesting deeper than %d levels", REWRITE_MAX_DEPTH);
        return -1;
    }
    t->e = xrealloc(t->e, (t->n + 1) * sizeof *t->e);
    struct rw_entity *e = &t->e[t->n];
    memset(e, 0, sizeof *e);
    e->path = xstrdup(path);
    e->start = start;
    e->parent = parent;
    e->depth = depth;
    e->first_child = e->next_sibling = -1;
    if (parent >= 0) {
        struct rw_entity *p = &t->e[parent];
        e->in_message = p->in_message || is_type(p, "message", "rfc822");
        if (p->first_child < 0) {
            p->first_child = (int)t->n;
        } else {
            int c = p->first_child;
            while (t->e[c].next_sibling >= 0)
                c = t->e[c].next_sibling;
            t->e[c].next_sibling = (int)t->n;
        }
        p->nchildren++;
    }
    return (int)t->n++;
}

static int parse_entity(struct scan *s, size_t start, int parent, const char *path, unsigned depth,
                        bool message, bool outer, const char *deftype, enum found *found, size_t *bline);

/* parse_multipart - the children of multipart idx, GMime's way */
static int parse_multipart(struct scan *s, int idx, enum found *found, size_t *bline)
{
    struct rw_tree *t = s->t;
    size_t cend;
    const char *b = t->e[idx].boundary;
    if (!b || s->nb >= RW_MAX_BOUNDS) {
        /* no boundary: everything up to an enclosing boundary is preface */
        *found = scan_content(s, t->e[idx].body_start, bline, &cend);
        t->e[idx].body_end = cend;
        return 0;
    }
    s->bnd[s->nb] = b;
    s->blen[s->nb] = strlen(b);
    s->nb++;
    *found = scan_content(s, t->e[idx].body_start, bline, &cend);
    const char *deftype = strcmp(t->e[idx].subtype, "digest") == 0 ? "message/rfc822" : "text/plain";
    size_t nchild = 0;
    while (*found == FOUND_IMMEDIATE) {
        size_t le = line_end(t, *bline);
        if (le >= t->len) { /* boundary at the very end: nothing follows */
            *found = FOUND_EOS;
            *bline = t->len;
            break;
        }
        char cp[512];
        if ((size_t)snprintf(cp, sizeof cp, "%s.%zu", t->e[idx].path, ++nchild) >= sizeof cp) {
            errf(s, "part path too long");
            return -1;
        }
        char *ddup = xstrdup(deftype);
        int rc = parse_entity(s, le + 1, idx, cp, t->e[idx].depth + 1, false, false, ddup, found, bline);
        free(ddup);
        if (rc < 0)
            return -1;
    }
    if (*found == FOUND_IMMEDIATE_END) {
        size_t le = line_end(t, *bline);
        s->nb--;
        if (le >= t->len) {
            *found = FOUND_EOS;
            *bline = t->len;
            t->e[idx].body_end = t->len;
        } else {
            *found = scan_content(s, le + 1, bline, &cend);
            t->e[idx].body_end = cend;
        }
        return 0;
    }
    s->nb--;
    /* ended by EOS or an enclosing boundary: the content ends where the
     * last child ended */
    t->e[idx].body_end = *found == FOUND_EOS ? t->len : *bline;
    return 0;
}

static int parse_entity(struct scan *s, size_t start, int parent, const char *path, unsigned depth,
                        bool message, bool outer, const char *deftype, enum found *found, size_t *bline)
{
    struct rw_tree *t = s->t;
    int idx = new_entity(s, start, parent, path, depth);
    if (idx < 0)
        return -1;
    t->e[idx].message_top = message;
    if (parse_headers(s, &t->e[idx], message, outer) < 0)
        return -1;
    content_fields(t, &t->e[idx], deftype);
    struct rw_entity *e = &t->e[idx];
    size_t cend;
    if (strcmp(e->type, "multipart") == 0)
        return parse_multipart(s, idx, found, bline);
    bool encoded = e->cte && strcmp(e->cte, "7bit") != 0 && strcmp(e->cte, "8bit") != 0 && strcmp(e->cte, "binary") != 0;
    if (!encoded && (is_type(e, "message", "rfc822") || is_type(e, "message", "global") || is_type(e, "message", "news"))) {
        if (s->nb) {
            size_t le = line_end(t, e->body_start);
            enum found f = e->body_start < t->len ? check_boundary(s, e->body_start, le) : FOUND_EOS;
            bool from = t->len - e->body_start >= 5 && memcmp(t->msg + e->body_start, "From ", 5) == 0;
            if (f != FOUND_EOS && !((f == FOUND_IMMEDIATE_END || f == FOUND_PARENT_END) && from)) {
                e->body_end = e->body_start;
                *found = f;
                *bline = e->body_start;
                return 0;
            }
        }
        if (e->body_start >= t->len) {
            e->body_end = t->len;
            *found = FOUND_EOS;
            *bline = t->len;
            return 0;
        }
        char cp[512];
        if ((size_t)snprintf(cp, sizeof cp, "%s.1", e->path) >= sizeof cp) {
            errf(s, "part path too long");
            return -1;
        }
        size_t bs = e->body_start;
        int child = (int)t->n;
        if (parse_entity(s, bs, idx, cp, depth + 1, true, false, "text/plain", found, bline) < 0)
            return -1;
        t->e[idx].body_end = t->e[child].body_end;
        return 0;
    }
    *found = scan_content(s, e->body_start, bline, &cend);
    e->body_end = cend;
    return 0;
}

/* fix_ends - GMime's content ends exclude the line ending before the next
 * boundary; scan_content reported the boundary line's start, so step back
 * over that line ending here (once per leaf and multipart) */
static void fix_ends(struct rw_tree *t)
{
    for (size_t i = 0; i < t->n; i++) {
        struct rw_entity *e = &t->e[i];
        if (e->body_end >= t->len || e->body_end <= e->body_start)
            continue;
        size_t le = line_end(t, e->body_end);
        size_t crlf = (le > e->body_end && t->msg[le - 1] == '\r') ? 2 : 1;
        e->body_end = e->body_end - e->body_start >= crlf ? e->body_end - crlf : e->body_start;
    }
}

int rw_tree_parse(struct rw_tree *t, const char *msg, size_t len, char *err, size_t errsz)
{
    rw_init();
    memset(t, 0, sizeof *t);
    t->msg = msg;
    t->len = len;
    size_t le = memchr(msg, '\n', len) ? (size_t)((const char *)memchr(msg, '\n', len) - msg) : len;
    t->eol = (le > 0 && le < len && msg[le - 1] == '\r') ? "\r\n" : "\n";
    struct scan s = {.t = t, .err = err, .errsz = errsz};
    enum found found;
    size_t bline;
    if (len == 0) {
        snprintf(err, errsz, "not a message: empty");
        return -1;
    }
    if (parse_entity(&s, 0, -1, "1", 0, true, true, "text/plain", &found, &bline) < 0 && !t->truncated) {
        rw_tree_free(t);
        return -1;
    }
    /* over a limit: the tree so far is kept (the top header block is
     * complete) and t->truncated tells the caller not to touch parts */
    fix_ends(t);
    return 0;
}

void rw_tree_free(struct rw_tree *t)
{
    for (size_t i = 0; i < t->n; i++) {
        struct rw_entity *e = &t->e[i];
        free(e->path);
        free(e->fields);
        free(e->type);
        free(e->subtype);
        free(e->boundary);
        free(e->charset);
        free(e->cte);
        free(e->disposition);
        free(e->filename);
        free(e->smime_type);
        free(e->protocol);
    }
    free(t->e);
    t->e = NULL;
    t->n = 0;
}

int rw_tree_find(const struct rw_tree *t, const char *path)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->e[i].path, path) == 0)
            return (int)i;
    return -1;
}

/* ---------------------------------------------------------------- verification */
static void mismatch(struct rw_tree *t, const char *path, const char *what)
{
    if (t->consistent)
        snprintf(t->why, sizeof t->why, "part %s: %s", path, what);
    t->consistent = false;
}

static void verify_object(struct rw_tree *t, int idx, GMimeObject *obj)
{
    if (!t->consistent)
        return;
    struct rw_entity *e = &t->e[idx];
    if (!obj) {
        mismatch(t, e->path, "missing in GMime's reading");
        return;
    }
    GMimeContentType *ct = g_mime_object_get_content_type(obj);
    const char *ty = ct ? g_mime_content_type_get_media_type(ct) : NULL;
    const char *su = ct ? g_mime_content_type_get_media_subtype(ct) : NULL;
    if (!ty || !su || g_ascii_strcasecmp(ty, e->type) != 0 || g_ascii_strcasecmp(su, e->subtype) != 0) {
        mismatch(t, e->path, "content type read differently");
        return;
    }
    if (GMIME_IS_MULTIPART(obj)) {
        int n = g_mime_multipart_get_count(GMIME_MULTIPART(obj));
        if (strcmp(e->type, "multipart") != 0 || (size_t)n != e->nchildren) {
            mismatch(t, e->path, "number of parts read differently");
            return;
        }
        int c = e->first_child;
        for (int i = 0; i < n && c >= 0; i++, c = t->e[c].next_sibling)
            verify_object(t, c, g_mime_multipart_get_part(GMIME_MULTIPART(obj), i));
    } else if (GMIME_IS_MESSAGE_PART(obj)) {
        GMimeMessage *m = g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));
        GMimeObject *top = m ? g_mime_message_get_mime_part(m) : NULL;
        if ((top != NULL) != (e->nchildren == 1)) {
            mismatch(t, e->path, "embedded message read differently");
            return;
        }
        if (top)
            verify_object(t, e->first_child, top);
    } else if (GMIME_IS_PART(obj)) {
        if (e->nchildren || strcmp(e->type, "multipart") == 0) {
            mismatch(t, e->path, "leaf read as a container");
            return;
        }
        GMimeDataWrapper *w = g_mime_part_get_content(GMIME_PART(obj));
        GMimeStream *cs = w ? g_mime_data_wrapper_get_stream(w) : NULL;
        gint64 bs = cs ? cs->bound_start : (gint64)e->body_start;
        gint64 be = cs ? cs->bound_end : (gint64)e->body_end;
        if (be < 0)
            be = (gint64)t->len;
        if (be < bs)
            be = bs;
        if (bs != (gint64)e->body_start || be != (gint64)e->body_end)
            mismatch(t, e->path, "content boundaries read differently");
    } else {
        mismatch(t, e->path, "unknown object");
    }
}

void rw_tree_verify(struct rw_tree *t)
{
    rw_init();
    t->consistent = true;
    t->why[0] = '\0';
    GMimeParserOptions *opts = g_mime_parser_options_new();
    static const char *fallback[] = {"utf-8", "euc-jp", "cp932", "windows-1252", NULL};
    g_mime_parser_options_set_fallback_charsets(opts, fallback);
    g_mime_parser_options_set_rfc2047_compliance_mode(opts, GMIME_RFC_COMPLIANCE_LOOSE);
    g_mime_parser_options_set_parameter_compliance_mode(opts, GMIME_RFC_COMPLIANCE_LOOSE);
    g_mime_parser_options_set_address_compliance_mode(opts, GMIME_RFC_COMPLIANCE_LOOSE);
    GMimeStream *stream = g_mime_stream_mem_new_with_buffer(t->msg, t->len);
    GMimeParser *parser = g_mime_parser_new_with_stream(stream);
    g_mime_parser_set_format(parser, GMIME_FORMAT_MESSAGE);
    g_mime_parser_set_respect_content_length(parser, FALSE);
    GMimeMessage *m = g_mime_parser_construct_message(parser, opts);
    if (!m) {
        mismatch(t, "1", "GMime does not read a message");
    } else {
        verify_object(t, 0, g_mime_message_get_mime_part(m));
        g_object_unref(m);
    }
    g_object_unref(parser);
    g_object_unref(stream);
    g_mime_parser_options_free(opts);
}
