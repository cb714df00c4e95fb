/*
 * A fast scripted Lambda Runtime API for benchmarks: never the bottleneck.
 *
 * usage: stub PORTFILE EVENTFILE CONTENT_TYPE WARMUP COUNT
 *
 * Listens on 127.0.0.1 (ephemeral port, written to PORTFILE), serves WARMUP invokes,
 * then holds the next /next and prints "READY <first_next_mono_ns>"; after a line on stdin it
 * serves COUNT timed invokes, holds the next /next again and prints
 *   "DONE <count> <p50_ns> <p99_ns> <mean_ns> <stub_cpu_us> <first_next_mono_ns>"
 * then exits when stdin closes. Wall per invoke is from writing the /next answer to
 * reading the whole /response (or /error) request. epoll to accept, then blocking
 * reads on the one connection; keep-alive, TCP_NODELAY;
 * one client connection at a time is all a runtime uses.
 */
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
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static char *inbuf;
static size_t incap = 1 << 16, inlen;

/* Read one whole HTTP request (head + Content-Length body) from fd; 0 on EOF. */
static int read_request(int fd, char *method, size_t mlen) {
    size_t head_end = 0;
    for (;;) {
        if (inlen >= 4) {
            char *p = memmem(inbuf, inlen, "\r\n\r\n", 4);
            if (p) { head_end = (size_t)(p - inbuf) + 4; break; }
        }
        if (inlen == incap) { incap *= 2; inbuf = realloc(inbuf, incap); if (!inbuf) exit(3); }
        ssize_t n = recv(fd, inbuf + inlen, incap - inlen, 0);
        if (n == 0) return 0;
        if (n < 0) { if (errno == EINTR) continue; return 0; }
        inlen += (size_t)n;
    }
    size_t body = 0;
    char *cl = memmem(inbuf, head_end, "ontent-Length:", 14);
    if (!cl) cl = memmem(inbuf, head_end, "ontent-length:", 14);
    if (cl) body = strtoull(cl + 14, NULL, 10);
    size_t total = head_end + body;
    while (inlen < total) {
        if (total > incap) { incap = total; inbuf = realloc(inbuf, incap); if (!inbuf) exit(3); }
        ssize_t n = recv(fd, inbuf + inlen, incap - inlen, 0);
        if (n == 0) return 0;
        if (n < 0) { if (errno == EINTR) continue; return 0; }
        inlen += (size_t)n;
    }
    size_t m = 0;
    while (m + 1 < mlen && m < head_end && inbuf[m] != ' ') { method[m] = inbuf[m]; m++; }
    method[m] = 0;
    memmove(inbuf, inbuf + total, inlen - total);
    inlen -= total;
    return 1;
}

static void send_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0) { if (errno == EINTR) continue; exit(4); }
        p += w; n -= (size_t)w;
    }
}

int main(int argc, char **argv) {
    if (argc != 6) { fprintf(stderr, "usage: stub PORTFILE EVENTFILE CONTENT_TYPE WARMUP COUNT\n"); return 2; }
    long warmup = atol(argv[4]), count = atol(argv[5]);
    FILE *ef = fopen(argv[2], "rb");
    if (!ef) { perror("event"); return 2; }
    struct stat st;
    fstat(fileno(ef), &st);
    size_t elen = (size_t)st.st_size;
    char head[1024];
    int hlen = snprintf(head, sizeof head,
                        "HTTP/1.1 200 OK\r\nContent-Type: %s\r\n"
                        "Lambda-Runtime-Aws-Request-Id: 8476a536-e9f4-11e8-9739-2dfe598c0000\r\n"
                        "Lambda-Runtime-Deadline-Ms: 4102444800000\r\n"
                        "Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:012345678912:function:bench\r\n"
                        "Lambda-Runtime-Trace-Id: Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1\r\n"
                        "Content-Length: %zu\r\n\r\n",
                        argv[3], elen);
    if (hlen <= 0 || hlen >= (int)sizeof head) return 2;
    char *answer = malloc(elen + (size_t)hlen);
    if (!answer) return 3;
    memcpy(answer, head, (size_t)hlen);
    if (fread(answer + hlen, 1, elen, ef) != elen) return 6;
    fclose(ef);
    size_t id_at = (size_t)((char *)memmem(answer, (size_t)hlen, "598c0000", 8) - answer) + 4;
    inbuf = malloc(incap);
    uint64_t *walls = calloc((size_t)(count > 0 ? count : 1), sizeof *walls);
    if (!inbuf || !walls) return 3;

    int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(ls, (struct sockaddr *)&addr, sizeof addr) || listen(ls, 16)) { perror("listen"); return 2; }
    socklen_t alen = sizeof addr;
    getsockname(ls, (struct sockaddr *)&addr, &alen);
    FILE *pf = fopen(argv[1], "w");
    fprintf(pf, "%d\n", ntohs(addr.sin_port));
    fclose(pf);

    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    int fd = -1;
    uint64_t first_next = 0;
    long served = 0, timed = 0;
    uint64_t sent_at = 0;
    int holding = 0;
    char method[16];

    for (;;) {
        struct epoll_event events[4];
        int n = epoll_wait(ep, events, 4, -1);
        if (n < 0) { if (errno == EINTR) continue; return 5; }
        for (int i = 0; i < n; i++) {
            if (events[i].data.fd == ls) {
                int c = accept(ls, NULL, NULL);
                if (c < 0) continue;
                setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                if (fd >= 0) close(fd); /* a runtime reconnecting: the new connection wins */
                fd = c;
                inlen = 0;
                /* serve this connection with blocking reads: one client at a time is all a
                   runtime uses, and no epoll_wait between requests saves two syscalls */
            }
            if (fd < 0) continue;
            for (;;) {
                if (!read_request(fd, method, sizeof method)) { close(fd); fd = -1; break; }
                if (method[0] == 'G') { /* GET /next */
                    if (!first_next) first_next = now_ns();
                    if (served == warmup && !holding && timed == 0) {
                        holding = 1;
                        printf("READY %llu\n", (unsigned long long)first_next);
                        fflush(stdout);
                        char line[16];
                        if (!fgets(line, sizeof line, stdin)) return 0;
                        holding = 0;
                    } else if (served == warmup + count) {
                        qsort(walls, (size_t)count, sizeof *walls, cmp_u64);
                        uint64_t sum = 0;
                        for (long k = 0; k < count; k++) sum += walls[k];
                        struct rusage ru;
                        getrusage(RUSAGE_SELF, &ru);
                        uint64_t cpu = (uint64_t)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec +
                                       (uint64_t)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec;
                        printf("DONE %ld %llu %llu %llu %llu %llu\n", count,
                               (unsigned long long)walls[count / 2],
                               (unsigned long long)walls[(size_t)((count * 99) / 100)],
                               (unsigned long long)(count ? sum / (uint64_t)count : 0),
                               (unsigned long long)cpu, (unsigned long long)first_next);
                        fflush(stdout);
                        char line[16];
                        while (fgets(line, sizeof line, stdin)) {}
                        return 0;
                    }
                    served++;
                    char id[8];
                    snprintf(id, sizeof id, "%04ld", served % 10000);
                    memcpy(answer + id_at, id, 4); /* only the request id changes per invoke */
                    sent_at = now_ns();
                    send_all(fd, answer, (size_t)hlen + elen);
                } else { /* POST /response or /error */
                    if (served > warmup) walls[timed++] = now_ns() - sent_at;
                    static const char ok[] = "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{\"status\":\"OK\"}\n";
                    send_all(fd, ok, sizeof ok - 1);
                }
                if (fd < 0) break;
            }
        }
    }
}
