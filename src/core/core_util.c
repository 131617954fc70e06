/*
 * core_util.c - checked number, duration, size and address parsing; time; IDs.
 *
 * Every parser rejects empty input, trailing garbage, signs and overflow.
 * Queue IDs are 20 upper-case hex digits: 13 of microseconds since the epoch
 * (so they sort by arrival) and 7 of a per-process counter mixed with random
 * bits, unique across threads and restarts.
 */
#include "core/core.h"

#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

int core_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (!s || !*s)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        unsigned d = (unsigned)(*s - '0');
        if (v > (max - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* parse_suffixed - number followed by an optional one-letter unit */
static int parse_suffixed(const char *s, const char *units, const uint64_t *mult, uint64_t *out)
{
    char num[32];
    size_t n = strlen(s);
    uint64_t m = 1, v;
    if (n == 0 || n >= sizeof num)
        return -1;
    memcpy(num, s, n + 1);
    const char *u = strchr(units, num[n - 1]);
    if (u && num[n - 1] != '\0') {
        m = mult[u - units];
        num[n - 1] = '\0';
    }
    if (core_parse_u64(num, UINT64_MAX / m, &v) < 0)
        return -1;
    *out = v * m;
    return 0;
}

int core_parse_duration(const char *s, uint64_t *seconds)
{
    static const uint64_t mult[] = {1, 60, 3600, 86400};
    return parse_suffixed(s, "smhd", mult, seconds);
}

int core_parse_size(const char *s, uint64_t *bytes)
{
    static const uint64_t mult[] = {1024, 1024, 1024 * 1024, 1024ULL * 1024 * 1024};
    return parse_suffixed(s, "kKMG", mult, bytes);
}

size_t core_strlcpy(char *dst, const char *src, size_t dstsz)
{
    size_t n = strlen(src);
    if (dstsz) {
        size_t c = n < dstsz - 1 ? n : dstsz - 1;
        memcpy(dst, src, c);
        dst[c] = '\0';
    }
    return n;
}

bool core_strcaseeq(const char *a, const char *b)
{
    return strcasecmp(a, b) == 0;
}

/* core_memcasemem - memchr finds the candidates for the needle's first byte
 * (both cases), so the cost is one fast pass plus a compare per candidate,
 * not a strncasecmp call at every offset */
const char *core_memcasemem(const char *hay, size_t len, const char *needle, size_t n)
{
    if (!hay || !n || n > len)
        return NULL;
    int lo = tolower((unsigned char)needle[0]), up = toupper((unsigned char)needle[0]);
    const char *p = hay, *end = hay + (len - n) + 1; /* candidates start before end */
    while (p < end) {
        const char *a = memchr(p, lo, (size_t)(end - p));
        const char *b = up != lo ? memchr(p, up, (size_t)((a ? a : end) - p)) : NULL;
        const char *c = b ? b : a;
        if (!c)
            return NULL;
        if (strncasecmp(c + 1, needle + 1, n - 1) == 0)
            return c;
        p = c + 1;
    }
    return NULL;
}

int core_parse_hostport(const char *s, char *host, size_t hostsz, uint16_t *port)
{
    const char *colon;
    uint64_t p;
    size_t hl;
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (!end || end[1] != ':')
            return -1;
        hl = (size_t)(end - s - 1);
        s++;
        colon = end + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return -1;
        hl = (size_t)(colon - s);
    }
    if (hl == 0 || hl >= hostsz)
        return -1;
    if (core_parse_u64(colon + 1, 65535, &p) < 0 || p == 0)
        return -1;
    memcpy(host, s, hl);
    host[hl] = '\0';
    *port = (uint16_t)p;
    return 0;
}

double core_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double core_monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static pthread_mutex_t qid_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t qid_last_us;
static uint32_t qid_counter;
static uint32_t qid_salt;
static bool qid_seeded;

void core_qid_new(char out[CORE_QID_LEN + 1])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t us = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
    pthread_mutex_lock(&qid_lock);
    if (!qid_seeded) {
        if (getrandom(&qid_salt, sizeof qid_salt, 0) != (ssize_t)sizeof qid_salt)
            qid_salt = (uint32_t)getpid() * 2654435761u;
        qid_seeded = true;
    }
    if (us <= qid_last_us)
        us = qid_last_us; /* same microsecond: the counter tells them apart */
    else
        qid_counter = 0;
    qid_last_us = us;
    uint32_t c = (qid_counter++ + qid_salt) & 0xFFFFFFFu;
    pthread_mutex_unlock(&qid_lock);
    snprintf(out, CORE_QID_LEN + 1, "%013llX%07X",
             (unsigned long long)(us & 0xFFFFFFFFFFFFFULL), (unsigned)c);
}

bool core_qid_valid(const char *s)
{
    size_t i;
    for (i = 0; s[i]; i++) {
        if (i >= CORE_QID_LEN || !isxdigit((unsigned char)s[i]) || islower((unsigned char)s[i]))
            return false;
    }
    return i == CORE_QID_LEN;
}

/* core_cidr_match - ip inside cidr (see core.h) */
bool core_cidr_match(const char *cidr, const char *ip)
{
    char net[64];
    const char *slash = strchr(cidr, '/');
    size_t nl = slash ? (size_t)(slash - cidr) : strlen(cidr);
    if (nl == 0 || nl >= sizeof net)
        return false;
    memcpy(net, cidr, nl);
    net[nl] = '\0';
    unsigned char a[16], b[16];
    int fam = strchr(net, ':') ? AF_INET6 : AF_INET;
    if (inet_pton(fam, net, a) != 1)
        return false;
    /* an IPv4-mapped IPv6 client matches IPv4 ranges */
    const char *ipp = ip;
    if (fam == AF_INET && strncasecmp(ip, "::ffff:", 7) == 0 && strchr(ip + 7, '.'))
        ipp = ip + 7;
    if (inet_pton(fam, ipp, b) != 1)
        return false;
    unsigned maxbits = fam == AF_INET ? 32 : 128;
    unsigned bits = maxbits;
    if (slash) {
        const char *p = slash + 1;
        if (!*p || strlen(p) > 3)
            return false;
        bits = 0;
        for (; *p; p++) {
            if (*p < '0' || *p > '9')
                return false;
            bits = bits * 10 + (unsigned)(*p - '0');
        }
        if (bits > maxbits)
            return false;
    }
    size_t full = bits / 8;
    if (memcmp(a, b, full) != 0)
        return false;
    unsigned rest = bits % 8;
    if (rest) {
        unsigned char mask = (unsigned char)(0xff << (8 - rest));
        if ((a[full] & mask) != (b[full] & mask))
            return false;
    }
    return true;
}
