/*
 * http_totp.c - two-factor codes: HOTP (RFC 4226) and TOTP (RFC 6238) with
 * OpenSSL's HMAC, the otpauth:// enrolment URI, and its QR code as SVG
 * (libqrencode).
 *
 *   http_hotp          one code for a key and counter (SHA1/SHA256/SHA512, 6-8 digits)
 *   http_totp_check    a 6-digit SHA-1 code at now, one 30 s step either side
 *   http_totp_uri      the URI authenticator apps read
 *   http_qr_svg        that URI as a QR code (SVG, no script, no external reference)
 *
 * The replay guard (a step is never accepted twice) lives in the store
 * (store_account_totp_step): this file is pure computation. Codes are
 * compared in constant time.
 */
#include "http/http_int.h"

#include <ctype.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <qrencode.h>
#include <sodium.h>

long http_hotp(const unsigned char *key, size_t keylen, uint64_t counter, unsigned digits, const char *md)
{
    if (digits < 6 || digits > 8)
        return -1;
    const EVP_MD *m = strcmp(md, "SHA1") == 0     ? EVP_sha1()
                      : strcmp(md, "SHA256") == 0 ? EVP_sha256()
                      : strcmp(md, "SHA512") == 0 ? EVP_sha512()
                                                  : NULL;
    if (!m || keylen > 1024)
        return -1;
    unsigned char msg[8];
    for (int i = 7; i >= 0; i--) {
        msg[i] = (unsigned char)(counter & 0xff);
        counter >>= 8;
    }
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    if (!HMAC(m, key, (int)keylen, msg, sizeof msg, mac, &maclen) || maclen < 20)
        return -1;
    unsigned off = mac[maclen - 1] & 0x0f;
    uint32_t bin = ((uint32_t)(mac[off] & 0x7f) << 24) | ((uint32_t)mac[off + 1] << 16) |
                   ((uint32_t)mac[off + 2] << 8) | (uint32_t)mac[off + 3];
    uint32_t mod = 1;
    for (unsigned i = 0; i < digits; i++)
        mod *= 10;
    return (long)(bin % mod);
}

int http_totp_check(const char *secret_b32, const char *code, double now, int64_t *step)
{
    unsigned char key[64];
    long keylen = http_base32_decode(secret_b32, strlen(secret_b32), key, sizeof key);
    if (keylen < 10)
        return -1;
    if (strlen(code) != HTTP_TOTP_DIGITS || strspn(code, "0123456789") != HTTP_TOTP_DIGITS)
        return 1;
    int64_t t = (int64_t)(now / HTTP_TOTP_STEP);
    int found = 1;
    for (int64_t d = -1; d <= 1; d++) {
        long v = http_hotp(key, (size_t)keylen, (uint64_t)(t + d), HTTP_TOTP_DIGITS, "SHA1");
        char want[16];
        snprintf(want, sizeof want, "%06ld", v);
        /* every candidate is compared, in constant time */
        if (v >= 0 && sodium_memcmp(want, code, HTTP_TOTP_DIGITS) == 0 && found) {
            found = 0;
            *step = t + d;
        }
    }
    sodium_memzero(key, sizeof key);
    return found;
}

/* uri_escape - percent-encode everything but unreserved characters */
static void uri_escape(const char *in, char *out, size_t outsz)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p && o + 4 < outsz; p++) {
        if (isalnum(*p) || *p == '-' || *p == '.' || *p == '_' || *p == '~' || *p == '@')
            out[o++] = (char)*p;
        else
            o += (size_t)snprintf(out + o, outsz - o, "%%%02X", *p);
    }
    out[o] = '\0';
}

void http_totp_uri(const char *email, const char *secret_b32, char *out, size_t outsz)
{
    char e[STORE_EMAIL_MAX * 3 + 1];
    uri_escape(email, e, sizeof e);
    snprintf(out, outsz, "otpauth://totp/Moat:%s?secret=%s&issuer=Moat&algorithm=SHA1&digits=%d&period=%d", e,
             secret_b32, HTTP_TOTP_DIGITS, HTTP_TOTP_STEP);
}

char *http_qr_svg(const char *text)
{
    QRcode *qr = QRcode_encodeString(text, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
    if (!qr)
        return NULL;
    const int quiet = 4, w = qr->width, size = w + 2 * quiet;
    struct buf b;
    buf_init(&b, 1024 * 1024);
    int rc = buf_printf(&b,
                        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\" "
                        "shape-rendering=\"crispEdges\"><rect width=\"%d\" height=\"%d\" fill=\"#fff\"/>"
                        "<path fill=\"#000\" d=\"",
                        size, size, size * 6, size * 6, size, size);
    for (int y = 0; y < w && rc == 0; y++)
        for (int x = 0; x < w && rc == 0; x++)
            if (qr->data[y * w + x] & 1)
                rc = buf_printf(&b, "M%d %dh1v1h-1z", x + quiet, y + quiet);
    if (rc == 0)
        rc = buf_append_str(&b, "\"/></svg>");
    QRcode_free(qr);
    if (rc < 0) {
        buf_free(&b);
        return NULL;
    }
    buf_cstr(&b);
    return b.ptr;
}
