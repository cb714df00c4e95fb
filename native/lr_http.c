/*
 * lambdaric native hot path: parsing a Runtime API response head.
 *
 * Plain C99, no allocation, no third-party code. The parser reads at most `len` bytes of
 * `buf`, never writes outside `out`, and hands back the known Lambda-Runtime-* headers as
 * (offset, length) pairs into `buf`, so Python slices them without building a dict of
 * everything. Every decision about what a status or header means stays in Python.
 *
 * lr_parse_head_resume parses the same way in pieces: it keeps the lines parsed so far and
 * how far the search for the next '\n' went, so each byte is looked at about once however
 * the head was cut.
 *
 * Return value of lr_parse_head (and of lr_parse_head_resume):
 *   > 0  length of the head including the blank line (CRLF CRLF or LF LF)
 *     0  incomplete: more bytes are needed
 *   < 0  malformed: -LR_E_* (out->error_at holds the offset of the offending line)
 */
#include "lr_http.h"

#include <string.h>

static int lower(int c) { return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c; }

static int name_is(const char *name, size_t n, const char *want) {
    size_t i;
    for (i = 0; i < n; i++) {
        if (want[i] == '\0' || lower((unsigned char)name[i]) != want[i]) return 0;
    }
    return want[n] == '\0';
}

/* The known headers, in LR_H_* order (lower case). */
#define K0 "lambda-runtime-aws-request-id"
#define K1 "lambda-runtime-deadline-ms"
#define K2 "lambda-runtime-invoked-function-arn"
#define K3 "lambda-runtime-trace-id"
#define K4 "lambda-runtime-client-context"
#define K5 "lambda-runtime-cognito-identity"
#define K6 "lambda-runtime-aws-tenant-id"
#define K7 "lambda-runtime-invocation-id"
#define K8 "content-type"
#define K9 "content-length"
#define K10 "transfer-encoding"
#define K11 "connection"
static const char *const KNOWN[LR_H_COUNT] = {K0, K1, K2, K3, K4, K5, K6, K7, K8, K9, K10, K11};
/* Their lengths: a line's name is compared only with the names of its length (the eight
 * Lambda-Runtime-* names share 15 leading bytes: comparing with each of them cost more than the
 * rest of the parse). */
#define L(k) (sizeof(k) - 1)
static const size_t KNOWN_LEN[LR_H_COUNT] = {L(K0), L(K1), L(K2), L(K3), L(K4), L(K5),
                                             L(K6), L(K7), L(K8), L(K9), L(K10), L(K11)};

/* The end of the line that begins at `line`: the index of its '\n', or -1 when it is not in
 * buf[:len]. *scanned: buf[line:*scanned] is known to hold none (the search starts there, and
 * ends with *scanned = len when it finds none). */
static long line_end(const char *buf, size_t len, size_t line, size_t *scanned) {
    size_t from = *scanned > line ? *scanned : line;
    const char *nl = from < len ? memchr(buf + from, '\n', len - from) : NULL;
    if (!nl) {
        *scanned = len > from ? len : from;
        return -1;
    }
    return (long)(nl - buf);
}

/* Parse the lines of the head from *line on (the status line when *line is 0), adding their
 * headers to `out`; *line and *scanned keep where it stopped for the next call with more bytes.
 * A line is judged only once its '\n' is in, from its own bytes alone, so parsing a head in
 * pieces gives what parsing it whole gives (the split can fall anywhere, inside a CR LF too:
 * only the '\n' ends a line). */
static int parse(const char *buf, size_t len, lr_head *out, size_t *line, size_t *scanned) {
    size_t pos = *line;
    long eol;
    size_t i, stop;
    if (len > LR_MAX_HEAD) len = LR_MAX_HEAD + 1; /* look no further than the limit */

    if (pos == 0) { /* status line: HTTP/1.x SP 3DIGIT [SP reason] */
        eol = line_end(buf, len, 0, scanned);
        if (eol < 0) return len > LR_MAX_HEAD ? -LR_E_TOO_LARGE : 0;
        stop = (size_t)eol;
        if (stop > 0 && buf[stop - 1] == '\r') stop--;
        if (stop < 12 || memcmp(buf, "HTTP/1.", 7) != 0 || buf[8] != ' ') return -LR_E_STATUS;
        for (i = 9; i < 12; i++)
            if (buf[i] < '0' || buf[i] > '9') return -LR_E_STATUS;
        if (stop > 12 && buf[12] != ' ') return -LR_E_STATUS;
        out->status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
        pos = *line = (size_t)eol + 1;
    }

    for (;;) {
        size_t start = pos, colon, vstart, vend;
        int h;
        if (pos >= len) return len > LR_MAX_HEAD ? -LR_E_TOO_LARGE : 0;
        eol = line_end(buf, len, pos, scanned);
        if (eol < 0) return len > LR_MAX_HEAD ? -LR_E_TOO_LARGE : 0;
        stop = (size_t)eol;
        if (stop > start && buf[stop - 1] == '\r') stop--;
        if (stop == start) { /* blank line: end of head */
            if ((size_t)eol + 1 > LR_MAX_HEAD) return -LR_E_TOO_LARGE;
            return (int)((size_t)eol + 1);
        }
        out->error_at = (long)start;
        for (colon = start; colon < stop && buf[colon] != ':'; colon++) {
            unsigned char c = (unsigned char)buf[colon];
            if (c <= ' ' || c >= 0x7f) return -LR_E_HEADER;
        }
        if (colon == start || colon == stop) return -LR_E_HEADER;
        vstart = colon + 1;
        while (vstart < stop && (buf[vstart] == ' ' || buf[vstart] == '\t')) vstart++;
        vend = stop;
        while (vend > vstart && (buf[vend - 1] == ' ' || buf[vend - 1] == '\t')) vend--;
        for (i = vstart; i < vend; i++) {
            if (buf[i] == '\0') return -LR_E_NUL;
            if (buf[i] == '\r') return -LR_E_HEADER; /* a bare CR is no part of a field value */
        }
        for (h = 0; h < LR_H_COUNT; h++) {
            if (colon - start == KNOWN_LEN[h] && name_is(buf + start, colon - start, KNOWN[h])) {
                if (out->headers[h].len != 0 || out->headers[h].present) return -LR_E_REPEATED;
                out->headers[h].present = 1;
                out->headers[h].off = (long)vstart;
                out->headers[h].len = (long)(vend - vstart);
                break;
            }
        }
        pos = *line = (size_t)eol + 1;
    }
}

static void parse_begin(lr_head *out) {
    memset(out, 0, sizeof *out);
    out->content_length = -1;
}

int lr_parse_head(const char *buf, size_t len, lr_head *out) {
    size_t line = 0, scanned = 0;
    parse_begin(out);
    return parse(buf, len, out, &line, &scanned);
}

int lr_parse_head_resume(const char *buf, size_t len, lr_scan *scan) {
    if (scan->line == 0 && scan->scanned == 0) parse_begin(&scan->head);
    return parse(buf, len, &scan->head, &scan->line, &scan->scanned);
}

int lr_content_length(const char *buf, const lr_head *head, long long *value) {
    const lr_span *s = &head->headers[LR_H_CONTENT_LENGTH];
    long long v = 0;
    long i;
    if (!s->present) return 0;
    if (s->len == 0 || s->len > 15) return -LR_E_LENGTH;
    for (i = 0; i < s->len; i++) {
        char c = buf[s->off + i];
        if (c < '0' || c > '9') return -LR_E_LENGTH;
        v = v * 10 + (c - '0');
    }
    *value = v;
    return 1;
}
