/*
 * detect_int.h - the detector interface inside detect/ (not for other modules).
 * To add a detector: implement these three functions in detect_<name>.c,
 * declare them here, and add one line to the table in detect.c.
 */
#ifndef MOAT_DETECT_INT_H
#define MOAT_DETECT_INT_H

#include "detect/detect.h"

struct detector {
    const char *name;
    int (*init)(const struct moat_config *cfg, char *err, size_t errsz); /* may be NULL */
    void (*run)(struct analysis *a, const char *msg, size_t len);
    void (*shutdown)(void); /* may be NULL */
};

/* declarations of each detector's functions go below */

/* detect_virus.c - libclamav signatures and malware heuristics */
int detect_virus_init(const struct moat_config *cfg, char *err, size_t errsz);
void detect_virus_run(struct analysis *a, const char *msg, size_t len);
void detect_virus_shutdown(void);

#endif
