/*
 * libFuzzer harness for the response-head parser (clang -fsanitize=fuzzer,address,undefined).
 * Checks, beyond "no crash, no sanitizer report": the head length is within the input, and
 * every header span it reports lies inside the head.
 */
#include <stdint.h>
#include <stdlib.h>

#include "lr_http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lr_head head;
    int n = lr_parse_head((const char *)data, size, &head);
    if (n > 0) {
        int i;
        long long length;
        if ((size_t)n > size) abort();
        for (i = 0; i < LR_H_COUNT; i++) {
            const lr_span *s = &head.headers[i];
            if (s->present && (s->off < 0 || s->len < 0 || s->off + s->len > n)) abort();
        }
        (void)lr_content_length((const char *)data, &head, &length);
    }
    return 0;
}
