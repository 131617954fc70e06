/*
 * smtp_tls.h - OpenSSL contexts for STARTTLS, both directions, and the
 * self-signed certificate moatd creates when none is configured.
 */
#ifndef MOAT_SMTP_TLS_H
#define MOAT_SMTP_TLS_H

#include <openssl/ssl.h>

#include "core/core.h"

/* smtp_tls_server_ctx - TLS 1.2+ server context from cfg->tls_cert/tls_key,
 * or from data_dir/tls/{cert,key}.pem, generated (EC P-256, self-signed,
 * CN = hostname) when missing. NULL with err on failure. */
SSL_CTX *smtp_tls_server_ctx(const struct moat_config *cfg, char *err, size_t errsz);
/* smtp_tls_client_ctx - TLS 1.2+ client context (no verification: the
 * delivery policy decides what a failed handshake means) */
SSL_CTX *smtp_tls_client_ctx(void);
/* smtp_tls_describe - "TLSv1.3 TLS_AES_256_GCM_SHA384" of a session */
void smtp_tls_describe(SSL *ssl, char *out, size_t outsz);

#endif
