/*
 * quarantine.c - quarantined copies: files, index rows, release, purge (the
 * layout and the release hook are described in quarantine.h).
 *
 *   quarantine_open / close        data_dir/quarantine and its tmp/
 *   quarantine_put                 compress + checksum + fsync + rename, then index
 *   quarantine_load                index row + verified bytes
 *   quarantine_release             claim, hook, inject into the queue, track
 *   quarantine_delete / purge      rows and files (retention: quarantine_retention)
 *
 * Ownership: struct quarantine borrows the store (one thread at a time).
 * Limits: a message is at most QUARANTINE_MESSAGE_MAX bytes; index text
 * fields are cut to QUARANTINE_FIELD_MAX bytes with controls removed; a
 * purge run handles QUARANTINE_PURGE_BATCH rows per pass.
 * Security: ids are checked (32 lower-case hex) before they become a path
 * component; files are opened O_NOFOLLOW and created O_EXCL, mode 0600; the
 * file header must agree with the index row (size, SHA-256) and the
 * inflated bytes must hash to it, so a swapped, truncated or altered file
 * is refused rather than delivered.
 */
#include "core/core.h"
#include "quarantine/quarantine.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>

#include <openssl/evp.h>
#include <zlib.h>

#define QZ_MAGIC "MOATQZ1"
#define QZ_HEADER_LEN (7 + 1 + 16 + 1 + 64 + 1)

struct quarantine {
    char *dir; /* data_dir/quarantine */
    char *tmp; /* data_dir/quarantine/tmp */
    struct store *st;
};

const char *quarantine_status_text(enum quarantine_status s)
{
    switch (s) {
    case QUARANTINE_OK:
        return "ok";
    case QUARANTINE_NOT_FOUND:
        return "no such quarantined message";
    case QUARANTINE_RELEASED:
        return "the message has already been released";
    case QUARANTINE_CORRUPT:
        return "the stored copy is missing or damaged";
    case QUARANTINE_INVALID:
        return "invalid request";
    case QUARANTINE_ERROR:
        break;
    }
    return "internal error";
}

bool quarantine_id_valid(const char *id)
{
    if (!id)
        return false;
    size_t n = 0;
    for (; id[n]; n++)
        if (n >= STORE_QUARANTINE_ID_LEN ||
            !((id[n] >= '0' && id[n] <= '9') || (id[n] >= 'a' && id[n] <= 'f')))
            return false;
    return n == STORE_QUARANTINE_ID_LEN;
}

