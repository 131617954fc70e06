/*
 * core_header.c - the one header-field lookup Moat's own modules need
 * outside the MIME parser (quarantine index fields, the notification loop
 * guard): core_header_value. Not a parser for analysis - mime/ is.
 *
 * Bounds: reads at most the first CORE_HEADER_SCAN bytes of a message; the
 * value is unfolded, cut to outsz - 1 bytes, controls removed (so it is
 * safe to log or index), never decoded (RFC 2047 words stay as they are).
 */
#include "core/core.h"

#define CORE_HEADER_SCAN (256 * 1024)

bool core_header_value(const char *msg, size_t len, const char *name, char *out, size_t outsz)
{
    size_t nlen = strlen(name), i = 0, o = 0;
    bool in_field = false, found = false;
    if (outsz == 0)
        return false;
    out[0] = '\0';
    if (len > CORE_HEADER_SCAN)
        len = CORE_HEADER_SCAN;
    while (i < len) {
        size_t eol = i;
        while (eol < len && msg[eol] != '\n')
            eol++;
        size_t end = eol > i && msg[eol - 1] == '\r' ? eol - 1 : eol;
        if (end == i)
            break; /* the empty line ends the header block */
        bool cont = msg[i] == ' ' || msg[i] == '\t';
        if (!cont) {
            if (in_field) {
                found = true;
                break;
            }
            if (end - i > nlen && msg[i + nlen] == ':' && strncasecmp(msg + i, name, nlen) == 0) {
                in_field = true;
                size_t v = i + nlen + 1;
                while (v < end && (msg[v] == ' ' || msg[v] == '\t'))
                    v++;
                for (; v < end && o + 1 < outsz; v++)
                    out[o++] = msg[v];
            }
        } else if (in_field) {
            if (o + 1 < outsz)
                out[o++] = ' ';
            size_t v = i;
            while (v < end && (msg[v] == ' ' || msg[v] == '\t'))
                v++;
            for (; v < end && o + 1 < outsz; v++)
                out[o++] = msg[v];
        }
        i = eol + 1;
    }
    if (in_field)
        found = true;
    out[o] = '\0';
    if (found) { /* controls out (tabs become spaces) */
        size_t w = 0;
        for (size_t r = 0; out[r]; r++) {
            unsigned char c = (unsigned char)out[r] == '\t' ? ' ' : (unsigned char)out[r];
            if (c >= 0x20 && c != 0x7f)
                out[w++] = (char)c;
        }
        out[w] = '\0';
    }
    return found;
}
