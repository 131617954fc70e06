/*
 * moatctl_style.c - writing-style profiles of high-profile users
 * (detect_style.c; docs/detection.md "BEC"):
 *
 *   moatctl style learn --user ADDR (--tenant ID | --out FILE) DIR...
 *       learn ADDR's profile from the messages in DIR (every regular file,
 *       recursively, in name order) whose From address is ADDR; quoted
 *       replies are cut off and messages with too little own text skipped.
 *       --tenant stores it in the store for that tenant, where the scan
 *       workers pick it up (the tenant's configuration version changes);
 *       --out writes it to FILE
 *   moatctl style check --profile FILE FILE.eml...
 *       print each message's style distance from the profile (one line
 *       each: distance, verdict, file), for calibration and support
 *
 * Messages are parsed by mime_analyse exactly as the scan workers do. The
 * profile is written atomically (FILE.tmp, then rename).
 */
#include "cmd/moatctl.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <sys/stat.h>

#include "detect/detect_int.h"
#include "mime/mime.h"
#include "store/store.h"

#define STYLE_MSG_MAX (64ULL * 1024 * 1024)
#define STYLE_DIR_DEPTH 8

struct learn {
    struct style_profile *p;
    const char *user;
    size_t seen, other, short_text, unreadable;
};

static int cmp_str(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

static void learn_file(struct learn *l, const char *path)
{
    size_t len;
    char *msg = moatctl_read_file(path, STYLE_MSG_MAX, &len);
    if (!msg) {
        l->unreadable++;
        return;
    }
    struct analysis *a = mime_analyse(msg, len, NULL);
    free(msg);
    if (!a) {
        l->unreadable++;
        return;
    }
    l->seen++;
    if (!a->nfrom || !a->from[0].address || strcasecmp(a->from[0].address, l->user) != 0) {
        l->other++;
    } else {
        struct style_sample *s = xmalloc(sizeof *s);
        style_sample_of(a, s);
        if (!style_profile_add(l->p, s))
            l->short_text++;
        free(s);
    }
    analysis_free(a);
}

/* learn_dir - every regular file below dir; -1 (message printed) if dir unreadable */
static int learn_dir(struct learn *l, const char *dir, unsigned depth)
{
    DIR *d = opendir(dir);
    if (!d) {
        moatctl_error(MOATCTL_USER, "style: cannot open %s: %s", dir, strerror(errno));
        return -1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            names = xrealloc(names, cap * sizeof *names);
        }
        names[n++] = xstrdup(e->d_name);
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n; i++) {
        char path[8192];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        free(names[i]);
        if (stat(path, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode) && depth < STYLE_DIR_DEPTH)
            learn_dir(l, path, depth + 1);
        else if (S_ISREG(st.st_mode))
            learn_file(l, path);
    }
    free(names);
    return 0;
}

