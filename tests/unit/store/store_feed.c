/* store_feed.c - test helper: write a few tracking records into DATA_DIR
 * (for test_moatctl.sh). usage: store_feed DATA_DIR */
#include <stdio.h>

#include "core/core.h"
#include "store/store.h"

int main(int argc, char **argv)
{
    struct moat_config cfg;
    char err[256];
    if (argc != 2)
        return 2;
    log_init("store_feed", false, LOG_LVL_WARN);
    config_defaults(&cfg);
    if (config_set(&cfg, "data_dir", argv[1]))
        return 2;
    struct tracker *t = tracker_start(&cfg, err, sizeof err);
    if (!t) {
        fprintf(stderr, "%s\n", err);
        config_free(&cfg);
        return 2;
    }
    double now = core_now();
    const char *r1[] = {"info@example-jp.test", "x@other.test"};
    struct track_message m = {.qid = "0123456789ABCDEF0123",
                              .time = now - 120,
                              .direction = "inbound",
                              .client_ip = "198.51.100.7",
                              .helo = "mail.ext.test",
                              .tls = "TLSv1.3",
                              .sender = "alice@ext.test",
                              .size = 2048,
                              .message_id = "<a@ext.test>",
                              .subject = "\xE8\xAB\x8B\xE6\xB1\x82\xE6\x9B\xB8 invoice\t\x1b[31mred",
                              .header_from = "alice@ext.test",
                              .action = "accepted",
                              .rcpts = r1,
                              .nrcpts = 2};
    tracker_message(t, &m);
    struct track_recipient r = {.qid = "0123456789ABCDEF0123",
                                .time = now - 119,
                                .rcpt = "info@example-jp.test",
                                .status = "delivered",
                                .server = "127.0.0.1:10025 [127.0.0.1]",
                                .reply = "250 2.0.0 Ok: queued as 42"};
    tracker_recipient(t, &r);
    const char *r2[] = {"sales@example-jp.test"};
    struct track_message m2 = {.qid = "OLDOLDOLDOLDOLDOLD00",
                               .time = now - 200 * 86400.0,
                               .sender = "",
                               .subject = "old",
                               .action = "accepted",
                               .rcpts = r2,
                               .nrcpts = 1};
    tracker_message(t, &m2);
    tracker_stop(t);
    config_free(&cfg);
    return 0;
}
