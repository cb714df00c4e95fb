/*
 * libFuzzer harness for the connection's receive path (lr_conn.c), driven the way
 * lambdaric/transport/native.py drives it:
 *
 *   clang -g -O1 -std=c99 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
 *     -Inative native/lr_http.c native/lr_conn.c native/fuzz_lr_conn.c   (native/fuzz.sh does this)
 *
 * Each input is a scripted Runtime API: after a small header, the bytes a server sends on
 * one keep-alive connection. The harness makes a socketpair, gives one end to lr_init
 * (non-blocking, so a recv with nothing to read is LR_WAIT at once) and plays the server on
 * the other: it delivers the stream in pieces cut where the header says, one piece each
 * time the connection answers LR_WAIT, so reads are cut at arbitrary places; after the last
 * piece it shuts its write side down. Like the runtime it asks for /next, reads the body
 * (in the buffer, lr_read_body, lr_pull + a chunked decoder + lr_unread, or lr_pull to the
 * close), optionally posts the body back with lr_post, and goes on while the connection
 * stays alive. Small send buffers on the runtime's side cut its requests too.
 *
 * Input layout:
 *   byte 0: bits 0-2  number of cut points (0-7)
 *           bit  3    buffer: 0 = 128 KiB (the minimum, 2 * LR_MAX_HEAD), 1 = 256 KiB (native.py)
 *           bits 4-5  body limit: 6 MiB + 100 (MAX_PAYLOAD), 1 MiB, 100000, 16
 *           bit  6    runtime-like: post every /next body back (lr_post) and read that answer
 *           bit  7    small SO_SNDBUF on the runtime's end: requests go out in pieces
 *   byte 1: bits 0-1  post kind: response, error, init error (restore error when the body's
 *                     length is odd), streamed response (lr_post, lr_send_chunk twice,
 *                     lr_send_last_chunk, lr_answer)
 *           bits 2-7  v: lr_pull size: v < 32: 65536 (native.py), else 64 * w * w - 63 bytes,
 *                     w = v - 31 (1 to 65473); 16 <= v < 32: the server closes its end after the last
 *                     piece instead of shutting its write side down (EPIPE, ECONNRESET paths);
 *                     v < 32: bits 3-5 (b) set the answer bound: answer_ms = b ms (0: none), on
 *                     a virtual clock that ticks 1 ms each time a call answers LR_WAIT (one piece
 *                     delivered in between), so an answer cut into more than b + 1 pieces stalls
 *                     (LR_STALLED) deterministically and without sleeping (needs -DLR_FUZZ_CLOCK,
 *                     as fuzz.sh and check_musl.sh build it; without it no bound is set)
 *   then 2 bytes (big-endian) per cut point: the size of each piece; the rest is the last piece.
 *
 * Beyond "no crash, no sanitizer report", it aborts when an invariant breaks:
 *   - after every call: start <= end <= cap, values_len < sizeof values, exactly 8 NULs in
 *     values (one between each of the 9 values) and each value equal to the header in the head;
 *   - LR_DONE: body_off + body_len <= cap, the body lies inside what was received and is
 *     byte for byte the stream's bytes right behind the head; start/end consistent;
 *   - the head of every answer starts exactly where the previous answer ended (nothing
 *     skipped, nothing read twice), and lr_pull / lr_read_body hand out the next stream bytes;
 *   - lr_pull never returns more than asked, a body never exceeds the limit;
 *   - the bytes the runtime sent are exactly the requests (GET /next, the POSTs) in order;
 *   - no endless LR_WAIT once the server has sent everything and shut down;
 *   - a send fails only after the server closed its end, and a failed send inside a stream
 *     is marked `partial` (never "closed before an answer, safe to send again").
 *   - LR_STALLED only with a bound, only once a byte of the awaited answer came in (a /next
 *     with nothing received yet is never cut), only after more than answer_ms ticks since the
 *     call that awaits the answer began, with err ETIMEDOUT and `partial` set;
 *   - what each return code promises (the top of lr_conn.c): LR_BAD always with a reason
 *     (perr, an LR_E_*) and error_at, and the exchange over; LR_OS with err; LR_STALLED with
 *     err ETIMEDOUT and partial;
 *   - the head parse resumed across receives (lr_parse_head_resume) holds, at every LR_WAIT
 *     while a head is awaited, what lr_parse_head of the received bytes gives, an LR_BAD has
 *     the reason and place lr_parse_head gives, and the parse is fresh whenever phase is 0;
 *   - lr_unread always takes back the bytes pulled past a chunked body (this harness found it
 *     refusing them while other bytes were still buffered, which lost the next answer's head).
 *
 * Other builds: -DLR_FUZZ_MAIN adds a main() that runs the files named on its command line
 * (any compiler, no libFuzzer: native/check_musl.sh replays the seeds so); -DLR_FUZZ_TRACE
 * prints every call and its result.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lr_http.h"

#define NEXT_REQUEST                                                                                                   \
    "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: 127.0.0.1:9001\r\nUser-Agent: lambdaric-fuzz\r\n\r\n"
#define COMMON " HTTP/1.1\r\nHost: 127.0.0.1:9001\r\nUser-Agent: lambdaric-fuzz\r\n"
#define MAX_PAYLOAD 6291556LL
#define MAX_ANSWER (1024LL * 1024)
#define CHUNK_LINE_MAX 8192

#define CHECK(cond)                                                                                                    \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            fprintf(stderr, "fuzz_lr_conn: invariant broken at line %d: %s\n", __LINE__, #cond);                      \
            abort();                                                                                                   \
        }                                                                                                              \
    } while (0)

typedef struct {
    char *p;
    size_t len, cap;
} bytes;

static void put(bytes *b, const void *src, size_t n) {
    if (b->len + n > b->cap || b->p == NULL) { /* always allocated: memcmp and memcpy want a pointer */
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n) cap *= 2;
        b->p = realloc(b->p, cap);
        CHECK(b->p != NULL);
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void puts_(bytes *b, const char *s) { put(b, s, strlen(s)); }

