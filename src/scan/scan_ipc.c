/*
 * scan_ipc.c - the typed, versioned frames between moatd and its scan
 * workers (pure functions, fuzzed by tests/fuzz/fuzz_scan_ipc.c).
 *
 * Frame: u32 length (whole frame, big-endian) | u16 version | u16 type |
 * fields. Field: u16 tag | u32 length | value. Integers are big-endian u64;
 * strings carry no NUL (the recipient list and the plan are the two that
 * are allocated). A frame is at most SCAN_IPC_FRAME_MAX bytes. The
 * decoder rejects short frames, unknown/duplicate/missing fields, over-long
 * strings, NUL bytes and trailing data: a compromised worker cannot make the
 * main process read out of bounds or accept a half-understood answer.
 */
#include "core/core.h"
#include "scan/scan.h"

enum { TYPE_REQUEST = 1, TYPE_RESULT = 2 };
enum {
    T_ID = 1, T_PATH, T_DATA_LEN, T_QID, T_VERDICT, T_REPLY, T_SUMMARY, T_MSGID,
    T_SUBJECT, T_FROM, T_HDRCOUNT, T_FLAGS, T_COMPANY, T_MAIL_FROM, T_CLIENT_IP, T_NRCPT, T_DETECTIONS,
    T_DIRECTION, T_RCPTS, T_PLAN, T_VARIANTS, T_MAX
};

struct writer {
    unsigned char *p;
    size_t len, cap;
    bool bad;
};

static void put(struct writer *w, const void *d, size_t n)
{
    if (w->bad || w->cap - w->len < n) {
        w->bad = true;
        return;
    }
    memcpy(w->p + w->len, d, n);
    w->len += n;
}

static void put_be(struct writer *w, uint64_t v, int bytes)
{
    unsigned char b[8];
    for (int i = 0; i < bytes; i++)
        b[i] = (unsigned char)(v >> (8 * (bytes - 1 - i)));
    put(w, b, (size_t)bytes);
}

static void put_u64(struct writer *w, unsigned tag, uint64_t v)
{
    put_be(w, tag, 2);
    put_be(w, 8, 4);
    put_be(w, v, 8);
}

static void put_str(struct writer *w, unsigned tag, const char *s, size_t max)
{
    size_t n = strnlen(s, max + 1);
    if (n > max) {
        w->bad = true;
        return;
    }
    put_be(w, tag, 2);
    put_be(w, n, 4);
    put(w, s, n);
}

static void begin(struct writer *w, unsigned char *out, size_t outsz, unsigned type)
{
    w->p = out;
    w->len = 0;
    w->cap = outsz < SCAN_IPC_FRAME_MAX ? outsz : SCAN_IPC_FRAME_MAX;
    w->bad = false;
    put_be(w, 0, 4);
    put_be(w, SCAN_IPC_VERSION, 2);
    put_be(w, type, 2);
}

static long finish(struct writer *w)
{
    if (w->bad)
        return -1;
    for (int i = 0; i < 4; i++)
        w->p[i] = (unsigned char)(w->len >> (8 * (3 - i)));
    return (long)w->len;
}

long scan_ipc_encode_request(const struct scan_request *r, unsigned char *out, size_t outsz)
{
    struct writer w;
    begin(&w, out, outsz, TYPE_REQUEST);
    put_u64(&w, T_ID, r->id);
    put_str(&w, T_PATH, r->path, SCAN_PATH_MAX - 1);
    put_u64(&w, T_DATA_LEN, r->data_len);
    put_str(&w, T_QID, r->qid, CORE_QID_LEN);
    put_str(&w, T_COMPANY, r->company_id, SCAN_COMPANY_MAX - 1);
    put_str(&w, T_MAIL_FROM, r->mail_from, SCAN_ADDR_MAX - 1);
    put_str(&w, T_CLIENT_IP, r->client_ip, SCAN_IP_MAX - 1);
    put_u64(&w, T_NRCPT, r->nrcpt);
    put_u64(&w, T_DIRECTION, r->direction);
    put_str(&w, T_RCPTS, r->rcpts ? r->rcpts : "", SCAN_RCPTS_MAX);
    if (r->nrcpt > SCAN_RCPT_MAX || r->direction > 1)
        w.bad = true;
    return finish(&w);
}

long scan_ipc_encode_result(const struct scan_result *r, unsigned char *out, size_t outsz)
{
    struct writer w;
    begin(&w, out, outsz, TYPE_RESULT);
    put_u64(&w, T_ID, r->id);
    put_u64(&w, T_VERDICT, r->verdict);
    put_str(&w, T_REPLY, r->reply, SCAN_TEXT_MAX - 1);
    put_str(&w, T_SUMMARY, r->summary, SCAN_TEXT_MAX - 1);
    put_str(&w, T_MSGID, r->message_id, SCAN_TEXT_MAX - 1);
    put_str(&w, T_SUBJECT, r->subject, SCAN_TEXT_MAX - 1);
    put_str(&w, T_FROM, r->from, SCAN_TEXT_MAX - 1);
    put_u64(&w, T_HDRCOUNT, r->header_count);
    put_u64(&w, T_FLAGS, r->flags);
    put_str(&w, T_DETECTIONS, r->detections, SCAN_DETECTIONS_MAX - 1);
    put_str(&w, T_PLAN, r->plan ? r->plan : "", SCAN_PLAN_MAX);
    put_u64(&w, T_VARIANTS, r->variants);
    if (r->variants > SCAN_VARIANTS_MAX)
        w.bad = true;
    return finish(&w);
}

