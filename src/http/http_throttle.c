/*
 * http_throttle.c - login throttling per client address: after
 * max_failures failed logins within `window` seconds, an address gets 429
 * until the oldest of those failures leaves the window. Complements the
 * per-account lock-out in the store (which stops guessing one account from
 * many addresses); this stops one address guessing many accounts.
 *
 *   http_throttle_new / _free      a table of THROTTLE_SLOTS addresses
 *   http_throttle_allowed          may this address try now?
 *   http_throttle_fail / _reset    count a failure / forget the address (success)
 *
 * Bounded memory: a fixed open-addressing table; when it is full the entry
 * with the oldest activity is reused (an attacker spraying addresses can
 * only evict, never grow it). Thread-safe (one mutex). Times are passed in
 * so the logic is unit-tested without sleeping.
 */
#include "http/http_int.h"

#define THROTTLE_SLOTS 4096
#define THROTTLE_PROBE 16

struct throttle_entry {
    char addr[64];
    unsigned count;    /* failures in the window */
    double first;      /* when the window started */
    double last;
};

struct http_throttle {
    pthread_mutex_t mu;
    unsigned max;
    double window;
    struct throttle_entry e[THROTTLE_SLOTS];
};

struct http_throttle *http_throttle_new(unsigned max_failures, double window)
{
    struct http_throttle *t = xcalloc(1, sizeof *t);
    pthread_mutex_init(&t->mu, NULL);
    t->max = max_failures ? max_failures : 1;
    t->window = window;
    return t;
}

void http_throttle_free(struct http_throttle *t)
{
    if (!t)
        return;
    pthread_mutex_destroy(&t->mu);
    free(t);
}

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* find - the entry of addr, or (create) the free / oldest slot of its probe run */
static struct throttle_entry *find(struct http_throttle *t, const char *addr, bool create)
{
    size_t h = (size_t)(hash(addr) % THROTTLE_SLOTS);
    struct throttle_entry *victim = NULL;
    for (size_t i = 0; i < THROTTLE_PROBE; i++) {
        struct throttle_entry *e = &t->e[(h + i) % THROTTLE_SLOTS];
        if (e->addr[0] && strcmp(e->addr, addr) == 0)
            return e;
        if (victim && !victim->addr[0])
            continue; /* an empty slot is the best victim; keep looking only for addr */
        if (!victim || !e->addr[0] || e->last < victim->last)
            victim = e;
    }
    if (!create)
        return NULL;
    memset(victim, 0, sizeof *victim);
    core_strlcpy(victim->addr, addr, sizeof victim->addr);
    return victim;
}

bool http_throttle_allowed(struct http_throttle *t, const char *addr, double now, double *retry_after)
{
    pthread_mutex_lock(&t->mu);
    struct throttle_entry *e = find(t, addr, false);
    bool ok = true;
    if (e && now - e->first >= t->window) {
        e->count = 0;
        e->first = now;
    }
    if (e && e->count >= t->max) {
        ok = false;
        if (retry_after)
            *retry_after = t->window - (now - e->first);
    }
    pthread_mutex_unlock(&t->mu);
    return ok;
}

void http_throttle_fail(struct http_throttle *t, const char *addr, double now)
{
    pthread_mutex_lock(&t->mu);
    struct throttle_entry *e = find(t, addr, true);
    if (e->count == 0 || now - e->first >= t->window) {
        e->count = 0;
        e->first = now;
    }
    e->count++;
    e->last = now;
    pthread_mutex_unlock(&t->mu);
}

void http_throttle_reset(struct http_throttle *t, const char *addr)
{
    pthread_mutex_lock(&t->mu);
    struct throttle_entry *e = find(t, addr, false);
    if (e)
        memset(e, 0, sizeof *e);
    pthread_mutex_unlock(&t->mu);
}
