/*
 * A fast scripted Lambda Runtime API for the soak test (tests/test_soak.py), with traffic
 * shaped like Lambda's: every invoke has its own request id, trace id, client context,
 * Cognito identity, tenant id and invocation id, and its own payload size, so that a leak
 * which only shows when header values change (a setenv per trace id, a cache keyed by
 * request id) grows the runtime as it would in a warm sandbox. Several runtime connections
 * are served at once (Managed Instances: N pollers each hold a /next), one poll() loop.
 *
 * usage: soak_stub PORTFILE POLLERS WARMUP COUNT STEP TIMEOUT_S BIG_EVERY FAIL_EVERY
 *
 * Listens on 127.0.0.1 (ephemeral port, written to PORTFILE). Invoke n (1-based) is a
 * raising one when n % FAIL_EVERY == 0, else a ~100 KB one when n % BIG_EVERY == 0, else a
 * small one (0-3 KB of padding); every value of invoke n is made from n (see the make_*
 * functions), and the handler echoes a "check" string of what it saw, which is compared
 * with what was sent. It pauses after WARMUP invokes and then after every STEP more: once
 * every POST is in and POLLERS /next requests are held, it prints "HOLD <invokes so far>"
 * and waits for a line on stdin before it serves the next ones (the test reads the
 * runtime's memory while nothing is in flight). After WARMUP + COUNT invokes it prints
 *   "DONE <responses> <errors> <wrong_id> <wrong_kind> <wrong_body> <other> <response_bytes>"
 * counted over all invokes: a POST for an id not in flight, or not echoing its invocation
 * id, is wrong_id; a /response for a raising invoke or an /error for another is
 * wrong_kind; a /response without the invoke's check string is wrong_body; any other
 * request is other. Exits when stdin closes; SIGALRM after TIMEOUT_S ends it whatever
 * happens.
 *
 * Invariants: every buffer index is checked against its buffer's length; an invoke's n is
 * recovered only from the last 12 hex digits of its request id and checked against the
 * in-flight bitmap before use; at most MAX_CONN connections (more are refused).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "../benchmarks/stub_io.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_CONN 64
#define BIG_PAD (100 * 1024)
#define NEXT_LINE "GET /2018-06-01/runtime/invocation/next "
#define POST_PREFIX "POST /2018-06-01/runtime/invocation/"
#define ID_LEN 36

struct conn { int fd; char *buf; size_t cap, len; int held; };

static struct conn conns[MAX_CONN];
static unsigned char *in_flight; /* bit n: invoke n was served and not yet answered */
static long total_invokes;

/* A growable output buffer for one /next answer. */
static char *out;
static size_t out_cap, out_len;

static void out_reserve(size_t more) {
    if (out_len + more <= out_cap) return;
    size_t cap = out_cap ? out_cap : 4096;
    while (cap < out_len + more) cap *= 2;
    char *p = realloc(out, cap);
    if (!p) exit(3);
    out = p;
    out_cap = cap;
}

static void out_printf(const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(out + out_len, out_cap - out_len, fmt, ap);
        va_end(ap);
        if (n < 0) exit(3);
        if ((size_t)n < out_cap - out_len) { out_len += (size_t)n; return; }
        out_reserve((size_t)n + 1);
    }
}

static unsigned long mix(unsigned long n, unsigned long salt) {
    unsigned long x = (n + salt) * 0x9E3779B97F4A7C15UL;
    return x ^ (x >> 29);
}

/* The values of invoke n: each differs from every other invoke's. */
static void make_request_id(long n, char *dst, size_t len) {
    unsigned long h = mix((unsigned long)n, 1);
    snprintf(dst, len, "%08lx-%04lx-4%03lx-a%03lx-%012lx", h & 0xffffffffUL, (h >> 32) & 0xffffUL,
             (h >> 48) & 0xfffUL, mix((unsigned long)n, 2) & 0xfffUL, (unsigned long)n);
}

