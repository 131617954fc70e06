/* fuzz_dns_answer.c - DNS answers as the resolver receives them from the
 * network: dns_answer_parse for every query type, then the verification
 * matchers on what it kept. Never a crash, never an unchecked host name. */
#include "core/core.h"
#include "dns/dns.h"

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int types[] = {DNS_T_MX, DNS_T_TXT, DNS_T_A, DNS_T_AAAA};
    struct dns_answer a;
    memset(&a, 0, sizeof a);
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        enum dns_result r = dns_answer_parse(types[t], data, size, &a);
        if (r == DNS_RESULT_OK && types[t] == DNS_T_MX) {
            if (a.nmx == 0 && !a.null_mx)
                abort();
            for (size_t i = 0; i < a.nmx; i++)
                if (!dns_host_name_ok(a.mx[i].host))
                    abort();
            dns_mx_sort(a.mx, a.nmx, NULL);
            for (size_t i = 1; i < a.nmx; i++)
                if (a.mx[i - 1].preference > a.mx[i].preference)
                    abort();
            (void)dns_mx_match(a.mx, a.nmx, "acme.in.moat.test");
        }
        if (r == DNS_RESULT_OK && types[t] == DNS_T_TXT) {
            if (a.ntxt == 0 || a.ntxt > DNS_RECORDS_MAX)
                abort();
            for (size_t i = 0; i < a.ntxt; i++)
                if (strlen(a.txt[i]) > DNS_TXT_MAX)
                    abort();
            (void)dns_txt_match(a.txt, a.ntxt, "0123456789abcdef0123456789abcdef");
        }
        dns_answer_clear(&a);
    }
    return 0;
}