/* The server's side of the socketpair. */
typedef struct {
    int rt, srv;
    const char *stream;
    size_t len, written;
    size_t bounds[9]; /* ends of the pieces */
    int nbounds;
    int shut;
    int close_at_end; /* close the server's end after the last piece instead of shutting down */
    bytes sent;       /* what the runtime sent */
    bytes expect;     /* what it should have sent */
} server;

/* Deliver the next piece (or shut down after the last one) and drain what the runtime sent.
 * Returns 1 when anything happened. */
static int pump(server *s) {
    int progress = 0;
    char tmp[65536];
    for (; s->srv >= 0;) {
        ssize_t r = recv(s->srv, tmp, sizeof tmp, MSG_DONTWAIT);
        if (r <= 0) break;
        put(&s->sent, tmp, (size_t)r);
        progress = 1;
    }
    if (s->written < s->len) {
        size_t end = s->len;
        ssize_t w;
        int i;
        for (i = 0; i < s->nbounds; i++) {
            if (s->bounds[i] > s->written) {
                end = s->bounds[i];
                break;
            }
        }
        w = send(s->srv, s->stream + s->written, end - s->written, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w > 0) {
            s->written += (size_t)w;
            progress = 1;
        } else {
            CHECK(w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
        }
    } else if (!s->shut) {
        if (s->close_at_end) { /* the runtime's sends now fail (EPIPE), its reads may see ECONNRESET */
            CHECK(close(s->srv) == 0);
            s->srv = -1;
        } else {
            CHECK(shutdown(s->srv, SHUT_WR) == 0);
        }
        s->shut = 1;
        progress = 1;
    }
    return progress;
}

/* Bytes received by the runtime's end so far: written minus what is still queued. */
static size_t received(server *s) {
    int queued = 0;
    CHECK(ioctl(s->rt, FIONREAD, &queued) == 0 && queued >= 0 && (size_t)queued <= s->written);
    return s->written - (size_t)queued;
}

typedef struct {
    server *s;
    lr_conn *c;
    long long t_answer; /* the virtual clock when the call awaiting the current answer began */
    size_t answer_at;   /* the stream offset of that answer's first byte */
} ctx;

/* The virtual clock lr_conn.c reads with -DLR_FUZZ_CLOCK (ms; RUN ticks it on each LR_WAIT). */
static long long fuzz_clock;
long long lr_fuzz_now_ms(void);
long long lr_fuzz_now_ms(void) { return fuzz_clock; }

/* Stream offset of the next byte the caller has not been given yet. */
static size_t position(ctx *x) { return received(x->s) - (x->c->end - x->c->start); }

static void check_state(ctx *x) {
    lr_conn *c = x->c;
    const char *p = c->values, *end, *z;
    int nuls = 0;
    CHECK(c->start <= c->end && c->end <= c->cap);
    CHECK(c->values_len < sizeof c->values);
    end = c->values + c->values_len;
    while ((z = memchr(p, '\0', (size_t)(end - p))) != NULL) { /* (memchr: not instrumented, fast) */
        nuls++;
        p = z + 1;
    }
    CHECK(c->values_len == 0 || nuls == LR_H_CONTENT_TYPE);
    if (c->phase == 0) CHECK(c->scan.line == 0 && c->scan.scanned == 0); /* each head parsed anew */
}

static int same_head(const lr_head *a, const lr_head *b) {
    int i;
    if (a->status != b->status || a->content_length != b->content_length || a->error_at != b->error_at) return 0;
    for (i = 0; i < LR_H_COUNT; i++) {
        const lr_span *p = &a->headers[i], *q = &b->headers[i];
        if (p->present != q->present || p->off != q->off || p->len != q->len) return 0;
    }
    return 1;
}

/* The parse resumed across receives holds what parsing the received bytes whole gives. */
static void check_scan(ctx *x) {
    lr_conn *c = x->c;
    lr_head h;
    CHECK(lr_parse_head(c->buf + c->start, c->end - c->start, &h) == 0);
    CHECK(same_head(&h, &c->scan.head));
}

/* An answer refused with LR_BAD: for the reason lr_parse_head gives for the bytes received
 * (the resumed parse refuses what the whole parse refuses, at the same line), or for its
 * Content-Length once its head was complete. */
static void check_refused(ctx *x) {
    lr_conn *c = x->c;
    lr_head h;
    int n = lr_parse_head(c->buf + c->start, c->end - c->start, &h);
    if (c->perr == LR_E_LENGTH || c->perr == LR_E_BODY_LIMIT) {
        CHECK(n > 0);
    } else {
        CHECK(n == -c->perr && h.error_at == c->error_at);
    }
}

/* Value i of the NUL-joined values block, split as native.py splits it (bounded by values_len,
 * the bytes behind it may be stale), copied NUL-terminated into out. */
static size_t value(const lr_conn *c, int i, char *out, size_t outsize) {
    const char *p = c->values, *end = c->values + c->values_len, *z;
    size_t n;
    for (; i > 0; i--) {
        z = memchr(p, '\0', (size_t)(end - p));
        CHECK(z != NULL);
        p = z + 1;
    }
    z = memchr(p, '\0', (size_t)(end - p));
    n = z ? (size_t)(z - p) : (size_t)(end - p);
    CHECK(n < outsize);
    memcpy(out, p, n);
    out[n] = '\0';
    return n;
}

/* The values block against the head at stream offset `at` (head_len bytes). */
static void check_values(ctx *x, size_t at) {
    static char v[LR_VALUES_SIZE];
    lr_conn *c = x->c;
    lr_head h;
    const char *head = x->s->stream + at;
    int i, n;
    CHECK(at + c->head_len <= x->s->len);
    CHECK(c->head_len >= 7 && memcmp(head, "HTTP/1.", 7) == 0);
    n = lr_parse_head(head, c->head_len, &h);
    CHECK(n == (int)c->head_len);
    CHECK(h.status == c->status);
    for (i = 0; i <= LR_H_CONTENT_TYPE; i++) {
        const lr_span *sp = &h.headers[i];
        size_t len = value(c, i, v, sizeof v);
        CHECK(len == (sp->present ? (size_t)sp->len : 0));
        CHECK(len == 0 || memcmp(v, head + sp->off, len) == 0);
    }
}

/* An answer is awaited from now on (lr_next, lr_post, lr_answer): for the stall checks. */
static void awaiting(ctx *x) {
    x->t_answer = fuzz_clock;
    x->answer_at = position(x);
}

/* A call returned LR_STALLED: the bound is on, the answer had begun, and it ran out. */
static void check_stalled(ctx *x) {
    lr_conn *c = x->c;
    CHECK(c->answer_ms > 0 && c->answer_end != 0);
    CHECK(received(x->s) > x->answer_at);                   /* a byte of this answer came in */
    CHECK(c->answer_end - c->answer_ms >= x->t_answer);     /* armed by it, not earlier */
    CHECK(fuzz_clock > c->answer_end);                      /* and only once the bound ran out */
    CHECK(c->err == ETIMEDOUT && c->partial);
}

/* What every return code promises about the fields (the top of lr_conn.c). */
static void check_rc(ctx *x, long rc) {
    lr_conn *c = x->c;
    if (rc == LR_BAD) { /* always a reason and where; the exchange is over */
        CHECK(c->perr >= LR_E_STATUS && c->perr <= LR_E_UNSAFE);
        CHECK(c->error_at >= 0 && c->error_at <= LR_MAX_HEAD);
        CHECK(c->phase == 0 && !c->have_head);
    }
    if (rc == LR_OS) CHECK(c->err != 0);
    if (rc == LR_WAIT && c->phase == 1 && !c->have_head) check_scan(x); /* waiting for more of a head */
    if (rc == LR_STALLED) CHECK(c->err == ETIMEDOUT && c->partial);
}

#ifdef LR_FUZZ_TRACE /* -DLR_FUZZ_TRACE: print every call and its result */
#define TRACE(what, rc) fprintf(stderr, "%.40s -> %ld\n", what, rc)
#else
#define TRACE(what, rc) ((void)0)
#endif

/* Call an exchange function until it stops answering LR_WAIT, delivering a piece in between. */
#define RUN(x, rc, call)                                                                                               \
    do {                                                                                                               \
        int idle_ = 0;                                                                                                 \
        for (;;) {                                                                                                     \
            rc = (call);                                                                                               \
            TRACE(#call, (long)rc);                                                                                    \
            check_state(x);                                                                                            \
            check_rc(x, (long)rc);                                                                                     \
            if (rc != LR_WAIT) break;                                                                                  \
            fuzz_clock++;                                                                                              \
            if (pump((x)->s))                                                                                          \
                idle_ = 0;                                                                                             \
            else                                                                                                       \
                CHECK(++idle_ < 100); /* everything sent and shut down, yet it waits */                             \
        }                                                                                                              \
    } while (0)

/* A chunked-body decoder with the rules of answers.ChunkedDecoder (lambdaric/answers.py). */
typedef struct {
    int state; /* 0 size line, 1 data, 2 CRLF after data, 3 trailers, 4 done */
    size_t left;
    long long size, limit;
    size_t line_len;
    char line[CHUNK_LINE_MAX + 65536]; /* a partial size or trailer line, or the CRLF after data */
} chunked;

static int is_space(int ch) { return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f'; }

static int hex(int ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* Returns -1 on a malformed body, 0 when more is needed, 1 when done (*leftover_at set). */
static int chunked_feed(chunked *d, bytes *body, const char *data, size_t n, size_t *leftover_at) {
    size_t pos = 0;
    /* a pending partial line (or one byte of a CRLF) is kept in d->line, as Python keeps _buf */
    while (pos < n || d->state == 1) {
        if (d->state == 1) {
            size_t take = d->left < n - pos ? d->left : n - pos;
            put(body, data + pos, take);
            d->left -= take;
            pos += take;
            if (d->left) return 0;
            d->state = 2;
            continue;
        }
        if (d->state == 2) {
            while (d->line_len < 2 && pos < n) d->line[d->line_len++] = data[pos++];
            if (d->line_len < 2) return 0;
            if (d->line[0] != '\r' || d->line[1] != '\n') return -1;
            d->line_len = 0;
            d->state = 0;
            continue;
        }
        {
            const char *nl = memchr(data + pos, '\n', n - pos);
            size_t take = nl ? (size_t)(nl - (data + pos)) : n - pos;
            size_t len, i, a, b;
            long long size = 0;
            CHECK(d->line_len + take <= sizeof d->line);
            memcpy(d->line + d->line_len, data + pos, take);
            d->line_len += take;
            pos += take;
            if (!nl) {
                if (d->line_len > CHUNK_LINE_MAX) return -1;
                return 0;
            }
            pos++; /* the '\n' */
            len = d->line_len;
            d->line_len = 0;
            while (len && d->line[len - 1] == '\r') len--;
            if (d->state == 3) {
                if (len == 0) {
                    d->state = 4;
                    *leftover_at = pos;
                    return 1;
                }
                continue;
            }
            for (b = 0; b < len && d->line[b] != ';'; b++) {
            }
            a = 0;
            while (a < b && is_space((unsigned char)d->line[a])) a++;
            while (b > a && is_space((unsigned char)d->line[b - 1])) b--;
            if (a == b || b - a > 15) return -1;
            for (i = a; i < b; i++) {
                int h = hex((unsigned char)d->line[i]);
                if (h < 0) return -1;
                size = size * 16 + h;
            }
            if (size == 0) {
                d->state = 3;
                continue;
            }
            d->size += size;
            if (d->size > d->limit) return -1;
            d->state = 1;
            d->left = (size_t)size;
        }
    }
    return 0;
}

/* One exchange's body, as NativeTransport._body reads it. Returns 0 to go on, -1 to close. */
static int read_body(ctx *x, int rc, long long limit, size_t pull_size, char *pull, bytes *body) {
    lr_conn *c = x->c;
    size_t at = position(x); /* the body's first byte */
    body->len = 0;
    put(body, "", 0);
    if (rc == LR_DONE) {
        CHECK(c->body_off >= c->head_len && c->body_off + c->body_len <= c->cap);
        CHECK((long long)c->body_len <= limit);
        CHECK((c->start == 0 && c->end == 0) || c->start == c->body_off + c->body_len);
        put(body, c->buf + c->body_off, c->body_len);
        CHECK(at >= c->body_len);
        CHECK(memcmp(body->p, x->s->stream + at - c->body_len, c->body_len) == 0);
    } else if (rc == LR_BODY_LARGE) {
        char *dst;
        int r;
        CHECK((long long)c->body_len <= limit && c->body_len > 0);
        CHECK(c->head_len + c->body_len > c->cap); /* else it would have been read into the buffer */
        dst = malloc(c->body_len);
        CHECK(dst != NULL);
        RUN(x, r, lr_read_body(c, dst, c->body_len));
        if (r != LR_DONE) {
            if (r == LR_STALLED) {
                check_stalled(x);
                CHECK(c->got <= c->body_len); /* (the last bytes too may come too late) */
                free(dst);
                return -1;
            }
            CHECK(r == LR_CLOSED || r == LR_OS);
            CHECK(c->got < c->body_len);
            free(dst);
            return -1;
        }
        CHECK(c->got == 0);
        CHECK(position(x) == at + c->body_len);
        CHECK(memcmp(dst, x->s->stream + at, c->body_len) == 0);
        put(body, dst, c->body_len);
        free(dst);
    } else if (rc == LR_BODY_CHUNKED) {
        static chunked d;
        size_t before = at, after;
        memset(&d, 0, offsetof(chunked, line));
        d.limit = limit;
        for (;; before = after) {
            long n;
            size_t leftover_at = 0;
            int done;
            RUN(x, n, lr_pull(c, pull, pull_size));
            if (n < 0) {
                if (n == LR_STALLED) check_stalled(x);
                CHECK(n == LR_CLOSED || n == LR_OS || n == LR_STALLED);
                return -1;
            }
            CHECK(n > 0 && (size_t)n <= pull_size);
            after = position(x);
            CHECK(after == before + (size_t)n);
            CHECK(memcmp(pull, x->s->stream + before, (size_t)n) == 0);
            done = chunked_feed(&d, body, pull, (size_t)n, &leftover_at);
            if (done < 0) return -1; /* ProtocolError: native.py closes */
            if (done) {
                size_t left = (size_t)n - leftover_at;
                if (left) {
                    int r = lr_unread(c, pull + leftover_at, left);
                    check_state(x);
                    check_rc(x, r);
                    CHECK(r == LR_DONE); /* a refusal would lose the next answer's head */
                    CHECK(position(x) == after - left);
                }
                break;
            }
        }
    } else {
        size_t before = at, after;
        CHECK(rc == LR_BODY_TO_CLOSE && !c->keep_alive);
        for (;; before = after) {
            long n;
            RUN(x, n, lr_pull(c, pull, pull_size));
            if (n == LR_CLOSED) return -1; /* the body is complete; native.py closes */
            if (n < 0) {
                if (n == LR_STALLED) check_stalled(x);
                CHECK(n == LR_OS || n == LR_STALLED);
                return -1;
            }
            CHECK(n > 0 && (size_t)n <= pull_size);
            after = position(x);
            CHECK(after == before + (size_t)n);
            CHECK(memcmp(pull, x->s->stream + before, (size_t)n) == 0);
            put(body, pull, (size_t)n);
            if ((long long)body->len > limit) return -1;
        }
    }
    return c->keep_alive ? 0 : -1;
}

/* The head of an answer that returned `rc` starts where the previous answer ended. */
static void check_head(ctx *x, int rc, size_t begin) {
    lr_conn *c = x->c;
    size_t now = position(x);
    if (rc == LR_DONE) {
        CHECK(now == begin + c->head_len + c->body_len);
    } else {
        CHECK(now == begin + c->head_len);
    }
    check_values(x, begin);
}

static void expect_post(server *s, int kind, const char *rid, const char *ctype, const bytes *extra, const bytes *body) {
    char line[64];
    if (kind == LR_POST_INIT_ERROR) {
        puts_(&s->expect, "POST /2018-06-01/runtime/init/error");
    } else if (kind == LR_POST_RESTORE_ERROR) {
        puts_(&s->expect, "POST /2018-06-01/runtime/restore/error");
    } else {
        puts_(&s->expect, "POST /2018-06-01/runtime/invocation/");
        puts_(&s->expect, rid);
        puts_(&s->expect, kind == LR_POST_ERROR ? "/error" : "/response");
    }
    puts_(&s->expect, COMMON);
    puts_(&s->expect, "Content-Type: ");
    puts_(&s->expect, ctype);
    puts_(&s->expect, "\r\n");
    put(&s->expect, extra->p, extra->len);
    if (kind == LR_POST_STREAM) {
        puts_(&s->expect, "Transfer-Encoding: chunked\r\n\r\n");
        return;
    }
    snprintf(line, sizeof line, "Content-Length: %zu\r\n\r\n", body->len);
    puts_(&s->expect, line);
    put(&s->expect, body->p, body->len);
}

static void expect_chunk(server *s, const char *data, size_t len) {
    char line[32];
    if (!len) return; /* an empty chunk would end the body: lr_send_chunk sends nothing */
    snprintf(line, sizeof line, "%zx\r\n", len);
    puts_(&s->expect, line);
    put(&s->expect, data, len);
    puts_(&s->expect, "\r\n");
}

/* A send failed: only when the server closed its end; inside a stream it is never "safe to send again". */
static int sent_failed(ctx *x, int rc, int in_stream) {
    CHECK(x->s->close_at_end && x->s->srv < 0);
    CHECK(rc == LR_CLOSED || rc == LR_OS);
    CHECK(!in_stream || x->c->partial);
    return rc;
}

/* A streamed response (LR_POST_STREAM): the head, the body in two chunks, the last chunk
 * (with a trailer for odd lengths), then the answer with lr_answer. */
static int post_stream(ctx *x, const char *rid, const char *ctype, const bytes *extra, const bytes *body) {
    static const char trailer[] = "Lambda-Runtime-Function-Error-Type: Fuzz\r\n";
    lr_conn *c = x->c;
    size_t half = body->len / 2, tlen = (body->len & 1) ? sizeof trailer - 1 : 0;
    int rc;
    RUN(x, rc, lr_post(c, LR_POST_STREAM, rid, strlen(rid), ctype, strlen(ctype), extra->len ? extra->p : "",
                       extra->len, "", 0, MAX_ANSWER));
    if (rc == LR_BAD) {
        CHECK(c->perr == LR_E_UNSAFE);
        return rc;
    }
    expect_post(x->s, LR_POST_STREAM, rid, ctype, extra, body);
    if (rc != LR_DONE) return sent_failed(x, rc, 0);
    CHECK(c->phase == 0);
    RUN(x, rc, lr_send_chunk(c, body->p, half));
    expect_chunk(x->s, body->p, half);
    if (rc != LR_DONE) return sent_failed(x, rc, 1);
    RUN(x, rc, lr_send_chunk(c, body->p + half, body->len - half));
    expect_chunk(x->s, body->p + half, body->len - half);
    if (rc != LR_DONE) return sent_failed(x, rc, 1);
    RUN(x, rc, lr_send_last_chunk(c, trailer, tlen));
    if (rc != LR_DONE) return sent_failed(x, rc, 1);
    puts_(&x->s->expect, "0\r\n");
    put(&x->s->expect, trailer, tlen);
    puts_(&x->s->expect, "\r\n");
    awaiting(x);
    RUN(x, rc, lr_answer(c, MAX_ANSWER));
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const long long limits[4] = {MAX_PAYLOAD, MAX_ANSWER, 100000, 16};
    int sv[2], ncuts, i, runtime_like, post_kind, rc;
    size_t cap, pull_size, at;
    long long limit;
    int sndbuf;
    server s;
    ctx x;
    lr_conn *c;
    char *buf, *pull;
    bytes body = {0}, extra = {0};
    static const int posts[4] = {LR_POST_RESPONSE, LR_POST_ERROR, LR_POST_INIT_ERROR, LR_POST_STREAM};

    if (size < 2) return 0;
    ncuts = data[0] & 7;
    if (size < 2 + 2 * (size_t)ncuts) return 0;
    cap = (data[0] & 8) ? 256 * 1024 : 2 * LR_MAX_HEAD;
    limit = limits[(data[0] >> 4) & 3];
    runtime_like = (data[0] >> 6) & 1;
    post_kind = posts[data[1] & 3];
    pull_size = (data[1] >> 2) < 32 ? 65536 : 64 * (size_t)((data[1] >> 2) - 31) * (size_t)((data[1] >> 2) - 31) - 63;

    memset(&s, 0, sizeof s);
    s.stream = (const char *)data + 2 + 2 * ncuts;
    s.len = size - 2 - 2 * (size_t)ncuts;
    at = 0;
    for (i = 0; i < ncuts; i++) {
        at += (size_t)data[2 + 2 * i] << 8 | data[3 + 2 * i];
        s.bounds[s.nbounds++] = at < s.len ? at : s.len;
    }

    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    s.rt = sv[0];
    s.srv = sv[1];
    s.close_at_end = (data[1] >> 2) >= 16 && (data[1] >> 2) < 32;
    CHECK(fcntl(s.rt, F_SETFL, fcntl(s.rt, F_GETFL) | O_NONBLOCK) == 0);
    sndbuf = 1 << 20;
    (void)setsockopt(s.srv, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    if (data[0] & 0x80) {
        sndbuf = 4096;
        (void)setsockopt(s.rt, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    }

    c = calloc(1, sizeof *c); /* allocated zeroed by the caller, as ffi.new does */
    buf = malloc(cap);
    pull = malloc(pull_size);
    CHECK(c && buf && pull);
    x.s = &s;
    x.c = c;
    CHECK(lr_init(c, s.rt, buf, 2 * LR_MAX_HEAD - 1, COMMON, strlen(COMMON), 0) < 0); /* too small: refused */
    CHECK(lr_init(c, s.rt, buf, cap, COMMON, strlen(COMMON), (data[1] & 4) ? 1 : 0) == 0);
#ifdef LR_FUZZ_CLOCK
    c->answer_ms = (data[1] >> 2) < 32 ? (data[1] >> 3) & 7 : 0; /* as native.py sets it, after lr_init */
#endif
    fuzz_clock = 1000000;

    for (;;) {
        size_t begin = position(&x);
        awaiting(&x);
        RUN(&x, rc, lr_next(c, NEXT_REQUEST, sizeof NEXT_REQUEST - 1, limit));
        puts_(&s.expect, NEXT_REQUEST); /* a send cannot fail here: the server end stays open */
        if (rc < 0) {
            if (rc == LR_STALLED) {
                check_stalled(&x);
                break;
            }
            CHECK(rc == LR_CLOSED || rc == LR_OS || rc == LR_BAD);
            if (rc == LR_BAD) {
                CHECK(c->perr >= LR_E_STATUS && c->perr <= LR_E_BODY_LIMIT);
                CHECK(c->error_at >= 0 && c->error_at <= LR_MAX_HEAD);
                CHECK(position(&x) == begin);
                check_refused(&x);
            }
            break;
        }
        check_head(&x, rc, begin);
        if (read_body(&x, rc, limit, pull_size, pull, &body) < 0) break;
        if (!runtime_like) continue;

        { /* respond as the runtime does: the invoke's id (and invocation id), the body echoed */
            static char rid[LR_VALUES_SIZE], ctype[LR_VALUES_SIZE], inv[LR_VALUES_SIZE];
            value(c, LR_H_REQUEST_ID, rid, sizeof rid);
            value(c, LR_H_INVOCATION_ID, inv, sizeof inv);
            if (value(c, LR_H_CONTENT_TYPE, ctype, sizeof ctype) == 0) strcpy(ctype, "application/json");
            extra.len = 0;
            if (*inv) {
                puts_(&extra, "Lambda-Runtime-Invocation-Id: ");
                puts_(&extra, inv);
                puts_(&extra, "\r\n");
            }
            begin = position(&x);
            if (post_kind == LR_POST_INIT_ERROR && (body.len & 1)) post_kind = LR_POST_RESTORE_ERROR;
            if (post_kind == LR_POST_RESTORE_ERROR && !(body.len & 1)) post_kind = LR_POST_INIT_ERROR;
            if (post_kind == LR_POST_STREAM) {
                rc = post_stream(&x, rid, ctype, &extra, &body);
                if (rc == LR_BAD && c->perr == LR_E_UNSAFE) break;
            } else {
                awaiting(&x);
                RUN(&x, rc, lr_post(c, post_kind, rid, strlen(rid), ctype, strlen(ctype), extra.len ? extra.p : "",
                                    extra.len, body.p, body.len, MAX_ANSWER));
                if (rc == LR_BAD && c->perr == LR_E_UNSAFE) break; /* nothing sent; native.py closes */
                expect_post(&s, post_kind, rid, ctype, &extra, &body);
            }
            if (rc < 0) {
                if (rc == LR_STALLED) check_stalled(&x);
                CHECK(rc == LR_CLOSED || rc == LR_OS || rc == LR_BAD || rc == LR_STALLED);
                if (rc == LR_BAD) {
                    CHECK(position(&x) == begin);
                    check_refused(&x);
                }
                break;
            }
            check_head(&x, rc, begin);
            if (read_body(&x, rc, MAX_ANSWER, pull_size, pull, &body) < 0) break;
        }
    }

    /* everything the runtime sent is exactly the requests it made */
    while (pump(&s)) {
    }
    if ((s.close_at_end ? s.sent.len > s.expect.len : s.sent.len != s.expect.len) ||
        memcmp(s.sent.p, s.expect.p, s.sent.len) != 0) { /* after a close: a prefix */
        fprintf(stderr, "fuzz_lr_conn: sent %zu bytes, expected %zu\n", s.sent.len, s.expect.len);
        abort();
    }

    lr_reset(c);
    CHECK(c->start == 0 && c->end == 0 && c->phase == 0 && c->have_head == 0 && c->sent == 0 && c->got == 0);
    close(s.rt);
    if (s.srv >= 0) close(s.srv);
    free(s.sent.p);
    free(s.expect.p);
    free(body.p);
    free(extra.p);
    free(c);
    free(buf);
    free(pull);
    return 0;
}

#ifdef LR_FUZZ_MAIN
/* Without libFuzzer (gcc, musl): run the harness over the files named on the command line. */
int main(int argc, char **argv) {
    int i;
    for (i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        static uint8_t data[1 << 22];
        size_t n;
        if (!f) {
            perror(argv[i]);
            return 1;
        }
        n = fread(data, 1, sizeof data, f);
        fclose(f);
        LLVMFuzzerTestOneInput(data, n);
    }
    printf("ran %d inputs\n", argc - 1);
    return 0;
}
#endif