/* ---------------------------------------------------------------- files */
static int mkdir_0700(const char *path)
{
    if (mkdir(path, 0700) < 0 && errno != EEXIST)
        return -1;
    struct stat sb;
    if (lstat(path, &sb) < 0 || !S_ISDIR(sb.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

struct quarantine *quarantine_open(const char *data_dir, struct store *st, char *err, size_t errsz)
{
    struct quarantine *q = xcalloc(1, sizeof *q);
    size_t n = strlen(data_dir) + 32;
    q->dir = xmalloc(n);
    q->tmp = xmalloc(n);
    snprintf(q->dir, n, "%s/quarantine", data_dir);
    snprintf(q->tmp, n, "%s/quarantine/tmp", data_dir);
    q->st = st;
    if (mkdir_0700(data_dir) < 0 || mkdir_0700(q->dir) < 0 || mkdir_0700(q->tmp) < 0) {
        snprintf(err, errsz, "cannot create %s: %s", q->tmp, strerror(errno));
        quarantine_close(q);
        return NULL;
    }
    return q;
}

void quarantine_close(struct quarantine *q)
{
    if (!q)
        return;
    free(q->dir);
    free(q->tmp);
    free(q);
}

/* file_path - data_dir/quarantine/<id[0..1]>/<id> (id already checked) */
static void file_path(const struct quarantine *q, const char *id, char *out, size_t outsz)
{
    snprintf(out, outsz, "%s/%.2s/%s", q->dir, id, id);
}

static void new_id(char out[STORE_QUARANTINE_ID_LEN + 1])
{
    unsigned char r[STORE_QUARANTINE_ID_LEN / 2];
    size_t got = 0;
    while (got < sizeof r) {
        ssize_t n = getrandom(r + got, sizeof r - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            fatal("quarantine: getrandom failed: %s", strerror(errno));
        got += (size_t)n;
    }
    for (size_t i = 0; i < sizeof r; i++)
        snprintf(out + 2 * i, 3, "%02x", r[i]);
}

static void sha256_hex(const char *data, size_t len, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
        fatal("quarantine: SHA-256 unavailable");
    for (unsigned i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static int write_all(int fd, const unsigned char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* file_write - the compressed file of id, durable; its size into *stored */
static int file_write(struct quarantine *q, const char *id, const char *data, size_t len, const char *sha,
                      uint64_t *stored, char *err, size_t errsz)
{
    char tmp[1200], sub[1200], dst[1200];
    uLongf zlen = compressBound((uLong)len);
    unsigned char *z = xmalloc(QZ_HEADER_LEN + zlen);
    int fd = -1;
    snprintf((char *)z, QZ_HEADER_LEN + 1, "%s %016llx %s\n", QZ_MAGIC, (unsigned long long)len, sha);
    if (compress2(z + QZ_HEADER_LEN, &zlen, (const Bytef *)data, (uLong)len, 6) != Z_OK) {
        snprintf(err, errsz, "compression failed");
        goto fail;
    }
    snprintf(tmp, sizeof tmp, "%s/%s", q->tmp, id);
    snprintf(sub, sizeof sub, "%s/%.2s", q->dir, id);
    file_path(q, id, dst, sizeof dst);
    if (mkdir_0700(sub) < 0) {
        snprintf(err, errsz, "cannot create %s: %s", sub, strerror(errno));
        goto fail;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        snprintf(err, errsz, "cannot create %s: %s", tmp, strerror(errno));
        goto fail;
    }
    if (write_all(fd, z, QZ_HEADER_LEN + zlen) < 0 || fdatasync(fd) < 0) {
        snprintf(err, errsz, "cannot write %s: %s", tmp, strerror(errno));
        goto fail_unlink;
    }
    close(fd);
    fd = -1;
    if (rename(tmp, dst) < 0) {
        snprintf(err, errsz, "cannot rename into %s: %s", dst, strerror(errno));
        goto fail_unlink;
    }
    if (fsync_dir(sub) < 0) {
        snprintf(err, errsz, "cannot sync %s: %s", sub, strerror(errno));
        unlink(dst);
        goto fail;
    }
    *stored = QZ_HEADER_LEN + zlen;
    free(z);
    return 0;
fail_unlink:
    if (fd >= 0)
        close(fd);
    fd = -1;
    unlink(tmp);
fail:
    if (fd >= 0)
        close(fd);
    free(z);
    return -1;
}

/* file_read - inflate and verify the copy of it into msg */
static enum quarantine_status file_read(struct quarantine *q, const struct store_quarantine_item *it,
                                        struct buf *msg, char *err, size_t errsz)
{
    char path[1200], head[QZ_HEADER_LEN + 1], want[QZ_HEADER_LEN + 1], sha[65];
    enum quarantine_status rc = QUARANTINE_CORRUPT;
    unsigned char *z = NULL;
    char *raw = NULL;
    struct stat sb;
    if (!quarantine_id_valid(it->id) || it->size > QUARANTINE_MESSAGE_MAX) {
        snprintf(err, errsz, "bad index row");
        return QUARANTINE_CORRUPT;
    }
    file_path(q, it->id, path, sizeof path);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        snprintf(err, errsz, "stored copy missing: %s", strerror(errno));
        return QUARANTINE_CORRUPT;
    }
    uLong bound = compressBound((uLong)it->size);
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_size < QZ_HEADER_LEN ||
        (uint64_t)sb.st_size - QZ_HEADER_LEN > bound) {
        snprintf(err, errsz, "stored copy has a wrong size");
        goto done;
    }
    size_t flen = (size_t)sb.st_size;
    z = xmalloc(flen);
    size_t got = 0;
    while (got < flen) {
        ssize_t r = pread(fd, z + got, flen - got, (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    if (got != flen) {
        snprintf(err, errsz, "stored copy unreadable");
        goto done;
    }
    memcpy(head, z, QZ_HEADER_LEN);
    head[QZ_HEADER_LEN] = '\0';
    snprintf(want, sizeof want, "%s %016llx %s\n", QZ_MAGIC, (unsigned long long)it->size, it->sha256);
    if (strcmp(head, want) != 0) {
        snprintf(err, errsz, "stored copy does not match its index entry");
        goto done;
    }
    raw = xmalloc(it->size ? it->size : 1);
    uLongf rlen = (uLongf)it->size;
    if (uncompress((Bytef *)raw, &rlen, z + QZ_HEADER_LEN, (uLong)(flen - QZ_HEADER_LEN)) != Z_OK ||
        rlen != (uLongf)it->size) {
        snprintf(err, errsz, "stored copy is damaged (decompression failed)");
        goto done;
    }
    sha256_hex(raw, rlen, sha);
    if (strcmp(sha, it->sha256) != 0) {
        snprintf(err, errsz, "stored copy is damaged (checksum mismatch)");
        goto done;
    }
    if (buf_append(msg, raw, rlen) < 0) {
        snprintf(err, errsz, "message larger than the buffer allows");
        rc = QUARANTINE_ERROR;
        goto done;
    }
    rc = QUARANTINE_OK;
done:
    close(fd);
    free(z);
    free(raw);
    return rc;
}

/* ---------------------------------------------------------------- header fields */
/* clean_field - a copy without controls (tabs become spaces), cut at a
 * UTF-8 character boundary to outsz - 1 bytes; NULL in, "" out */
static char *clean_field(const char *in, char *out, size_t outsz)
{
    size_t o = 0;
    const unsigned char *p = (const unsigned char *)(in ? in : "");
    for (; *p && o + 1 < outsz; p++) {
        unsigned char c = *p == '\t' ? ' ' : *p;
        if (c < 0x20 || c == 0x7f)
            continue;
        out[o++] = (char)c;
    }
    if (*p && o > 0) {
        /* cut: drop a multi-byte sequence left incomplete at the end */
        size_t k = o;
        while (k > 0 && ((unsigned char)out[k - 1] & 0xC0) == 0x80)
            k--;
        if (k > 0 && ((unsigned char)out[k - 1] & 0xC0) == 0xC0) {
            unsigned char lead = (unsigned char)out[k - 1];
            size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
            if (o - (k - 1) < need)
                o = k - 1;
        }
    }
    out[o] = '\0';
    return out;
}

/* field_dup - clean_field into a new string of at most max bytes; NULL in, NULL out */
static char *field_dup(const char *in, size_t max)
{
    if (!in)
        return NULL;
    char *out = xmalloc(max + 1);
    clean_field(in, out, max + 1);
    return out;
}

/* ---------------------------------------------------------------- put / load */
static void file_remove(struct quarantine *q, const char *id)
{
    char path[1200];
    file_path(q, id, path, sizeof path);
    if (unlink(path) < 0 && errno != ENOENT)
        log_warn("quarantine cannot remove path=%s error=\"%s\"", path, strerror(errno));
}

enum quarantine_status quarantine_put(struct quarantine *q, const struct quarantine_put_info *info,
                                      const char *data, size_t len, char id_out[STORE_QUARANTINE_ID_LEN + 1],
                                      char *err, size_t errsz)
{
    char field[QUARANTINE_FIELD_MAX + 1];
    id_out[0] = '\0';
    if (!info->company_id || !info->company_id[0] || !info->rcpt || !info->rcpt[0] || !info->sender ||
        !core_qid_valid(info->qid)) {
        snprintf(err, errsz, "company_id, qid, rcpt and sender are required");
        return QUARANTINE_INVALID;
    }
    if (len > QUARANTINE_MESSAGE_MAX) {
        snprintf(err, errsz, "message of %zu bytes is larger than %zu", len, QUARANTINE_MESSAGE_MAX);
        return QUARANTINE_INVALID;
    }
    if (info->detections && strlen(info->detections) > QUARANTINE_DETECTIONS_MAX) {
        snprintf(err, errsz, "detections summary larger than %d bytes", QUARANTINE_DETECTIONS_MAX);
        return QUARANTINE_INVALID;
    }
    struct store_quarantine_item it;
    memset(&it, 0, sizeof it);
    new_id(it.id);
    core_strlcpy(it.qid, info->qid, sizeof it.qid);
    it.company_id = field_dup(info->company_id, 63);
    it.rcpt = field_dup(info->rcpt, 510);
    it.sender = field_dup(info->sender, 510);
    if (info->header_from)
        core_strlcpy(field, info->header_from, sizeof field);
    else if (!core_header_value(data, len, "From", field, sizeof field))
        field[0] = '\0';
    it.header_from = field_dup(field, QUARANTINE_FIELD_MAX);
    if (info->subject)
        core_strlcpy(field, info->subject, sizeof field);
    else if (!core_header_value(data, len, "Subject", field, sizeof field))
        field[0] = '\0';
    it.subject = field_dup(field, QUARANTINE_FIELD_MAX);
    it.rule = field_dup(info->rule, 255);
    it.rule_order = info->rule_order;
    it.reason = field_dup(info->reason, QUARANTINE_FIELD_MAX);
    it.detections = info->detections ? xstrdup(info->detections) : NULL;
    it.scan = field_dup(info->scan, QUARANTINE_FIELD_MAX);
    it.direction = field_dup(info->direction ? info->direction : "inbound", 16);
    it.orcpt = field_dup(info->orcpt, 600);
    it.envid = field_dup(info->envid, 200);
    it.client_ip = field_dup(info->client_ip, 64);
    it.helo = field_dup(info->helo, 300);
    it.smtputf8 = info->smtputf8;
    it.eightbit = info->eightbit;
    it.time = info->time > 0 ? info->time : core_now();
    it.size = len;
    sha256_hex(data, len, it.sha256);
    enum quarantine_status rc = QUARANTINE_ERROR;
    if (file_write(q, it.id, data, len, it.sha256, &it.stored_size, err, errsz) < 0)
        goto out;
    if (store_quarantine_insert(q->st, &it) < 0) {
        file_remove(q, it.id);
        snprintf(err, errsz, "cannot index the quarantined message");
        goto out;
    }
    log_info("quarantine stored id=%s qid=%s company=%s size=%zu stored=%llu", it.id, it.qid, it.company_id,
             len, (unsigned long long)it.stored_size);
    core_strlcpy(id_out, it.id, STORE_QUARANTINE_ID_LEN + 1);
    rc = QUARANTINE_OK;
out:
    store_quarantine_item_free(&it);
    return rc;
}

enum quarantine_status quarantine_load(struct quarantine *q, const char *company_id, const char *id,
                                       struct store_quarantine_item *item, struct buf *msg, char *err,
                                       size_t errsz)
{
    memset(item, 0, sizeof *item);
    if (!quarantine_id_valid(id)) {
        snprintf(err, errsz, "%s", quarantine_status_text(QUARANTINE_NOT_FOUND));
        return QUARANTINE_NOT_FOUND;
    }
    int rc = store_quarantine_get(q->st, company_id, id, item);
    if (rc != 0) {
        snprintf(err, errsz, "%s", quarantine_status_text(rc > 0 ? QUARANTINE_NOT_FOUND : QUARANTINE_ERROR));
        return rc > 0 ? QUARANTINE_NOT_FOUND : QUARANTINE_ERROR;
    }
    enum quarantine_status s = file_read(q, item, msg, err, errsz);
    if (s != QUARANTINE_OK)
        log_error("quarantine unreadable id=%s reason=\"%s\"", id, err);
    return s;
}

/* ---------------------------------------------------------------- release */
/* release_envelope - the envelope of the released copy (one recipient) */
static void release_envelope(const struct store_quarantine_item *it, const char *qid,
                             struct queue_envelope *env)
{
    memset(env, 0, sizeof *env);
    core_strlcpy(env->qid, qid, sizeof env->qid);
    env->arrival = core_now();
    env->sender = xstrdup(it->sender);
    env->rcpts = xcalloc(1, sizeof *env->rcpts);
    env->orcpts = xcalloc(1, sizeof *env->orcpts);
    env->rcpts[0] = xstrdup(it->rcpt);
    env->orcpts[0] = it->orcpt ? xstrdup(it->orcpt) : NULL;
    env->nrcpts = 1;
    env->client_ip = it->client_ip ? xstrdup(it->client_ip) : NULL;
    env->helo = it->helo ? xstrdup(it->helo) : NULL;
    env->envid = it->envid ? xstrdup(it->envid) : NULL;
    env->smtputf8 = it->smtputf8;
    env->eightbit = it->eightbit;
    env->scan_summary = it->scan ? xstrdup(it->scan) : NULL;
    env->subject = it->subject ? xstrdup(it->subject) : NULL;
}

/* track_release - the original's timeline and the new message */
static void track_release(const struct quarantine_release_opts *o, const struct store_quarantine_item *it,
                          const struct queue_envelope *env, const char *why)
{
    char detail[600], reason[200];
    if (!o->tracker)
        return;
    const char *actor = o->actor && o->actor[0] ? o->actor : "the administrator";
    if (env)
        snprintf(detail, sizeof detail, "released from quarantine %s by %s; queued as %s", it->id, actor,
                 env->qid);
    else
        snprintf(detail, sizeof detail, "released from quarantine %s by %s; %s", it->id, actor, why);
    struct track_event ev = {
        .qid = it->qid, .time = core_now(), .rcpt = it->rcpt, .event = "released", .detail = detail};
    tracker_event(o->tracker, &ev);
    if (!env)
        return;
    snprintf(reason, sizeof reason, "released from quarantine %s (original %s)", it->id, it->qid);
    const char *const one[] = {env->rcpts[0]};
    const char *const company[] = {it->company_id};
    struct track_message m = {.qid = env->qid,
                              .time = env->arrival,
                              .direction = it->direction,
                              .client_ip = it->client_ip,
                              .helo = it->helo,
                              .sender = env->sender,
                              .size = env->data_len,
                              .subject = it->subject,
                              .header_from = it->header_from,
                              .action = "accepted",
                              .reason = reason,
                              .scan = it->scan,
                              .detections = it->detections,
                              .rcpts = one,
                              .rcpt_company = company,
                              .nrcpts = 1};
    tracker_message(o->tracker, &m);
    struct track_recipient r = {
        .qid = env->qid, .time = env->arrival, .rcpt = env->rcpts[0], .status = "queued", .reply = reason};
    tracker_recipient(o->tracker, &r);
}

enum quarantine_status quarantine_release(struct quarantine *q, const char *company_id, const char *id,
                                          const struct quarantine_release_opts *opts,
                                          char new_qid[CORE_QID_LEN + 1], char *err, size_t errsz)
{
    struct store_quarantine_item it;
    struct queue_envelope env;
    struct buf msg;
    char qid[CORE_QID_LEN + 1], why[300] = "";
    enum quarantine_status rc;
    new_qid[0] = '\0';
    memset(&env, 0, sizeof env);
    if (!opts || !opts->inject) {
        snprintf(err, errsz, "no queue to release into");
        return QUARANTINE_INVALID;
    }
    buf_init(&msg, QUARANTINE_MESSAGE_MAX);
    rc = quarantine_load(q, company_id, id, &it, &msg, err, errsz);
    if (rc != QUARANTINE_OK)
        goto out;
    if (it.released > 0 && (it.release_done || it.released >= core_now() - STORE_QUARANTINE_CLAIM_STALE)) {
        snprintf(err, errsz, "%s (queued as %s)", quarantine_status_text(QUARANTINE_RELEASED),
                 it.released_qid);
        rc = QUARANTINE_RELEASED;
        goto out;
    }
    core_qid_new(qid);
    int c = store_quarantine_claim(q->st, company_id, id, qid, core_now());
    if (c != 0) {
        rc = c == 1 ? QUARANTINE_NOT_FOUND : c == 2 ? QUARANTINE_RELEASED : QUARANTINE_ERROR;
        snprintf(err, errsz, "%s", quarantine_status_text(rc));
        goto out;
    }
    release_envelope(&it, qid, &env);
    enum quarantine_after after = QUARANTINE_AFTER_DELIVER;
    if (opts->after_quarantine)
        after = opts->after_quarantine(opts->after_arg, &it, &msg, &env, why, sizeof why);
    if (after == QUARANTINE_AFTER_STOP) {
        if (store_quarantine_release_done(q->st, id, true) < 0) {
            rc = QUARANTINE_ERROR;
            snprintf(err, errsz, "cannot record the release");
            goto out;
        }
        track_release(opts, &it, NULL, why[0] ? why : "handled by the rules after quarantine");
        log_info("quarantine released id=%s qid=%s outcome=\"%s\"", id, it.qid, why);
        snprintf(err, errsz, "%s", why);
        rc = QUARANTINE_OK;
        goto out;
    }
    if (env.nrcpts == 0 || opts->inject(opts->inject_arg, msg.ptr ? msg.ptr : "", msg.len, &env) < 0) {
        store_quarantine_release_done(q->st, id, false);
        snprintf(err, errsz, "cannot queue the released message");
        rc = QUARANTINE_ERROR;
        goto out;
    }
    if (store_quarantine_release_done(q->st, id, true) < 0)
        log_error("quarantine release not recorded id=%s new_qid=%s (queued)", id, env.qid);
    track_release(opts, &it, &env, NULL);
    core_strlcpy(new_qid, env.qid, CORE_QID_LEN + 1);
    log_info("quarantine released id=%s qid=%s new_qid=%s", id, it.qid, env.qid);
    rc = QUARANTINE_OK;
out:
    queue_envelope_free(&env);
    store_quarantine_item_free(&it);
    buf_free(&msg);
    return rc;
}

/* ---------------------------------------------------------------- delete / purge */
enum quarantine_status quarantine_delete(struct quarantine *q, const char *company_id, const char *id,
                                         char *err, size_t errsz)
{
    if (!quarantine_id_valid(id)) {
        snprintf(err, errsz, "%s", quarantine_status_text(QUARANTINE_NOT_FOUND));
        return QUARANTINE_NOT_FOUND;
    }
    int rc = store_quarantine_delete(q->st, company_id, id);
    if (rc != 0) {
        enum quarantine_status s = rc > 0 ? QUARANTINE_NOT_FOUND : QUARANTINE_ERROR;
        snprintf(err, errsz, "%s", quarantine_status_text(s));
        return s;
    }
    /* row first: a crash before the unlink leaves an orphan file that the
     * purge removes, never a row without its file */
    file_remove(q, id);
    log_info("quarantine deleted id=%s", id);
    return QUARANTINE_OK;
}

/* sweep_orphans - files (and tmp/ leftovers) older than before without a row */
static void sweep_orphans(struct quarantine *q, double before)
{
    char sub[1200], path[1400];
    DIR *top = opendir(q->dir);
    struct dirent *de;
    while (top && (de = readdir(top))) {
        if (de->d_name[0] == '.')
            continue;
        bool is_tmp = strcmp(de->d_name, "tmp") == 0;
        snprintf(sub, sizeof sub, "%s/%s", q->dir, de->d_name);
        DIR *d = opendir(sub);
        struct dirent *fe;
        while (d && (fe = readdir(d))) {
            struct stat sb;
            if (fe->d_name[0] == '.')
                continue;
            snprintf(path, sizeof path, "%s/%s", sub, fe->d_name);
            if (lstat(path, &sb) < 0 || !S_ISREG(sb.st_mode) || (double)sb.st_mtime >= before)
                continue;
            if (is_tmp || !quarantine_id_valid(fe->d_name) ||
                store_quarantine_exists(q->st, fe->d_name) == 0) {
                unlink(path);
                log_info("quarantine removed orphan path=%s", path);
            }
        }
        if (d)
            closedir(d);
    }
    if (top)
        closedir(top);
}

long quarantine_purge(struct quarantine *q, double before)
{
    char(*ids)[STORE_QUARANTINE_ID_LEN + 1] = xcalloc(QUARANTINE_PURGE_BATCH, sizeof *ids);
    long total = 0;
    for (;;) {
        long n = store_quarantine_expired(q->st, before, ids, QUARANTINE_PURGE_BATCH);
        if (n < 0) {
            free(ids);
            return -1;
        }
        for (long i = 0; i < n; i++) {
            if (store_quarantine_delete(q->st, NULL, ids[i]) == 0) {
                file_remove(q, ids[i]);
                total++;
            }
        }
        if (n < QUARANTINE_PURGE_BATCH)
            break;
    }
    free(ids);
    sweep_orphans(q, before);
    if (total > 0)
        log_info("quarantine purged messages=%ld", total);
    return total;
}
