/*
 * libFuzzer harness for the response-head parser (clang -fsanitize=fuzzer,address,undefined).
 * Checks, beyond "no crash, no sanitizer report": the head length is within the input, and
 * every header span it reports lies inside the head; and the parse resumed as the bytes arrive
 * (lr_parse_head_resume, as lr_conn.c uses it) gives what the parse of the whole input gives,
 * at the same prefix, fed one byte at a time and in pieces of 1 to 13 bytes cut by the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lr_http.h"

static int same_head(const lr_head *a, const lr_head *b) {
    int i;
    if (a->status != b->status || a->content_length != b->content_length || a->error_at != b->error_at) return 0;
    for (i = 0; i < LR_H_COUNT; i++) {
        const lr_span *p = &a->headers[i], *q = &b->headers[i];
        if (p->present != q->present || p->off != q->off || p->len != q->len) return 0;
    }
    return 1;
}

/* Feed data to a resumed parse in growing prefixes (steps of 1 byte, or of 1 + (7 * byte) % 13
 * bytes). A prefix answers what lr_parse_head answers for it: 0 until the first prefix with a
 * verdict, which is the verdict on the whole input (more bytes never change a verdict). */
static void check_resumed(const uint8_t *data, size_t size, int n, const lr_head *whole, int pieces) {
    static lr_scan scan;
    lr_head h;
    size_t len = 0;
    int r;
    memset(&scan, 0xa5, sizeof scan); /* whatever was there: line = scanned = 0 starts anew */
    scan.line = scan.scanned = 0;
    r = lr_parse_head_resume((const char *)data, 0, &scan);
    while (r == 0 && len < size) {
        len += pieces ? 1 + (size_t)(7 * data[len]) % 13 : 1;
        if (len > size) len = size;
        r = lr_parse_head_resume((const char *)data, len, &scan);
    }
    if (r != n || !same_head(&scan.head, whole)) abort();
    if (r != 0 && len > 0 && pieces == 0 && lr_parse_head((const char *)data, len - 1, &h) != 0) abort();
    if (r == 0 && len != size) abort();
}

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
    check_resumed(data, size, n, &head, 0);
    check_resumed(data, size, n, &head, 1);
    return 0;
}
