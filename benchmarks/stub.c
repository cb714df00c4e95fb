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
#include "stub_io.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
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

int main(int argc, char **argv) {
    if (argc != 6) { fprintf(stderr, "usage: stub PORTFILE EVENTFILE CONTENT_TYPE WARMUP COUNT\n"); return 2; }
    long warmup = atol(argv[4]), count = atol(argv[5]);
    static const char request_id[] = "8476a536-e9f4-11e8-9739-2dfe598c0000";
    struct stub_answer answer = stub_load_answer(argv[2], argv[3], request_id, "bench");
    size_t id_at = answer.id_at + sizeof request_id - 1 - 4; /* its last 4 digits change per invoke */
    uint64_t *walls = calloc((size_t)(count > 0 ? count : 1), sizeof *walls);
    if (!stub_in_init() || !walls) return 3;

    int ls = listen_loopback(argv[1]);
    if (ls < 0) return 2;

    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    int fd = -1;
    uint64_t first_next = 0;
    long served = 0, timed = 0;
    uint64_t sent_at = 0;
    int holding = 0;
    char req[8]; /* the request line's start: its method is all this stub looks at */
    size_t body;

    for (;;) {
        struct epoll_event events[4];
        int n = epoll_wait(ep, events, 4, -1);
        if (n < 0) { if (errno == EINTR) continue; return 5; }
        for (int i = 0; i < n; i++) {
            if (events[i].data.fd == ls) {
                int c = accept_client(ls);
                if (c < 0) continue;
                if (fd >= 0) close(fd); /* a runtime reconnecting: the new connection wins */
                fd = c;
                /* serve this connection with blocking reads: one client at a time is all a
                   runtime uses, and no epoll_wait between requests saves two syscalls */
            }
            if (fd < 0) continue;
            for (;;) {
                if (!read_request(fd, req, sizeof req, &body)) { close(fd); fd = -1; break; }
                if (req[0] == 'G') { /* GET /next */
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
                    memcpy(answer.bytes + id_at, id, 4); /* only the request id changes per invoke */
                    sent_at = now_ns();
                    send_all(fd, answer.bytes, answer.len);
                } else { /* POST /response or /error */
                    if (served > warmup) walls[timed++] = now_ns() - sent_at;
                    send_accepted(fd);
                }
                if (fd < 0) break;
            }
        }
    }
}
