/*
 * fuzz.h - the libFuzzer entry point every tests/fuzz/fuzz_<name>.c defines.
 *
 * The same file is linked either with -fsanitize=fuzzer (tests/fuzz/meson.build)
 * or with replay.c, a plain main() that feeds it the seed and regression
 * inputs in the ordinary sanitizer test build.
 */
#ifndef MOAT_FUZZ_H
#define MOAT_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
