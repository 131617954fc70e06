/*
 * core_buf.c - length-counted byte buffers with a hard maximum.
 *
 * A struct buf never grows past its max: every append checks by subtraction
 * and fails (-1, buffer unchanged) instead of growing. The stored bytes are
 * always followed by a NUL (not counted in len) so buf_cstr is O(1).
 */
#include "core/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void buf_init(struct buf *b, size_t max)
{
    b->ptr = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

/* buf_reserve - make room for n more bytes plus the NUL; -1 over max */
static int buf_reserve(struct buf *b, size_t n)
{
    if (b->max - b->len < n)
        return -1;
    if (b->cap - b->len > n)
        return 0;
    size_t want = b->cap ? b->cap : 64;
    while (want - b->len <= n)
        want *= 2;
    b->ptr = xrealloc(b->ptr, want);
    b->cap = want;
    return 0;
}

int buf_append(struct buf *b, const void *data, size_t n)
{
    if (b->len > b->max || buf_reserve(b, n) < 0)
        return -1;
    if (n)
        memcpy(b->ptr + b->len, data, n);
    b->len += n;
    b->ptr[b->len] = '\0';
    return 0;
}

int buf_append_str(struct buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || buf_reserve(b, (size_t)n) < 0)
        return -1;
    va_start(ap, fmt);
    vsnprintf(b->ptr + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

const char *buf_cstr(struct buf *b)
{
    if (!b->ptr) {
        b->ptr = xmalloc(1);
        b->cap = 1;
        b->ptr[0] = '\0';
    }
    return b->ptr;
}

void buf_reset(struct buf *b)
{
    b->len = 0;
    if (b->ptr)
        b->ptr[0] = '\0';
}

void buf_free(struct buf *b)
{
    free(b->ptr);
    b->ptr = NULL;
    b->len = b->cap = 0;
}