static int cmd_style_learn(struct moatctl *ctx, int argc, char **argv)
{
    static const char synopsis[] = "--user ADDR (--tenant ID | --out FILE) DIR...";
    static const struct option opts[] = {{"user", required_argument, NULL, 'u'},
                                         {"out", required_argument, NULL, 'o'},
                                         {"tenant", required_argument, NULL, 't'},
                                         {NULL, 0, NULL, 0}};
    const char *user = NULL, *out = NULL, *tenant = NULL;
    int c;
    moatctl_getopt_reset();
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'u')
            user = optarg;
        else if (c == 'o')
            out = optarg;
        else if (c == 't')
            tenant = optarg;
        else
            return moatctl_usage("style learn", synopsis, "unknown option");
    }
    if (!user || (!out && !tenant))
        return moatctl_usage("style learn", synopsis, "--user and one of --tenant or --out are required");
    const char *at = strchr(user, '@');
    if (!at || at == user || !at[1] || strlen(user) > STYLE_MAX_ADDR)
        return moatctl_usage("style learn", synopsis, "--user: an address (local@domain, at most %d bytes)",
                             STYLE_MAX_ADDR);
    if (optind >= argc)
        return moatctl_usage("style learn", synopsis, "at least one DIR is required");
    struct learn l = {.p = style_profile_new(user), .user = user};
    for (int i = optind; i < argc; i++)
        if (learn_dir(&l, argv[i], 0) < 0) {
            style_profile_free(l.p);
            return MOATCTL_USER;
        }
    unsigned n = style_profile_messages(l.p);
    fprintf(stderr,
            "moatctl: style learn: %zu messages read, %zu from other senders, %zu with under %d characters of "
            "own text, %zu unreadable; profile of %s from %u messages\n",
            l.seen, l.other, l.short_text, STYLE_MIN_CHARS, l.unreadable, user, n);
    if (n < STYLE_MIN_MESSAGES) {
        style_profile_free(l.p);
        return moatctl_error(MOATCTL_USER, "style learn: %u usable messages from %s, at least %d are needed", n, user,
                             STYLE_MIN_MESSAGES);
    }
    char err[600];
    if (tenant) {
        int code = MOATCTL_OK;
        struct store *st = moatctl_store(ctx, &code);
        if (!st) {
            style_profile_free(l.p);
            return code;
        }
        char addr[STYLE_MAX_ADDR + 1];
        core_strlcpy(addr, user, sizeof addr);
        for (char *p = addr; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        size_t len;
        unsigned char *blob = style_profile_serialise(l.p, &len);
        int rc = store_style_put(st, tenant, addr, blob, len, err, sizeof err);
        free(blob);
        if (rc < 0) {
            style_profile_free(l.p);
            return moatctl_error(MOATCTL_USER, "style learn: %s", err);
        }
    }
    int rc = out ? style_profile_save(l.p, out, err, sizeof err) : 0;
    style_profile_free(l.p);
    if (rc < 0)
        return moatctl_error(MOATCTL_INTERNAL, "style learn: %s", err);
    return MOATCTL_OK;
}

static int cmd_style_check(struct moatctl *ctx, int argc, char **argv)
{
    static const char synopsis[] = "--profile FILE FILE.eml...";
    static const struct option opts[] = {{"profile", required_argument, NULL, 'p'}, {NULL, 0, NULL, 0}};
    const char *prof = NULL;
    int c;
    moatctl_getopt_reset();
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'p')
            prof = optarg;
        else
            return moatctl_usage("style check", synopsis, "unknown option");
    }
    if (!prof || optind >= argc)
        return moatctl_usage("style check", synopsis, "--profile and at least one message are required");
    char err[600];
    struct style_profile *p = style_profile_load(prof, err, sizeof err);
    if (!p)
        return moatctl_error(MOATCTL_USER, "style check: %s", err);
    int rc = MOATCTL_OK;
    struct style_sample *s = xmalloc(sizeof *s);
    for (int i = optind; i < argc; i++) {
        size_t len;
        char *msg = moatctl_read_file(argv[i], STYLE_MSG_MAX, &len);
        if (!msg) {
            rc = moatctl_error(MOATCTL_USER, "style check: cannot read %s: %s", argv[i], strerror(errno));
            continue;
        }
        struct analysis *a = mime_analyse(msg, len, NULL);
        free(msg);
        if (!a)
            return moatctl_error(MOATCTL_INTERNAL, "style check: out of memory");
        style_sample_of(a, s);
        analysis_free(a);
        struct buf why;
        buf_init(&why, 1500);
        double d = style_distance(p, s, &why);
        const char *verdict = s->nchars < STYLE_MIN_CHARS ? "too-short" : d > STYLE_THRESHOLD ? "far" : "near";
        if (ctx->json) {
            printf("{\"file\":\"");
            moatctl_print_safe(stdout, argv[i]);
            printf("\",\"distance\":%.4f,\"verdict\":\"%s\",\"characters\":%.0f}\n", d, verdict, s->nchars);
        } else {
            printf("%.4f %-9s ", d, verdict);
            moatctl_print_safe(stdout, argv[i]);
            printf(" (%s)\n", buf_cstr(&why));
        }
        buf_free(&why);
    }
    free(s);
    style_profile_free(p);
    return rc;
}

const struct moatctl_cmd moatctl_style_cmds[] = {
    {"learn", "--user ADDR (--tenant ID | --out FILE) DIR...", "learn a high-profile user's writing-style profile from their mail",
     cmd_style_learn, NULL},
    {"check", "--profile FILE FILE.eml...", "style distance of messages from a profile", cmd_style_check, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};