static void make_trace_id(long n, char *dst, size_t len) {
    unsigned long a = mix((unsigned long)n, 3), b = mix((unsigned long)n, 4);
    if (n % 3 == 0)
        snprintf(dst, len, "Root=1-%08lx-%08lx%016lx;Parent=%016lx;Sampled=%d;Lineage=%08lx:%ld",
                 0x6a000000UL + (unsigned long)n % 0xffffffUL, a & 0xffffffffUL, b, mix((unsigned long)n, 5),
                 (int)(n & 1), a >> 32, n % 10);
    else
        snprintf(dst, len, "Root=1-%08lx-%08lx%016lx;Parent=%016lx;Sampled=%d",
                 0x6a000000UL + (unsigned long)n % 0xffffffUL, a & 0xffffffffUL, b, mix((unsigned long)n, 5),
                 (int)(n & 1));
}

static void make_cognito_id(long n, char *dst, size_t len) {
    unsigned long h = mix((unsigned long)n, 6);
    snprintf(dst, len, "us-east-1:%08lx-%04lx-%04lx-%012lx", h & 0xffffffffUL, (h >> 32) & 0xffffUL,
             (h >> 48) & 0xffffUL, (unsigned long)n);
}

/* What the handler echoes for invoke n: client context custom "n", Cognito id, tenant id,
   trace id (tests/test_soak.py HANDLER). */
static void make_check(long n, char *dst, size_t len) {
    char cognito[64], trace[160];
    make_cognito_id(n, cognito, sizeof cognito);
    make_trace_id(n, trace, sizeof trace);
    snprintf(dst, len, "%ld/%s/tenant-%ld/%s", n, cognito, n, trace);
}

static int is_fail(long n, long fail_every) { return n % fail_every == 0; }

/* The whole /next answer of invoke n in out[0, out_len). */
static void make_answer(long n, long big_every, long fail_every) {
    char rid[48], trace[160], cognito[64], body_head[128];
    make_request_id(n, rid, sizeof rid);
    make_trace_id(n, trace, sizeof trace);
    make_cognito_id(n, cognito, sizeof cognito);
    const char *kind = is_fail(n, fail_every) ? "fail" : n % big_every == 0 ? "big" : "small";
    size_t pad = kind[0] == 'f' ? 0 : kind[0] == 'b' ? BIG_PAD + (size_t)(n % 4096) : (size_t)((n * 7919) % 3072);
    int bh = snprintf(body_head, sizeof body_head, "{\"kind\": \"%s\", \"n\": %ld, \"pad\": \"", kind, n);
    if (bh <= 0 || (size_t)bh >= sizeof body_head) exit(3);
    size_t body_len = (size_t)bh + pad + 2;
    out_len = 0;
    out_printf("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
               "Lambda-Runtime-Aws-Request-Id: %s\r\n"
               "Lambda-Runtime-Deadline-Ms: %lld\r\n"
               "Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:123456789012:function:soak%s\r\n"
               "Lambda-Runtime-Trace-Id: %s\r\n"
               "Lambda-Runtime-Client-Context: {\"client\": {\"installation_id\": \"inst-%ld\", \"app_title\": "
               "\"soak\", \"app_version_name\": \"1.%ld\", \"app_version_code\": \"%ld\", \"app_package_name\": "
               "\"com.example.soak\"}, \"custom\": {\"n\": \"%ld\", \"tag\": \"%lx\"}, \"env\": {\"platform\": "
               "\"Linux\", \"model\": \"m%ld\", \"locale\": \"en_US\"}}\r\n"
               "Lambda-Runtime-Cognito-Identity: {\"cognitoIdentityId\": \"%s\", \"cognitoIdentityPoolId\": "
               "\"us-east-1:pool-%ld\"}\r\n"
               "Lambda-Runtime-Aws-Tenant-Id: tenant-%ld\r\n"
               "Lambda-Runtime-Invocation-Id: inv-%ld-%lx\r\n"
               "Content-Length: %zu\r\n\r\n",
               rid, 4102444800000LL + n, n % 2 ? ":live" : "", trace, n, n % 100, n, n, mix((unsigned long)n, 7), n,
               cognito, n % 1000, n, n, mix((unsigned long)n, 8), body_len);
    out_reserve(body_len);
    memcpy(out + out_len, body_head, (size_t)bh);
    memset(out + out_len + (size_t)bh, 'a' + (int)(n % 26), pad);
    memcpy(out + out_len + (size_t)bh + pad, "\"}", 2);
    out_len += body_len;
}

