/*
 * queue_ctl.c - the client side of the queue control socket, for moatctl.
 *
 * With a daemon running, commands go to data_dir/moatd.sock (one line out,
 * one JSON line back, 10 s timeout). Without one, the spool is read
 * directly: listing parses each committed file's trailer.
 * queue_ctl_inject commits a message into the spool from moatctl and asks
 * the daemon to pick it up; without a daemon, recovery finds it at start.
 */
#include "core/core.h"
#include "queue/queue.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <jansson.h>

int queue_ctl_request(const char *data_dir, const char *cmd, struct buf *out)
{
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof sun);
    sun.sun_family = AF_UNIX;
    if ((size_t)snprintf(sun.sun_path, sizeof sun.sun_path, "%s/moatd.sock", data_dir) >= sizeof sun.sun_path)
        return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
        close(fd);
        return -1;
    }
    char line[300];
    int n = snprintf(line, sizeof line, "%s\n", cmd);
    if (n < 0 || (size_t)n >= sizeof line || write(fd, line, (size_t)n) != n) {
        close(fd);
        return -1;
    }
    char chunk[65536];
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 10000) <= 0)
            break;
        ssize_t r = read(fd, chunk, sizeof chunk);
        if (r <= 0)
            break;
        if (buf_append(out, chunk, (size_t)r) < 0)
            break;
        if (memchr(chunk, '\n', (size_t)r))
            break;
    }
    close(fd);
    return out->len ? 0 : -1;
}

int queue_ctl_inject(const char *data_dir, const char *data, size_t len, struct queue_envelope *env,
                     bool *picked_up)
{
    char err[256], cmd[64];
    *picked_up = false;
    if (!core_qid_valid(env->qid) || env->nrcpts == 0)
        return -1;
    struct spool *sp = spool_open(data_dir, 1, err, sizeof err);
    if (!sp) {
        log_error("queue inject: %s", err);
        return -1;
    }
    int rc = spool_commit_sync(sp, data, len, env);
    spool_close(sp);
    if (rc < 0)
        return -1;
    struct buf out;
    buf_init(&out, 64 * 1024);
    snprintf(cmd, sizeof cmd, "PICKUP %s", env->qid);
    if (queue_ctl_request(data_dir, cmd, &out) == 0) {
        json_error_t je;
        json_t *doc = json_loads(buf_cstr(&out), 0, &je);
        *picked_up = doc && json_is_string(json_object_get(doc, "picked_up"));
        json_decref(doc);
    }
    buf_free(&out);
    return 0;
}

int queue_ctl_list_offline(const char *data_dir, struct buf *out)
{
    char dir[1100], path[1400], err[256];
    snprintf(dir, sizeof dir, "%s/spool/queue", data_dir);
    json_t *a = json_array();
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        struct queue_envelope env;
        if (!core_qid_valid(de->d_name))
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (spool_read_envelope(path, &env, err, sizeof err) < 0)
            continue;
        bool *done = xcalloc(env.nrcpts, sizeof *done);
        unsigned attempts;
        char sdir[1100];
        snprintf(sdir, sizeof sdir, "%s/spool/status", data_dir);
        spool_status_load(sdir, env.qid, done, env.nrcpts, &attempts);
        json_t *o = json_object();
        json_object_set_new(o, "id", json_string(env.qid));
        json_object_set_new(o, "arrival", json_real(env.arrival));
        json_object_set_new(o, "sender", json_string(env.sender));
        json_object_set_new(o, "size", json_integer((json_int_t)env.data_len));
        json_object_set_new(o, "attempts", json_integer(attempts));
        json_t *rs = json_array();
        for (size_t i = 0; i < env.nrcpts; i++) {
            json_t *r = json_object();
            json_object_set_new(r, "address", json_string(env.rcpts[i]));
            json_object_set_new(r, "status", json_string(done[i] ? "done" : "pending"));
            json_array_append_new(rs, r);
        }
        json_object_set_new(o, "recipients", rs);
        json_array_append_new(a, o);
        free(done);
        queue_envelope_free(&env);
    }
    if (d)
        closedir(d);
    json_t *res = json_pack("{s:o}", "queue", a);
    char *text = json_dumps(res, JSON_COMPACT);
    json_decref(res);
    buf_append_str(out, text);
    buf_append(out, "\n", 1);
    free(text);
    return 0;
}
