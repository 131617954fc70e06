/*
 * core_utf8.c - UTF-8 code points, one at a time (the analysis is UTF-8
 * everywhere; several modules walk it by character).
 *
 *   core_utf8_decode  strict: one valid sequence or 0 (overlong, surrogate,
 *                     above U+10FFFF, bad continuation, truncated)
 *   core_utf8_next    lenient walk: an invalid byte is U+FFFD, one byte long
 *   buf_append_utf8   encode one code point onto a struct buf
 *
 * Written by hand: a few lines, and the libraries we have (GLib, libidn2)
 * either allocate or have other invalid-input rules than the callers need.
 */
#include "core/core.h"

size_t core_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    if (n == 0)
        return 0;
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    size_t need;
    uint32_t c, min;
    if ((s[0] & 0xe0) == 0xc0) {
        need = 2, c = s[0] & 0x1f, min = 0x80;
    } else if ((s[0] & 0xf0) == 0xe0) {
        need = 3, c = s[0] & 0x0f, min = 0x800;
    } else if ((s[0] & 0xf8) == 0xf0) {
        need = 4, c = s[0] & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < need)
        return 0;
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *cp = c;
    return need;
}

size_t core_utf8_next(const char *s, size_t len, size_t i, uint32_t *cp)
{
    size_t k = i < len ? core_utf8_decode((const unsigned char *)s + i, len - i, cp) : 0;
    if (k == 0) {
        *cp = 0xFFFD;
        return 1;
    }
    return k;
}

int buf_append_utf8(struct buf *b, uint32_t cp)
{
    char t[4];
    size_t n;
    if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        cp = 0xFFFD;
    if (cp < 0x80) {
        t[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        t[0] = (char)(0xC0 | cp >> 6);
        t[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        t[0] = (char)(0xE0 | cp >> 12);
        t[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        t[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        t[0] = (char)(0xF0 | cp >> 18);
        t[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        t[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        t[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return buf_append(b, t, n);
}
