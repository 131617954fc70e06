/*
 * core_csv.c - CSV (RFC 4180) reading and writing for imports and exports
 * (end-user accounts, tracking search results).
 *
 *   core_csv_init / core_csv_next / core_csv_free   read records one by one
 *   core_csv_field                                   write one field, quoted as needed
 *
 * Reading: comma-separated fields, optionally in double quotes ("" is a
 * quote inside); CRLF or LF line ends; line breaks inside quotes belong to
 * the field; a UTF-8 byte-order mark at the start and blank lines are
 * skipped. Limits: CORE_CSV_FIELD_MAX bytes per field, the caller's maximum
 * of fields per record; a NUL byte, an unterminated quote or text after a
 * closing quote is an error naming the line. Fields are NUL-terminated
 * copies in the reader's scratch space, valid until the next call.
 *
 * Writing: a field is quoted when it holds a comma, a quote or a line
 * break; a field starting with = + - @ gets a leading ' (and quotes), so a
 * spreadsheet shows it as text instead of running it as a formula (CSV
 * injection).
 */
#include "core/core.h"

void core_csv_init(struct core_csv *c, const char *data, size_t len)
{
    memset(c, 0, sizeof *c);
    c->p = data;
    c->len = len;
    c->next_line = 1;
    if (len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0)
        c->pos = 3;
}

void core_csv_free(struct core_csv *c)
{
    free(c->scratch);
    c->scratch = NULL;
}

/* put - one byte of the current field into scratch; -1 when over the limit */
static int put(struct core_csv *c, size_t *flen, char ch)
{
    if (*flen >= CORE_CSV_FIELD_MAX)
        return -1;
    if (c->used == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 256;
        c->scratch = xrealloc(c->scratch, c->cap);
    }
    c->scratch[c->used++] = ch;
    (*flen)++;
    return 0;
}

/* end_field - terminate the field in scratch and remember where it starts */
static int end_field(struct core_csv *c, size_t *nf, size_t maxf, size_t start, size_t *starts)
{
    if (*nf >= maxf)
        return -1;
    if (c->used == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 256;
        c->scratch = xrealloc(c->scratch, c->cap);
    }
    c->scratch[c->used++] = '\0';
    starts[(*nf)++] = start;
    return 0;
}

enum core_csv_rc core_csv_next(struct core_csv *c, char **fields, size_t maxf, size_t *nf)
{
    size_t starts[CORE_CSV_FIELDS_MAX];
    if (maxf > CORE_CSV_FIELDS_MAX)
        maxf = CORE_CSV_FIELDS_MAX;
    *nf = 0;
    /* skip blank lines */
    while (c->pos < c->len && (c->p[c->pos] == '\n' || c->p[c->pos] == '\r')) {
        if (c->p[c->pos] == '\n')
            c->next_line++;
        c->pos++;
    }
    if (c->pos >= c->len)
        return CORE_CSV_END;
    c->line = c->next_line;
    c->used = 0;
    for (;;) {
        size_t start = c->used, flen = 0;
        if (c->pos < c->len && c->p[c->pos] == '"') {
            c->pos++;
            for (;;) {
                if (c->pos >= c->len)
                    return CORE_CSV_ERR_QUOTE;
                char ch = c->p[c->pos++];
                if (ch == '\0')
                    return CORE_CSV_ERR_NUL;
                if (ch == '"') {
                    if (c->pos < c->len && c->p[c->pos] == '"') {
                        c->pos++;
                    } else {
                        break;
                    }
                } else if (ch == '\n') {
                    c->next_line++;
                }
                if (put(c, &flen, ch) < 0)
                    return CORE_CSV_ERR_LONG;
            }
            if (c->pos < c->len && c->p[c->pos] != ',' && c->p[c->pos] != '\n' &&
                !(c->p[c->pos] == '\r' && (c->pos + 1 == c->len || c->p[c->pos + 1] == '\n')))
                return CORE_CSV_ERR_QUOTE;
        } else {
            while (c->pos < c->len && c->p[c->pos] != ',' && c->p[c->pos] != '\n') {
                char ch = c->p[c->pos];
                if (ch == '\0')
                    return CORE_CSV_ERR_NUL;
                if (ch == '"')
                    return CORE_CSV_ERR_QUOTE;
                if (ch == '\r' && (c->pos + 1 == c->len || c->p[c->pos + 1] == '\n')) {
                    c->pos++;
                    continue;
                }
                if (put(c, &flen, ch) < 0)
                    return CORE_CSV_ERR_LONG;
                c->pos++;
            }
        }
        if (end_field(c, nf, maxf, start, starts) < 0)
            return CORE_CSV_ERR_FIELDS;
        if (c->pos < c->len && c->p[c->pos] == '\r')
            c->pos++;
        if (c->pos >= c->len || c->p[c->pos] == '\n') {
            if (c->pos < c->len) {
                c->pos++;
                c->next_line++;
            }
            break;
        }
        c->pos++; /* the comma */
    }
    for (size_t i = 0; i < *nf; i++)
        fields[i] = c->scratch + starts[i];
    return CORE_CSV_OK;
}

const char *core_csv_strerror(enum core_csv_rc rc)
{
    switch (rc) {
    case CORE_CSV_OK:
    case CORE_CSV_END:
        return "ok";
    case CORE_CSV_ERR_QUOTE:
        return "malformed quotes (a quoted field must end with a quote followed by a comma or the line end; "
               "a quote inside is written \"\")";
    case CORE_CSV_ERR_LONG:
        return "field too long";
    case CORE_CSV_ERR_FIELDS:
        return "too many fields";
    case CORE_CSV_ERR_NUL:
        return "NUL byte in the data";
    }
    return "malformed";
}

int core_csv_field(struct buf *b, const char *v, bool last)
{
    if (!v)
        v = "";
    bool formula = v[0] && strchr("=+-@", v[0]) != NULL;
    bool quote = formula || strpbrk(v, ",\"\r\n") != NULL;
    int rc = 0;
    if (quote)
        rc |= buf_append_str(b, "\"");
    if (formula)
        rc |= buf_append_str(b, "'");
    for (const char *p = v; *p; p++)
        rc |= buf_append(b, *p == '"' ? "\"\"" : p, *p == '"' ? 2 : 1);
    if (quote)
        rc |= buf_append_str(b, "\"");
    rc |= buf_append_str(b, last ? "\r\n" : ",");
    return rc ? -1 : 0;
}
