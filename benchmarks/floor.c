/*
 * The floor: a minimal C client doing the runtime's loop (GET /next, POST /response)
 * with no parsing beyond Content-Length and the request id, to show how far each
 * runtime is from the limit of the transport.
 *
 * usage: floor MODE    (MODE: echo = respond with the event; fixed = a small JSON body;
 *                       error = POST /error with a small error JSON)
 * Reads AWS_LAMBDA_RUNTIME_API; loops until the connection closes.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

static char *buf;
static size_t cap = 1 << 16, len;

static int fill(int fd) {
    if (len == cap) { cap *= 2; buf = realloc(buf, cap); if (!buf) exit(3); }
    ssize_t n = recv(fd, buf + len, cap - len, 0);
    if (n <= 0) return 0;
    len += (size_t)n;
    return 1;
}

/* Read one response; returns the body's offset and length, copies the request id. */
static int read_response(int fd, size_t *body_at, size_t *body_len, char *rid, size_t ridlen) {
    char *end;
    while (!(end = memmem(buf, len, "\r\n\r\n", 4)))
        if (!fill(fd)) return 0;
    size_t head = (size_t)(end - buf) + 4, cl = 0;
    char *p = memmem(buf, head, "Content-Length: ", 16);
    if (p) cl = strtoull(p + 16, NULL, 10);
    if (rid) {
        rid[0] = 0;
        p = memmem(buf, head, "Request-Id: ", 12);
        if (p) {
            size_t i = 0;
            p += 12;
            while (i + 1 < ridlen && p[i] != '\r') { rid[i] = p[i]; i++; }
            rid[i] = 0;
        }
    }
    while (len < head + cl) {
        if (head + cl > cap) { cap = head + cl; buf = realloc(buf, cap); if (!buf) exit(3); }
        if (!fill(fd)) return 0;
    }
    *body_at = head;
    *body_len = cl;
    return 1;
}

static void consume(size_t n) { memmove(buf, buf + n, len - n); len -= n; }

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "fixed";
    const char *api = getenv("AWS_LAMBDA_RUNTIME_API");
    if (!api) return 2;
    char host[64];
    const char *colon = strrchr(api, ':');
    if (!colon || (size_t)(colon - api) >= sizeof host) return 2;
    memcpy(host, api, (size_t)(colon - api));
    host[colon - api] = 0;
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)atoi(colon + 1));
    inet_pton(AF_INET, host, &addr.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr)) return 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    buf = malloc(cap);
    char next[256];
    int nlen = snprintf(next, sizeof next, "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: %s\r\nUser-Agent: floor\r\n\r\n", api);
    static const char fixed[] = "{\"statusCode\": 200, \"headers\": {\"Content-Type\": \"application/json\"}, \"body\": \"{\\\"ok\\\": true}\"}";
    static const char error[] = "{\"errorMessage\": \"bad thing\", \"errorType\": \"ValueError\", \"requestId\": \"\", \"stackTrace\": []}";
    for (;;) {
        if (send(fd, next, (size_t)nlen, MSG_NOSIGNAL) != nlen) return 0;
        size_t at, blen;
        char rid[128];
        if (!read_response(fd, &at, &blen, rid, sizeof rid)) return 0;
        const char *body = fixed;
        size_t bodylen = sizeof fixed - 1;
        const char *kind = "response";
        if (!strcmp(mode, "echo")) { body = buf + at; bodylen = blen; }
        if (!strcmp(mode, "error")) { body = error; bodylen = sizeof error - 1; kind = "error"; }
        char head[512];
        int hlen = snprintf(head, sizeof head,
                            "POST /2018-06-01/runtime/invocation/%s/%s HTTP/1.1\r\nHost: %s\r\nUser-Agent: floor\r\n"
                            "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                            rid, kind, api, bodylen);
        struct iovec iov[2] = {{head, (size_t)hlen}, {(void *)body, bodylen}};
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = 2};
        size_t total = (size_t)hlen + bodylen;
        while (total) {
            ssize_t w = sendmsg(fd, &msg, MSG_NOSIGNAL);
            if (w <= 0) return 0;
            total -= (size_t)w;
            while (msg.msg_iovlen && (size_t)w >= msg.msg_iov[0].iov_len) { w -= (ssize_t)msg.msg_iov[0].iov_len; msg.msg_iov++; msg.msg_iovlen--; }
            if (msg.msg_iovlen) { msg.msg_iov[0].iov_base = (char *)msg.msg_iov[0].iov_base + w; msg.msg_iov[0].iov_len -= (size_t)w; }
        }
        consume(at + blen);
        size_t a2, b2;
        if (!read_response(fd, &a2, &b2, NULL, 0)) return 0;
        consume(a2 + b2);
    }
}
