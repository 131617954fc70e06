/*
 * detect.h - the detectors (issue 4): each reads the analysis (and the raw
 * message) and adds detections and the spam score to it. They run in the
 * scan worker processes and in `moatctl scan`, after mime_analyse.
 *
 * detect.c keeps the table of detectors; each detector lives in its own
 * file (detect_virus.c, detect_spam.c, ...) and is declared in
 * detect_int.h. A detector never fails the scan: an engine error becomes a
 * `scan_exclusion` detection with the reason as evidence.
 */
#ifndef MOAT_DETECT_H
#define MOAT_DETECT_H

#include <stddef.h>

#include "core/core.h"
#include "mime/mime.h"

/* detect_init - load every engine once per process (signatures, models);
 * 0, or -1 with err (the caller logs it; detection then runs degraded and
 * says so in scan_exclusion detections) */
int detect_init(const struct moat_config *cfg, char *err, size_t errsz);
/* detect_run - every detector on one message; msg/len is the raw message */
void detect_run(struct analysis *a, const char *msg, size_t len);
void detect_shutdown(void);

#endif
