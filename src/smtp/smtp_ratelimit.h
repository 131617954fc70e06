/*
 * smtp_ratelimit.h - message-count rate limits behind an interface, so the
 * in-process counter (smtp_ratelimit.c) can be replaced by a shared one
 * (Redis) when several nodes serve the same tenants.
 */
#ifndef MOAT_SMTP_RATELIMIT_H
#define MOAT_SMTP_RATELIMIT_H

#include <stdbool.h>

#include "core/core.h"

struct ratelimit_ops {
    const char *name;
    /* hit - count one message for key; true if allowed, false while the key
     * is over lim (then blocked for block_secs from the moment it went over) */
    bool (*hit)(void *ctx, const char *key, const struct rate_limit *lim, uint64_t block_secs, double now);
    void (*free)(void *ctx);
};

struct ratelimit {
    const struct ratelimit_ops *ops;
    void *ctx;
};

/* ratelimit_memory_new - the in-process implementation (thread-safe,
 * bounded to max_keys entries; the oldest idle keys are swept first) */
struct ratelimit *ratelimit_memory_new(size_t max_keys);
bool ratelimit_hit(struct ratelimit *rl, const char *key, const struct rate_limit *lim, uint64_t block_secs,
                   double now);
void ratelimit_free(struct ratelimit *rl);

#endif
