/*
 * What the scripted Runtime API stubs share: benchmarks/stub.c (python -m benchmarks) and
 * tests/soak_stub.c (tests/test_soak.py) include it. Static inline functions only (an includer
 * need not use them all), C99; the includer includes it before any system header (memmem
 * wants _GNU_SOURCE). read_request() buffers one connection at a time: accept_client()
 * starts each with an empty buffer (tests/soak_stub.c, serving several, keeps its own).
 */
#ifndef STUB_IO_H
#define STUB_IO_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static char *stub_inbuf;
static size_t stub_incap, stub_inlen;

/* The input buffer, allocated once; 0 when out of memory. */
static inline int stub_in_init(void) {
    stub_incap = (size_t)1 << 16;
    stub_inlen = 0;
    stub_inbuf = malloc(stub_incap);
    return stub_inbuf != NULL;
}

/* Grow the input buffer to at least want bytes (exits 3 when it cannot). */
static inline void stub_in_grow(size_t want) {
    if (want <= stub_incap) return;
    size_t cap = stub_incap;
    while (cap < want) cap = cap > SIZE_MAX / 2 ? want : cap * 2;
    char *p = realloc(stub_inbuf, cap);
    if (!p) exit(3);
    stub_inbuf = p;
    stub_incap = cap;
}

/* Receive more bytes into the buffer: 1, or 0 on EOF or error. */
static inline int stub_recv_more(int fd) {
    for (;;) {
        ssize_t n = recv(fd, stub_inbuf + stub_inlen, stub_incap - stub_inlen, 0);
        if (n > 0) { stub_inlen += (size_t)n; return 1; }
        if (n < 0 && errno == EINTR) continue;
        return 0;
    }
}

/* The Content-Length value in head[0, len), never reading past len: 0 when there is none or
   it does not start with a digit (as strtoull would have it); -1 when it overflows a size_t. */
static inline int stub_content_length(const char *head, size_t len, size_t *out) {
    const char *cl = memmem(head, len, "ontent-Length:", 14);
    if (!cl) cl = memmem(head, len, "ontent-length:", 14);
    *out = 0;
    if (!cl) return 0;
    size_t i = (size_t)(cl - head) + 14, v = 0;
    while (i < len && (head[i] == ' ' || head[i] == '\t')) i++;
    for (; i < len && head[i] >= '0' && head[i] <= '9'; i++) {
        size_t d = (size_t)(head[i] - '0');
        if (v > (SIZE_MAX - d) / 10) return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* Read one whole HTTP request (head + Content-Length body) from fd: 1, or 0 on EOF, error or
   a Content-Length that is no size. The request line goes to line (cut to llen - 1 bytes,
   llen >= 1), the body length to *body_len. */
static inline int read_request(int fd, char *line, size_t llen, size_t *body_len) {
    size_t head_end = 0;
    for (;;) {
        if (stub_inlen >= 4) {
            char *p = memmem(stub_inbuf, stub_inlen, "\r\n\r\n", 4);
            if (p) { head_end = (size_t)(p - stub_inbuf) + 4; break; }
        }
        if (stub_inlen == stub_incap) stub_in_grow(stub_incap + 1);
        if (!stub_recv_more(fd)) return 0;
    }
    size_t body;
    if (stub_content_length(stub_inbuf, head_end, &body) < 0 || body > SIZE_MAX - head_end) return 0;
    size_t total = head_end + body;
    while (stub_inlen < total) {
        stub_in_grow(total);
        if (!stub_recv_more(fd)) return 0;
    }
    size_t m = 0;
    while (m + 1 < llen && m < head_end && stub_inbuf[m] != '\r') { line[m] = stub_inbuf[m]; m++; }
    if (llen) line[m] = 0;
    *body_len = body;
    memmove(stub_inbuf, stub_inbuf + total, stub_inlen - total);
    stub_inlen -= total;
    return 1;
}

static inline void send_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0) { if (errno == EINTR) continue; exit(4); }
        p += w; n -= (size_t)w;
    }
}

/* The answer to every POST /response and /error. */
static inline void send_accepted(int fd) {
    static const char ok[] = "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{\"status\":\"OK\"}\n";
    send_all(fd, ok, sizeof ok - 1);
}

/* One event's whole /next answer (head and event bytes), the request id at id_at: the stubs
   overwrite it in place per invoke. */
struct stub_answer { char *bytes; size_t len, id_at; };

/* The /next answer carrying the file at path, with these Content-Type, request id and function
   name; exits 2 (file or head), 3 (memory) or 6 (short read) when it cannot be made. */
static inline struct stub_answer stub_load_answer(const char *path, const char *content_type, const char *request_id,
                                           const char *function) {
    struct stub_answer a = {0};
    FILE *ef = fopen(path, "rb");
    if (!ef) { perror(path); exit(2); }
    struct stat st;
    if (fstat(fileno(ef), &st) || st.st_size < 0) { perror(path); exit(2); }
    size_t elen = (size_t)st.st_size;
    char head[1024];
    int hlen = snprintf(head, sizeof head,
                        "HTTP/1.1 200 OK\r\nContent-Type: %s\r\n"
                        "Lambda-Runtime-Aws-Request-Id: %s\r\n"
                        "Lambda-Runtime-Deadline-Ms: 4102444800000\r\n"
                        "Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:123456789012:function:%s\r\n"
                        "Lambda-Runtime-Trace-Id: Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1\r\n"
                        "Content-Length: %zu\r\n\r\n",
                        content_type, request_id, function, elen);
    if (hlen <= 0 || hlen >= (int)sizeof head || elen > SIZE_MAX - (size_t)hlen) exit(2);
    a.bytes = malloc(elen + (size_t)hlen);
    if (!a.bytes) exit(3);
    memcpy(a.bytes, head, (size_t)hlen);
    if (fread(a.bytes + hlen, 1, elen, ef) != elen) exit(6);
    fclose(ef);
    a.id_at = sizeof "HTTP/1.1 200 OK\r\nContent-Type: " - 1 + strlen(content_type) +
              sizeof "\r\nLambda-Runtime-Aws-Request-Id: " - 1;
    a.len = (size_t)hlen + elen;
    return a;
}

/* A listening socket on 127.0.0.1, ephemeral port, the port written to port_file as "%d\n";
   -1 (said on stderr) when any of that fails. */
static inline int listen_loopback(const char *port_file) {
    int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    if (ls < 0) { perror("socket"); return -1; }
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof addr;
    if (bind(ls, (struct sockaddr *)&addr, sizeof addr) || listen(ls, 16) ||
        getsockname(ls, (struct sockaddr *)&addr, &alen)) {
        perror("listen");
        close(ls);
        return -1;
    }
    FILE *pf = fopen(port_file, "w");
    if (!pf) { perror(port_file); close(ls); return -1; }
    fprintf(pf, "%d\n", ntohs(addr.sin_port));
    if (fclose(pf)) { perror(port_file); close(ls); return -1; }
    return ls;
}

/* Accept one connection (-1 when accept fails, errno kept): TCP_NODELAY on, and the input
   buffer emptied, whatever the last connection left in it unread. */
static inline int accept_client(int ls) {
    int c = accept(ls, NULL, NULL), one = 1;
    if (c < 0) return -1;
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    stub_inlen = 0;
    return c;
}

#endif