static long served, posted, responses, errors, wrong_id, wrong_kind, wrong_body, other, held;
static unsigned long long response_bytes;
static long big_every_g, fail_every_g;

static void serve_next(struct conn *c) {
    served++;
    in_flight[served >> 3] |= (unsigned char)(1u << (served & 7));
    make_answer(served, big_every_g, fail_every_g);
    send_all(c->fd, out, out_len);
}

/* The invoke a POST names, or 0 when the id is not one in flight. */
static long take_in_flight(const char *id, size_t len) {
    if (len != ID_LEN) return 0;
    char *end;
    char hex[13];
    memcpy(hex, id + ID_LEN - 12, 12);
    hex[12] = 0;
    long n = strtol(hex, &end, 16);
    if (*end || n <= 0 || n > total_invokes) return 0;
    char expect[48];
    make_request_id(n, expect, sizeof expect);
    if (memcmp(expect, id, ID_LEN) != 0) return 0;
    if (!(in_flight[n >> 3] & (1u << (n & 7)))) return 0;
    in_flight[n >> 3] &= (unsigned char)~(1u << (n & 7));
    return n;
}

static void on_post(struct conn *c, const char *head, size_t head_len, const char *body, size_t body_len) {
    const char *id = head + sizeof POST_PREFIX - 1;
    const char *line_end = memchr(head, '\r', head_len);
    const char *slash = line_end ? memchr(id, '/', (size_t)(line_end - id)) : NULL;
    long n = slash ? take_in_flight(id, (size_t)(slash - id)) : 0;
    posted++;
    if (!n) {
        wrong_id++;
    } else {
        char inv[64];
        int il = snprintf(inv, sizeof inv, "Lambda-Runtime-Invocation-Id: inv-%ld-%lx\r\n", n, mix((unsigned long)n, 8));
        if (il <= 0 || !memmem(head, head_len, inv, (size_t)il)) wrong_id++;
        if (strncmp(slash, "/response ", 10) == 0) {
            responses++;
            response_bytes += body_len;
            if (is_fail(n, fail_every_g)) wrong_kind++;
            char check[320];
            make_check(n, check, sizeof check);
            if (!memmem(body, body_len, check, strlen(check))) wrong_body++;
        } else if (strncmp(slash, "/error ", 7) == 0) {
            errors++;
            if (!is_fail(n, fail_every_g)) wrong_kind++;
        } else {
            other++;
        }
    }
    send_accepted(c->fd);
}

/* Handle every whole request buffered on c; 0 when the connection must be closed. */
static int on_requests(struct conn *c, long limit) {
    for (;;) {
        char *p = c->len >= 4 ? memmem(c->buf, c->len, "\r\n\r\n", 4) : NULL;
        if (!p) return 1;
        size_t head_len = (size_t)(p - c->buf) + 4, body;
        if (stub_content_length(c->buf, head_len, &body) < 0 || body > ((size_t)64 << 20)) return 0;
        if (c->len < head_len + body) {
            if (head_len + body > c->cap) {
                char *nb = realloc(c->buf, head_len + body);
                if (!nb) exit(3);
                c->buf = nb;
                c->cap = head_len + body;
            }
            return 1;
        }
        if (head_len >= sizeof NEXT_LINE && memcmp(c->buf, NEXT_LINE, sizeof NEXT_LINE - 1) == 0) {
            if (served < limit) serve_next(c);
            else { c->held = 1; held++; }
        } else if (head_len >= sizeof POST_PREFIX && memcmp(c->buf, POST_PREFIX, sizeof POST_PREFIX - 1) == 0) {
            on_post(c, c->buf, head_len, c->buf + head_len, body);
        } else {
            other++;
            static const char nf[] = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
            send_all(c->fd, nf, sizeof nf - 1);
        }
        memmove(c->buf, c->buf + head_len + body, c->len - head_len - body);
        c->len -= head_len + body;
    }
}

