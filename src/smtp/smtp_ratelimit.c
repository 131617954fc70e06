/*
 * smtp_ratelimit.c - in-process rate limit counters (see smtp_ratelimit.h).
 *
 * Each key has a fixed window (start, count) and a blocked-until time. A
 * key over its count is blocked for block_secs; while blocked every hit is
 * refused and not counted. Open-addressing hash table with one mutex
 * (counting is a few nanoseconds; contention is not a concern at two
 * cores). When the table is full, entries whose window and block have both
 * expired are swept; if none can be freed the key is allowed (fail open on
 * memory pressure is preferable to refusing all mail; logged).
 */
#include "core/core.h"
#include "smtp/smtp_ratelimit.h"

#include <pthread.h>

#define KEY_MAX 320

struct rl_entry {
    char key[KEY_MAX];
    bool used;
    double window_start;
    uint32_t count;
    uint32_t window;
    double blocked_until;
};

struct rl_mem {
    pthread_mutex_t lock;
    struct rl_entry *tab;
    size_t cap, used;
};

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* sweep - rebuild the table without expired entries */
static void sweep(struct rl_mem *m, double now)
{
    struct rl_entry *old = m->tab;
    m->tab = xcalloc(m->cap, sizeof *m->tab);
    m->used = 0;
    for (size_t i = 0; i < m->cap; i++) {
        struct rl_entry *e = &old[i];
        if (!e->used || (now >= e->window_start + e->window && now >= e->blocked_until))
            continue;
        size_t j = hash(e->key) & (m->cap - 1);
        while (m->tab[j].used)
            j = (j + 1) & (m->cap - 1);
        m->tab[j] = *e;
        m->used++;
    }
    free(old);
}

static bool mem_hit(void *ctx, const char *key, const struct rate_limit *lim, uint64_t block_secs, double now)
{
    struct rl_mem *m = ctx;
    bool allowed = true;
    if (lim->count == 0)
        return true;
    pthread_mutex_lock(&m->lock);
    size_t j = hash(key) & (m->cap - 1);
    while (m->tab[j].used && strcmp(m->tab[j].key, key) != 0)
        j = (j + 1) & (m->cap - 1);
    struct rl_entry *e = &m->tab[j];
    if (!e->used) {
        if (m->used + 1 > m->cap / 2) {
            sweep(m, now);
            if (m->used + 1 > m->cap / 2) {
                pthread_mutex_unlock(&m->lock);
                log_warn("ratelimit table full keys=%zu", m->used);
                return true;
            }
            j = hash(key) & (m->cap - 1);
            while (m->tab[j].used)
                j = (j + 1) & (m->cap - 1);
            e = &m->tab[j];
        }
        memset(e, 0, sizeof *e);
        e->used = true;
        core_strlcpy(e->key, key, sizeof e->key);
        e->window_start = now;
        m->used++;
    }
    e->window = lim->window;
    if (now < e->blocked_until) {
        allowed = false;
    } else {
        if (now >= e->window_start + lim->window) {
            e->window_start = now;
            e->count = 0;
        }
        if (e->count >= lim->count) {
            e->blocked_until = now + (double)block_secs;
            allowed = false;
        } else {
            e->count++;
        }
    }
    pthread_mutex_unlock(&m->lock);
    return allowed;
}

static void mem_free(void *ctx)
{
    struct rl_mem *m = ctx;
    pthread_mutex_destroy(&m->lock);
    free(m->tab);
    free(m);
}

static const struct ratelimit_ops mem_ops = {"memory", mem_hit, mem_free};

struct ratelimit *ratelimit_memory_new(size_t max_keys)
{
    struct rl_mem *m = xcalloc(1, sizeof *m);
    size_t cap = 64;
    while (cap < max_keys * 2)
        cap *= 2;
    m->cap = cap;
    m->tab = xcalloc(cap, sizeof *m->tab);
    pthread_mutex_init(&m->lock, NULL);
    struct ratelimit *rl = xcalloc(1, sizeof *rl);
    rl->ops = &mem_ops;
    rl->ctx = m;
    return rl;
}

bool ratelimit_hit(struct ratelimit *rl, const char *key, const struct rate_limit *lim, uint64_t block_secs,
                   double now)
{
    return rl->ops->hit(rl->ctx, key, lim, block_secs, now);
}

void ratelimit_free(struct ratelimit *rl)
{
    if (!rl)
        return;
    rl->ops->free(rl->ctx);
    free(rl);
}