static uint64_t get_be(const unsigned char *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v = (v << 8) | p[i];
    return v;
}

long scan_ipc_frame_len(const unsigned char *p, size_t len)
{
    if (len < 4)
        return -1;
    uint64_t n = get_be(p, 4);
    if (n < 8 || n > SCAN_IPC_FRAME_MAX)
        return -1;
    return (long)n;
}

/* field descriptor for the decoder */
struct field {
    unsigned tag;
    bool is_str;
    size_t max;     /* strings: max length (buffer is max + 1) */
    void *dst;      /* a buffer, or with dyn a char ** (allocated; "" -> NULL) */
    uint64_t limit; /* integers: maximum value */
    bool dyn;
};

/* decode - walk the fields of a frame of the given type into fs[] */
static int decode(const unsigned char *p, size_t len, unsigned type, const struct field *fs, size_t nf)
{
    bool seen[T_MAX] = {false};
    long fl = scan_ipc_frame_len(p, len);
    if (fl < 0 || (size_t)fl != len)
        return -1;
    if (get_be(p + 4, 2) != SCAN_IPC_VERSION || get_be(p + 6, 2) != type)
        return -1;
    size_t off = 8;
    while (off < len) {
        if (len - off < 6)
            return -1;
        unsigned tag = (unsigned)get_be(p + off, 2);
        uint64_t flen = get_be(p + off + 2, 4);
        off += 6;
        if (flen > len - off)
            return -1;
        const struct field *f = NULL;
        for (size_t i = 0; i < nf; i++)
            if (fs[i].tag == tag)
                f = &fs[i];
        if (!f || seen[tag])
            return -1;
        seen[tag] = true;
        if (f->is_str) {
            if (flen > f->max || memchr(p + off, '\0', flen))
                return -1;
            char *d = f->dst;
            if (f->dyn) {
                if (!flen) {
                    off += flen;
                    continue;
                }
                d = xmalloc(flen + 1);
                *(char **)f->dst = d;
            }
            memcpy(d, p + off, flen);
            d[flen] = '\0';
        } else {
            if (flen != 8)
                return -1;
            uint64_t v = get_be(p + off, 8);
            if (v > f->limit)
                return -1;
            if (f->limit <= UINT32_MAX)
                *(uint32_t *)f->dst = (uint32_t)v;
            else
                *(uint64_t *)f->dst = v;
        }
        off += flen;
    }
    for (size_t i = 0; i < nf; i++)
        if (!seen[fs[i].tag])
            return -1;
    return 0;
}

int scan_ipc_decode_request(const unsigned char *p, size_t len, struct scan_request *r)
{
    memset(r, 0, sizeof *r);
    const struct field fs[] = {
        {T_ID, false, 0, &r->id, UINT64_MAX, false},
        {T_PATH, true, SCAN_PATH_MAX - 1, r->path, 0, false},
        {T_DATA_LEN, false, 0, &r->data_len, UINT64_MAX, false},
        {T_QID, true, CORE_QID_LEN, r->qid, 0, false},
        {T_COMPANY, true, SCAN_COMPANY_MAX - 1, r->company_id, 0, false},
        {T_MAIL_FROM, true, SCAN_ADDR_MAX - 1, r->mail_from, 0, false},
        {T_CLIENT_IP, true, SCAN_IP_MAX - 1, r->client_ip, 0, false},
        {T_NRCPT, false, 0, &r->nrcpt, SCAN_RCPT_MAX, false},
        {T_DIRECTION, false, 0, &r->direction, 1, false},
        {T_RCPTS, true, SCAN_RCPTS_MAX, &r->rcpts, 0, true},
    };
    if (decode(p, len, TYPE_REQUEST, fs, sizeof fs / sizeof fs[0]) < 0) {
        scan_request_clear(r);
        return -1;
    }
    return 0;
}

int scan_ipc_decode_result(const unsigned char *p, size_t len, struct scan_result *r)
{
    memset(r, 0, sizeof *r);
    const struct field fs[] = {
        {T_ID, false, 0, &r->id, UINT64_MAX, false},
        {T_VERDICT, false, 0, &r->verdict, SCAN_TEMPFAIL, false},
        {T_REPLY, true, SCAN_TEXT_MAX - 1, r->reply, 0, false},
        {T_SUMMARY, true, SCAN_TEXT_MAX - 1, r->summary, 0, false},
        {T_MSGID, true, SCAN_TEXT_MAX - 1, r->message_id, 0, false},
        {T_SUBJECT, true, SCAN_TEXT_MAX - 1, r->subject, 0, false},
        {T_FROM, true, SCAN_TEXT_MAX - 1, r->from, 0, false},
        {T_HDRCOUNT, false, 0, &r->header_count, UINT32_MAX, false},
        {T_FLAGS, false, 0, &r->flags, UINT32_MAX, false},
        {T_DETECTIONS, true, SCAN_DETECTIONS_MAX - 1, r->detections, 0, false},
        {T_PLAN, true, SCAN_PLAN_MAX, &r->plan, 0, true},
        {T_VARIANTS, false, 0, &r->variants, SCAN_VARIANTS_MAX, false},
    };
    if (decode(p, len, TYPE_RESULT, fs, sizeof fs / sizeof fs[0]) < 0) {
        scan_result_clear(r);
        return -1;
    }
    return 0;
}

void scan_request_clear(struct scan_request *r)
{
    free(r->rcpts);
    r->rcpts = NULL;
}

void scan_result_clear(struct scan_result *r)
{
    free(r->plan);
    r->plan = NULL;
}
