/*
 * dns_parse.c - DNS answers into struct dns_answer, and the small pure
 * helpers of domain verification and MX routing.
 *
 *   dns_answer_parse / dns_answer_clear   raw response -> records (fuzzed)
 *   dns_backoff, dns_token_check, dns_mx_host
 *   dns_txt_match, dns_mx_match           the ownership proofs
 *   dns_mx_sort                           RFC 5321 5.1 order
 *   dns_host_name_ok
 *
 * The wire format is decoded by c-ares' own parsers (bounded, well
 * tested); this file decides what of it Moat believes: only records of the
 * queried type, MX targets that are plausible LDH host names (lower-cased,
 * no trailing dot), TXT records with their strings joined (RFC 7208 3.3) and
 * cut at DNS_TXT_MAX, at most DNS_RECORDS_MAX records (for MX the lowest
 * preferences). "MX 0 ." alone is the RFC 7505 null MX. An answer c-ares
 * cannot parse is a temporary failure, never "not found".
 */
#include "core/core.h"

#include <arpa/inet.h>
#include <ares.h>
#include <ctype.h>
#include <netinet/in.h>

#include "dns/dns.h"

void dns_answer_clear(struct dns_answer *a)
{
    for (size_t i = 0; i < a->ntxt; i++)
        free(a->txt[i]);
    memset(a, 0, sizeof *a);
}

bool dns_host_name_ok(const char *h)
{
    size_t n = strlen(h), label = 0;
    if (n == 0 || n > 253)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = h[i];
        if (ch == '.') {
            if (label == 0)
                return false;
            label = 0;
            continue;
        }
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_'))
            return false;
        if (++label > 63)
            return false;
    }
    return label > 0;
}

/* add_mx - keep the DNS_RECORDS_MAX lowest preferences */
static void add_mx(struct dns_answer *a, const char *host, uint16_t pref)
{
    size_t slot = a->nmx;
    if (a->nmx == DNS_RECORDS_MAX) {
        size_t worst = 0;
        for (size_t k = 1; k < a->nmx; k++)
            if (a->mx[k].preference > a->mx[worst].preference)
                worst = k;
        if (a->mx[worst].preference <= pref)
            return;
        slot = worst;
    } else {
        a->nmx++;
    }
    core_strlcpy(a->mx[slot].host, host, sizeof a->mx[slot].host);
    a->mx[slot].preference = pref;
}

static enum dns_result parse_mx(const unsigned char *buf, int len, struct dns_answer *a)
{
    struct ares_mx_reply *mx = NULL;
    int rc = ares_parse_mx_reply(buf, len, &mx);
    if (rc == ARES_ENODATA)
        return DNS_RESULT_NODATA;
    if (rc != ARES_SUCCESS)
        return DNS_RESULT_TEMP;
    bool root = false;
    size_t seen = 0;
    for (struct ares_mx_reply *m = mx; m; m = m->next) {
        char host[DNS_HOST_MAX + 1];
        seen++;
        size_t hl = core_strlcpy(host, m->host ? m->host : "", sizeof host);
        if (hl >= sizeof host)
            continue;
        while (hl > 0 && host[hl - 1] == '.')
            host[--hl] = '\0';
        if (hl == 0) {
            root = true;
            continue;
        }
        for (size_t k = 0; k < hl; k++)
            host[k] = (char)tolower((unsigned char)host[k]);
        if (!dns_host_name_ok(host))
            continue;
        add_mx(a, host, m->priority);
    }
    ares_free_data(mx);
    if (a->nmx == 0 && root) {
        a->null_mx = true;
        return DNS_RESULT_OK;
    }
    if (a->nmx == 0) {
        snprintf(a->err, sizeof a->err, "no usable MX host (%zu record%s)", seen, seen == 1 ? "" : "s");
        return DNS_RESULT_NODATA;
    }
    return DNS_RESULT_OK;
}

static enum dns_result parse_txt(const unsigned char *buf, int len, struct dns_answer *a)
{
    struct ares_txt_ext *txt = NULL;
    int rc = ares_parse_txt_reply_ext(buf, len, &txt);
    if (rc == ARES_ENODATA)
        return DNS_RESULT_NODATA;
    if (rc != ARES_SUCCESS)
        return DNS_RESULT_TEMP;
    struct buf cur;
    bool open = false;
    buf_init(&cur, DNS_TXT_MAX);
    for (struct ares_txt_ext *t = txt;; t = t->next) {
        if ((!t || t->record_start) && open) {
            if (a->ntxt < DNS_RECORDS_MAX) {
                char *s = xmalloc(cur.len + 1);
                if (cur.len)
                    memcpy(s, cur.ptr, cur.len);
                s[cur.len] = '\0';
                /* a NUL inside a TXT string ends it for our purposes */
                a->txt[a->ntxt++] = s;
            }
            cur.len = 0;
            open = false;
        }
        if (!t)
            break;
        open = true;
        size_t room = DNS_TXT_MAX - cur.len;
        size_t take = t->length < room ? t->length : room;
        if (take && buf_append(&cur, t->txt, take) < 0)
            break;
    }
    buf_free(&cur);
    ares_free_data(txt);
    return a->ntxt ? DNS_RESULT_OK : DNS_RESULT_NODATA;
}

