/*
 * http_static.c - the admin console's files (docs/console.md): a fixed
 * table of URL paths, each mapped to one file of the console directory
 * ($MOAT_CONSOLE_DIR, else MOAT_DATADIR/console) with its Content-Type.
 *
 *   http_static_serve   GET/HEAD of a path in the table: the file, or 304
 *
 * Security notes: nothing of the request becomes part of a file name - a
 * path is looked up in the table (exact match) and only the table's names
 * are opened (O_NOFOLLOW, regular files only, at most HTTP_STATIC_MAX
 * bytes), so there is no traversal to guard against. The console's
 * replies carry a strict Content-Security-Policy (HTTP_CONSOLE_CSP: scripts
 * and styles from this origin only, no inline code, images from this
 * origin or data: URLs - the TOTP QR code -, no plugins, no framing) and
 * are revalidated on every use (Cache-Control: no-cache with an ETag of
 * size, mtime and inode, answered 304 when unchanged): an upgraded console
 * is never mixed with a cached old script.
 */
#include "http/http_int.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <microhttpd.h>

#ifndef MOAT_DATADIR
#define MOAT_DATADIR "data"
#endif

#define HTTP_STATIC_MAX (2 * 1024 * 1024) /* the largest console file */

struct static_file {
    const char *url;  /* exact request path */
    const char *name; /* file in the console directory */
    const char *type; /* Content-Type */
};

#define JS "text/javascript; charset=utf-8"
static const struct static_file files[] = {
    {"/", "index.html", "text/html; charset=utf-8"},
    {"/index.html", "index.html", "text/html; charset=utf-8"},
    {"/console/console.css", "console.css", "text/css; charset=utf-8"},
    {"/console/i18n.js", "i18n.js", JS},
    {"/console/util.js", "util.js", JS},
    {"/console/mime.js", "mime.js", JS},
    {"/console/app.js", "app.js", JS},
    {"/console/account.js", "account.js", JS},
    {"/console/tracking.js", "tracking.js", JS},
    {"/console/quarantine.js", "quarantine.js", JS},
    {"/console/policies.js", "policies.js", JS},
    {"/console/dashboard.js", "dashboard.js", JS},
    {"/console/domains.js", "domains.js", JS},
    {"/console/admin.js", "admin.js", JS},
    {"/console/endusers.js", "endusers.js", JS},
    {"/console/templates.js", "templates.js", JS},
    {"/console/wizard.js", "wizard.js", JS},
    {"/console/welcome.js", "welcome.js", JS},
    {"/console/main.js", "main.js", JS},
    {"/console/favicon.svg", "favicon.svg", "image/svg+xml"},
};
#undef JS

/* console_dir - where the console's files are */
static const char *console_dir(void)
{
    const char *d = getenv("MOAT_CONSOLE_DIR");
    return d && *d ? d : MOAT_DATADIR "/console";
}

/* etag_matches - does an If-None-Match header name etag (or "*")? */
static bool etag_matches(const char *inm, const char *etag)
{
    if (!inm)
        return false;
    size_t n = strlen(etag);
    for (const char *p = inm; *p;) {
        p += strspn(p, " \t,");
        if (strncmp(p, "W/", 2) == 0)
            p += 2;
        size_t len = strcspn(p, " \t,");
        if ((len == 1 && *p == '*') || (len == n && memcmp(p, etag, n) == 0))
            return true;
        p += len;
    }
    return false;
}

int http_static_serve(struct http_request *r)
{
    if (strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0)
        return 0;
    const struct static_file *f = NULL;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        if (strcmp(files[i].url, r->path) == 0) {
            f = &files[i];
            break;
        }
    }
    if (!f)
        return 0;
    r->csp = HTTP_CONSOLE_CSP;
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", console_dir(), f->name);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_size > HTTP_STATIC_MAX) {
        if (fd >= 0)
            close(fd);
        log_warn("http console file unavailable file=%s reason=\"%s\"", path,
                 fd < 0 ? strerror(errno) : "not a regular file or too large");
        http_error(r, 404, "not found");
        return 1;
    }
    snprintf(r->etag, sizeof r->etag, "\"%llx-%llx-%llx\"", (unsigned long long)sb.st_size,
             (unsigned long long)sb.st_mtim.tv_sec * 1000000000ull + (unsigned long long)sb.st_mtim.tv_nsec,
             (unsigned long long)sb.st_ino);
    r->cache_control = "no-cache";
    const char *inm = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "If-None-Match");
    if (etag_matches(inm, r->etag)) {
        close(fd);
        http_reply_text(r, 304, f->type, NULL, 0);
        return 1;
    }
    size_t len = (size_t)sb.st_size, got = 0;
    char *body = xmalloc(len + 1);
    while (got < len) {
        ssize_t n = read(fd, body + got, len - got);
        if (n <= 0) {
            if (n < 0 && errno == EINTR)
                continue;
            break;
        }
        got += (size_t)n;
    }
    close(fd);
    if (got != len) {
        free(body);
        r->etag[0] = '\0';
        http_error(r, 500, "internal error");
        return 1;
    }
    http_reply_text(r, 200, f->type, body, len);
    return 1;
}
