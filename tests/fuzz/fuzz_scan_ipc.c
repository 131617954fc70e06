/* fuzz_scan_ipc.c - the scan IPC decoders: any bytes decode or fail
 * cleanly; whatever decodes re-encodes to the identical frame. */
#include "core/core.h"
#include "scan/scan.h"

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static unsigned char again[SCAN_IPC_FRAME_MAX];
    struct scan_request rq;
    struct scan_result rs;
    scan_ipc_frame_len(data, size);
    if (scan_ipc_decode_request(data, size, &rq) == 0) {
        long n = scan_ipc_encode_request(&rq, again, sizeof again);
        if (n < 0)
            abort();
        struct scan_request rq2;
        if (scan_ipc_decode_request(again, (size_t)n, &rq2) != 0 || rq2.id != rq.id ||
            strcmp(rq2.path, rq.path) != 0 || !rq2.rcpts != !rq.rcpts ||
            (rq.rcpts && strcmp(rq2.rcpts, rq.rcpts) != 0))
            abort();
        scan_request_clear(&rq);
        scan_request_clear(&rq2);
    }
    if (scan_ipc_decode_result(data, size, &rs) == 0) {
        long n = scan_ipc_encode_result(&rs, again, sizeof again);
        if (n < 0)
            abort();
        struct scan_result rs2;
        if (scan_ipc_decode_result(again, (size_t)n, &rs2) != 0 || rs2.verdict != rs.verdict ||
            !rs2.plan != !rs.plan || (rs.plan && strcmp(rs2.plan, rs.plan) != 0))
            abort();
        scan_result_clear(&rs);
        scan_result_clear(&rs2);
    }
    return 0;
}