static enum dns_result parse_addr(int type, const unsigned char *buf, int len, struct dns_answer *a)
{
    int n = DNS_RECORDS_MAX;
    int rc;
    if (type == DNS_T_A) {
        struct ares_addrttl t[DNS_RECORDS_MAX];
        rc = ares_parse_a_reply(buf, len, NULL, t, &n);
        if (rc == ARES_SUCCESS)
            for (int i = 0; i < n && a->naddr < DNS_RECORDS_MAX; i++) {
                struct sockaddr_in *sin = (struct sockaddr_in *)&a->addr[a->naddr];
                sin->sin_family = AF_INET;
                sin->sin_addr = t[i].ipaddr;
                a->addrlen[a->naddr++] = sizeof *sin;
            }
    } else {
        struct ares_addr6ttl t[DNS_RECORDS_MAX];
        rc = ares_parse_aaaa_reply(buf, len, NULL, t, &n);
        if (rc == ARES_SUCCESS)
            for (int i = 0; i < n && a->naddr < DNS_RECORDS_MAX; i++) {
                struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a->addr[a->naddr];
                sin6->sin6_family = AF_INET6;
                memcpy(&sin6->sin6_addr, &t[i].ip6addr, 16);
                a->addrlen[a->naddr++] = sizeof *sin6;
            }
    }
    if (rc == ARES_ENODATA)
        return DNS_RESULT_NODATA;
    if (rc != ARES_SUCCESS)
        return DNS_RESULT_TEMP;
    return a->naddr ? DNS_RESULT_OK : DNS_RESULT_NODATA;
}

enum dns_result dns_answer_parse(int type, const unsigned char *buf, size_t len, struct dns_answer *out)
{
    dns_answer_clear(out);
    out->type = type;
    if (!buf || len < 12 || len > 65535) {
        out->result = DNS_RESULT_TEMP;
        snprintf(out->err, sizeof out->err, "malformed DNS answer");
        return out->result;
    }
    switch (type) {
    case DNS_T_MX:
        out->result = parse_mx(buf, (int)len, out);
        break;
    case DNS_T_TXT:
        out->result = parse_txt(buf, (int)len, out);
        break;
    case DNS_T_A:
    case DNS_T_AAAA:
        out->result = parse_addr(type, buf, (int)len, out);
        break;
    default:
        out->result = DNS_RESULT_TEMP;
        break;
    }
    if (out->result == DNS_RESULT_TEMP && !out->err[0])
        snprintf(out->err, sizeof out->err, "malformed DNS answer");
    return out->result;
}

/* ---------------------------------------------------------------- verification helpers */
double dns_backoff(unsigned failures, double min, double max)
{
    double d = min > 0 ? min : 1;
    for (unsigned i = 0; i < failures && d < max; i++)
        d *= 2;
    return d < max ? d : max;
}

bool dns_token_check(const char *token)
{
    size_t n = 0;
    for (; token[n]; n++)
        if (!((token[n] >= '0' && token[n] <= '9') || (token[n] >= 'a' && token[n] <= 'f')))
            return false;
    return n == DNS_TOKEN_HEX;
}

int dns_mx_host(const char *company_id, const char *service_domain, char *out, size_t outsz)
{
    size_t sl = strlen(service_domain);
    while (sl > 0 && service_domain[sl - 1] == '.')
        sl--;
    int n = snprintf(out, outsz, "%s.%.*s", company_id, (int)sl, service_domain);
    if (n < 0 || (size_t)n >= outsz || (size_t)n > 253)
        return -1;
    for (char *p = out; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return 0;
}

/* trim - [*s, *e) without surrounding blanks */
static void trim(const char **s, const char **e)
{
    while (*s < *e && (**s == ' ' || **s == '\t'))
        (*s)++;
    while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t'))
        (*e)--;
}

int dns_txt_match(char *const *txt, size_t ntxt, const char *token)
{
    static const char prefix[] = DNS_TXT_PREFIX;
    const size_t pl = sizeof prefix - 1;
    int found = 0;
    for (size_t i = 0; i < ntxt; i++) {
        const char *s = txt[i], *e = s + strlen(s);
        trim(&s, &e);
        if ((size_t)(e - s) < pl || strncasecmp(s, prefix, pl) != 0)
            continue;
        s += pl;
        trim(&s, &e);
        size_t tl = strlen(token);
        if (tl > 0 && (size_t)(e - s) == tl && memcmp(s, token, tl) == 0)
            return 1;
        found = 2;
    }
    return found;
}

bool dns_mx_match(const struct dns_mx *mx, size_t nmx, const char *mx_host)
{
    size_t hl = strlen(mx_host);
    while (hl > 0 && mx_host[hl - 1] == '.')
        hl--;
    if (hl == 0)
        return false;
    for (size_t i = 0; i < nmx; i++) {
        size_t ml = strlen(mx[i].host);
        while (ml > 0 && mx[i].host[ml - 1] == '.')
            ml--;
        if (ml == hl && strncasecmp(mx[i].host, mx_host, hl) == 0)
            return true;
    }
    return false;
}

void dns_mx_sort(struct dns_mx *mx, size_t nmx, uint32_t (*rnd)(void))
{
    /* insertion sort by preference (n <= DNS_RECORDS_MAX) */
    for (size_t i = 1; i < nmx; i++) {
        struct dns_mx t = mx[i];
        size_t j = i;
        while (j > 0 && mx[j - 1].preference > t.preference) {
            mx[j] = mx[j - 1];
            j--;
        }
        mx[j] = t;
    }
    if (!rnd)
        return;
    /* shuffle each run of equal preferences (Fisher-Yates) */
    for (size_t i = 0; i < nmx;) {
        size_t j = i + 1;
        while (j < nmx && mx[j].preference == mx[i].preference)
            j++;
        for (size_t k = j - 1; k > i; k--) {
            size_t r = i + (size_t)(rnd() % (uint32_t)(k - i + 1));
            struct dns_mx t = mx[k];
            mx[k] = mx[r];
            mx[r] = t;
        }
        i = j;
    }
}