static void close_conn(struct conn *c) {
    if (c->held) held--;
    close(c->fd);
    free(c->buf);
    memset(c, 0, sizeof *c);
    c->fd = -1;
}

int main(int argc, char **argv) {
    if (argc != 9) {
        fprintf(stderr, "usage: soak_stub PORTFILE POLLERS WARMUP COUNT STEP TIMEOUT_S BIG_EVERY FAIL_EVERY\n");
        return 2;
    }
    long pollers = atol(argv[2]), warmup = atol(argv[3]), count = atol(argv[4]), step = atol(argv[5]);
    big_every_g = atol(argv[7]);
    fail_every_g = atol(argv[8]);
    if (pollers <= 0 || pollers > MAX_CONN || big_every_g <= 0 || fail_every_g <= 0 || warmup < 0 || count < 0 ||
        step <= 0 || warmup + count > 0xffffffffffffL)
        return 2;
    total_invokes = warmup + count;
    alarm((unsigned)atoi(argv[6]));
    in_flight = calloc((size_t)(total_invokes / 8 + 2), 1);
    if (!in_flight) return 3;
    int ls = listen_loopback(argv[1]);
    if (ls < 0) return 2;
    for (int i = 0; i < MAX_CONN; i++) conns[i].fd = -1;

    long limit = warmup;
    int paused = 0; /* 1: HOLD or DONE said, waiting for stdin */
    for (;;) {
        if (!paused && served == limit && posted == served && held == pollers) {
            if (limit == total_invokes)
                printf("DONE %ld %ld %ld %ld %ld %ld %llu\n", responses, errors, wrong_id, wrong_kind, wrong_body,
                       other, response_bytes);
            else
                printf("HOLD %ld\n", served);
            fflush(stdout);
            paused = 1;
        }
        struct pollfd fds[MAX_CONN + 2];
        int map[MAX_CONN + 2], nfds = 0;
        fds[nfds].fd = ls; fds[nfds].events = POLLIN; map[nfds++] = -1;
        fds[nfds].fd = 0; fds[nfds].events = paused ? POLLIN : 0; map[nfds++] = -2;
        for (int i = 0; i < MAX_CONN; i++)
            if (conns[i].fd >= 0) { fds[nfds].fd = conns[i].fd; fds[nfds].events = POLLIN; map[nfds++] = i; }
        if (poll(fds, (nfds_t)nfds, -1) < 0) { if (errno == EINTR) continue; return 5; }
        for (int k = 0; k < nfds; k++) {
            if (!fds[k].revents) continue;
            if (map[k] == -1) {
                int fd = accept(ls, NULL, NULL), one = 1;
                if (fd < 0) continue;
                int slot = -1;
                for (int i = 0; i < MAX_CONN && slot < 0; i++) if (conns[i].fd < 0) slot = i;
                if (slot < 0) { close(fd); continue; }
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                conns[slot].fd = fd;
                conns[slot].cap = 1 << 16;
                conns[slot].buf = malloc(conns[slot].cap);
                if (!conns[slot].buf) return 3;
            } else if (map[k] == -2) {
                char in[16];
                if (!fgets(in, sizeof in, stdin)) return 0;
                if (limit < total_invokes) {
                    paused = 0;
                    limit = limit + step < total_invokes ? limit + step : total_invokes;
                    for (int i = 0; i < MAX_CONN; i++)
                        if (conns[i].fd >= 0 && conns[i].held && served < limit) {
                            conns[i].held = 0;
                            held--;
                            serve_next(&conns[i]);
                        }
                }
            } else {
                struct conn *c = &conns[map[k]];
                if (c->len == c->cap) {
                    char *nb = realloc(c->buf, c->cap * 2);
                    if (!nb) return 3;
                    c->buf = nb;
                    c->cap *= 2;
                }
                ssize_t r = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
                if (r < 0 && errno == EINTR) continue;
                if (r <= 0 || (c->len += (size_t)r, !on_requests(c, limit))) close_conn(c);
            }
        }
    }
}
