/*
 * fuzz_http.c - libFuzzer target for the parsers of src/http/ (http_parse.c):
 * every input goes, as a heap block of exactly its length, through the
 * Cookie header parser, the JSON nesting guard (and, when that accepts it,
 * jansson with the server's flags), and base32; as a NUL-terminated string
 * (the server's query-string values are) through the time, number and
 * e-mail parsers.
 *
 * Besides crashes it checks what the parsers promise: a cookie value is
 * NUL-terminated, shorter than the buffer and made of cookie-octets; an
 * accepted time is finite; decoded base32 re-encodes and decodes to the same
 * bytes. A broken promise aborts.
 */
#include <jansson.h>
#include <math.h>

#include "core/core.h"

#include "http/http_int.h"

#include "fuzz.h"

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_http: broken invariant: %s\n", what);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *p = malloc(size ? size : 1);
    if (!p)
        return 0;
    memcpy(p, data, size);

    char v[64];
    long n = http_cookie_get(p, size, "moat_session", v, sizeof v);
    check(n >= -1 && n < (long)sizeof v, "cookie length in bounds");
    if (n >= 0) {
        check(strlen(v) == (size_t)n, "cookie value NUL-terminated at its length");
        for (long i = 0; i < n; i++)
            check(v[i] > 0x20 && v[i] < 0x7f && v[i] != '"' && v[i] != ',' && v[i] != ';' && v[i] != '\\',
                  "cookie-octets only");
    }

    if (http_json_depth_ok(p, size, HTTP_JSON_DEPTH_MAX)) {
        json_t *j = json_loadb(p, size, JSON_REJECT_DUPLICATES, NULL);
        json_decref(j);
    }

    unsigned char bin[128];
    long bl = http_base32_decode(p, size, bin, sizeof bin);
    check(bl >= -1 && bl <= (long)sizeof bin, "base32 length in bounds");
    if (bl >= 0) {
        char enc[256];
        unsigned char back[128];
        long el = http_base32_encode(bin, (size_t)bl, enc, sizeof enc);
        check(el >= 0, "decoded base32 re-encodes");
        long bl2 = http_base32_decode(enc, (size_t)el, back, sizeof back);
        check(bl2 == bl && memcmp(bin, back, (size_t)bl) == 0, "base32 round trip");
    }

    size_t sl = size < 600 ? size : 600;
    char *s = malloc(sl + 1);
    if (s) {
        memcpy(s, data, sl);
        s[sl] = '\0';
        double t = 0;
        if (http_parse_time(s, 1700000000.0, &t) == 0)
            check(isfinite(t), "a parsed time is finite");
        uint64_t u;
        if (http_parse_uint(s, 1000000, &u) == 0)
            check(u <= 1000000, "a parsed number is within its maximum");
        (void)http_email_ok(s);
        free(s);
    }
    free(p);
    return 0;
}
