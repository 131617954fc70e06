/*
 * moatctl.h - shared by the moatctl command files (src/cmd/moatctl*.c).
 *
 * moatctl.c parses the global options (-c FILE, --json), loads the
 * configuration and dispatches through moatctl_commands[] (in moatctl.c).
 * A command is a struct moatctl_cmd: either a handler (run) or a group with
 * its own table of subcommands (sub). To add a command group, e.g.
 * "queue list|flush|delete ID", write moatctl_queue.c with
 *     const struct moatctl_cmd moatctl_queue_cmds[] = {{"list", "", "...", cmd_queue_list, NULL}, ..., {0}};
 * declare it below, add {"queue", NULL, "the delivery queue", NULL, moatctl_queue_cmds}
 * to moatctl_commands[] and the file to the moatctl line of meson.build.
 *
 * Handlers get argv[0] = their own name and parse their options themselves
 * (moatctl_getopt_reset before getopt_long). "--json" has already been
 * removed from argv and is in ctx->json. They return an exit code:
 * MOATCTL_OK, MOATCTL_USER (bad input; message on stderr naming what is
 * wrong) or MOATCTL_INTERNAL.
 */
#ifndef MOAT_MOATCTL_H
#define MOAT_MOATCTL_H

#include "core/core.h"

struct store;

enum { MOATCTL_OK = 0, MOATCTL_USER = 1, MOATCTL_INTERNAL = 2 };

struct moatctl {
    const char *config_path; /* NULL: built-in defaults */
    struct moat_config cfg;
    bool json;
    struct store *store; /* opened on first moatctl_store(), closed by main */
};

struct moatctl_cmd {
    const char *name;
    const char *synopsis; /* arguments, for the usage text */
    const char *help;     /* one line */
    int (*run)(struct moatctl *ctx, int argc, char **argv);
    const struct moatctl_cmd *sub; /* a group: subcommands, ended by a NULL name */
};

/* command tables and handlers (moatctl_store.c) */
extern const struct moatctl_cmd moatctl_tracking_cmds[];
int moatctl_cmd_import(struct moatctl *ctx, int argc, char **argv);
int moatctl_cmd_export(struct moatctl *ctx, int argc, char **argv);
/* moatctl_queue.c */
extern const struct moatctl_cmd moatctl_queue_cmds[];
/* moatctl_scan.c */
int moatctl_cmd_scan(struct moatctl *ctx, int argc, char **argv);
/* moatctl_train.c */
int moatctl_cmd_train(struct moatctl *ctx, int argc, char **argv);
/* moatctl_style.c */
extern const struct moatctl_cmd moatctl_style_cmds[];
/* moatctl_quarantine.c */
extern const struct moatctl_cmd moatctl_quarantine_cmds[];
/* moatctl_notify.c */
extern const struct moatctl_cmd moatctl_notify_cmds[];
/* moatctl_domain.c */
extern const struct moatctl_cmd moatctl_tenant_cmds[];
extern const struct moatctl_cmd moatctl_domain_cmds[];
/* moatctl_admin.c */
extern const struct moatctl_cmd moatctl_admin_cmds[];
extern const struct moatctl_cmd moatctl_account_cmds[];
extern const struct moatctl_cmd moatctl_token_cmds[];
/* moatctl_enduser.c */
extern const struct moatctl_cmd moatctl_enduser_cmds[];

/* moatctl_error - print "moatctl: <msg>" on stderr; returns code */
int moatctl_error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* moatctl_usage - print "moatctl CMD: <msg>" and the command's usage; returns MOATCTL_USER */
int moatctl_usage(const char *cmd, const char *synopsis, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* moatctl_store - the store, opened on first use; NULL after printing why */
struct store *moatctl_store(struct moatctl *ctx, int *code);
/* moatctl_getopt_reset - prepare getopt_long for a new argv */
void moatctl_getopt_reset(void);
/* moatctl_parse_time - "now", "30m"/"1h"/"24h"/"7d"/"2w" ago, "@EPOCH", or ISO 8601
 * "2024-05-01", "2024-05-01T09:30[:00[.5]]" (local time unless "Z" or
 * "+09:00" follows); 0 or -1 */
int moatctl_parse_time(const char *s, double now, double *out);
/* moatctl_iso_time - "2024-05-01T00:30:00.000Z" (UTC) */
void moatctl_iso_time(double t, char *out, size_t outsz);
/* moatctl_local_time - "2024-05-01 09:30:00" in local time */
void moatctl_local_time(double t, char *out, size_t outsz);
/* moatctl_print_safe - write s to f with control characters replaced */
void moatctl_print_safe(FILE *f, const char *s);
/* moatctl_read_file - the whole file ("-" = stdin), at most max bytes;
 * NULL with errno (EFBIG when too large) */
char *moatctl_read_file(const char *path, size_t max, size_t *len);

#endif
