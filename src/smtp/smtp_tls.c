/*
 * smtp_tls.c - TLS contexts (see smtp_tls.h).
 *
 * Server: TLS 1.2 minimum, the OpenSSL default cipher list (forward-secret
 * suites first), no renegotiation, no compression, server cipher
 * preference. The generated certificate lives in data_dir/tls/ with the key
 * readable by the owner only; it is for out-of-the-box STARTTLS (inbound MTAs
 * do not verify MX certificates by default) - production sets tls_cert.
 */
#include "core/core.h"
#include "smtp/smtp_tls.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

static void ssl_err(char *err, size_t errsz, const char *what)
{
    char e[256];
    ERR_error_string_n(ERR_get_error(), e, sizeof e);
    snprintf(err, errsz, "%s: %s", what, e);
}

/* generate_cert - write a new self-signed key pair to certp/keyp */
static int generate_cert(const char *hostname, const char *certp, const char *keyp, char *err, size_t errsz)
{
    EVP_PKEY *pkey = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    FILE *f = NULL;
    int rc = -1;
    if (!pkey || !x) {
        ssl_err(err, errsz, "key generation");
        goto out;
    }
    ASN1_INTEGER_set(X509_get_serialNumber(x), (long)(core_now()));
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 10L * 365 * 86400);
    X509_set_pubkey(x, pkey);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"Moat", -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)hostname, -1, -1, 0);
    X509_set_issuer_name(x, name);
    if (!X509_sign(x, pkey, EVP_sha256())) {
        ssl_err(err, errsz, "certificate signing");
        goto out;
    }
    int kfd = open(keyp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (kfd < 0 || !(f = fdopen(kfd, "w")) || !PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL)) {
        snprintf(err, errsz, "cannot write %s", keyp);
        if (kfd >= 0 && !f)
            close(kfd);
        goto out;
    }
    fclose(f);
    f = fopen(certp, "we");
    if (!f || !PEM_write_X509(f, x)) {
        snprintf(err, errsz, "cannot write %s", certp);
        goto out;
    }
    rc = 0;
out:
    if (f)
        fclose(f);
    X509_free(x);
    EVP_PKEY_free(pkey);
    return rc;
}

SSL_CTX *smtp_tls_server_ctx(const struct moat_config *cfg, char *err, size_t errsz)
{
    char certp[1100], keyp[1100], dir[1060];
    if (cfg->tls_cert[0]) {
        core_strlcpy(certp, cfg->tls_cert, sizeof certp);
        core_strlcpy(keyp, cfg->tls_key, sizeof keyp);
    } else {
        snprintf(dir, sizeof dir, "%s/tls", cfg->data_dir);
        snprintf(certp, sizeof certp, "%s/cert.pem", dir);
        snprintf(keyp, sizeof keyp, "%s/key.pem", dir);
        if (access(certp, R_OK) != 0 || access(keyp, R_OK) != 0) {
            if (mkdir(cfg->data_dir, 0700) < 0 && errno != EEXIST) {
                snprintf(err, errsz, "cannot create %s: %s", cfg->data_dir, strerror(errno));
                return NULL;
            }
            if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
                snprintf(err, errsz, "cannot create %s: %s", dir, strerror(errno));
                return NULL;
            }
            if (generate_cert(cfg->hostname, certp, keyp, err, errsz) < 0)
                return NULL;
            log_info("tls generated self-signed certificate path=%s", certp);
        }
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        ssl_err(err, errsz, "SSL_CTX_new");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (SSL_CTX_use_certificate_chain_file(ctx, certp) != 1) {
        ssl_err(err, errsz, certp);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, keyp, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        ssl_err(err, errsz, keyp);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

SSL_CTX *smtp_tls_client_ctx(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    return ctx;
}

void smtp_tls_describe(SSL *ssl, char *out, size_t outsz)
{
    snprintf(out, outsz, "%s %s", SSL_get_version(ssl), SSL_get_cipher_name(ssl));
}
