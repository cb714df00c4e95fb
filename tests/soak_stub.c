/*
 * A fast scripted Lambda Runtime API for the soak test (tests/test_soak.py): benchmarks/stub.c
 * with mixed events and a tally of what came back, so that 100,000 invokes take seconds and
 * the stub is never what is measured.
 *
 * usage: soak_stub PORTFILE WARMUP COUNT TIMEOUT_S SMALL BIG BIG_EVERY FAIL FAIL_EVERY
 *
 * Listens on 127.0.0.1 (ephemeral port, written to PORTFILE). Invoke n (1-based) carries the
 * file FAIL when n % FAIL_EVERY == 0, else BIG when n % BIG_EVERY == 0, else SMALL, with the
 * request id "soak-%010ld" of n. After WARMUP invokes it holds the next /next and prints
 * "READY"; after a line on stdin it serves COUNT more, holds the next /next and prints
 *   "DONE <responses> <errors> <wrong_id> <wrong_kind> <other> <response_bytes>"
 * counted over all invokes: a POST for an id other than the invoke in flight is wrong_id;
 * a /response for a FAIL event or an /error for another one is wrong_kind; any other request
 * is other. Exits when stdin closes; SIGALRM after TIMEOUT_S ends it whatever happens.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "../benchmarks/stub_io.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ID_FMT "soak-%010ld"
#define ID_LEN 15

/* One event's whole /next answer, its request id the first one's (overwritten per invoke). */
static struct stub_answer load(const char *path) {
    char id0[32];
    snprintf(id0, sizeof id0, ID_FMT, 0L);
    return stub_load_answer(path, "application/json", id0, "soak");
}

int main(int argc, char **argv) {
    if (argc != 10) {
        fprintf(stderr, "usage: soak_stub PORTFILE WARMUP COUNT TIMEOUT_S SMALL BIG BIG_EVERY FAIL FAIL_EVERY\n");
        return 2;
    }
    long warmup = atol(argv[2]), count = atol(argv[3]);
    long big_every = atol(argv[7]), fail_every = atol(argv[9]);
    if (big_every <= 0 || fail_every <= 0 || warmup < 0 || count < 0 || warmup + count > 9999999999L) return 2;
    alarm((unsigned)atoi(argv[4]));
    struct stub_answer small = load(argv[5]), big = load(argv[6]), fail = load(argv[8]);
    if (!stub_in_init()) return 3;

    int ls = listen_loopback(argv[1]);
    if (ls < 0) return 2;

    long served = 0, responses = 0, errors = 0, wrong_id = 0, wrong_kind = 0, other = 0;
    unsigned long long response_bytes = 0;
    int in_flight_fails = 0, ready_said = 0;
    char id[32] = "", line[256];
    for (;;) {
        int fd = accept_client(ls); /* a runtime reconnecting: serve the new connection */
        if (fd < 0) { if (errno == EINTR) continue; return 5; }
        size_t body;
        while (read_request(fd, line, sizeof line, &body)) {
            if (strncmp(line, "GET /2018-06-01/runtime/invocation/next ", 40) == 0) {
                if (served == warmup && !ready_said) {
                    ready_said = 1;
                    printf("READY\n");
                    fflush(stdout);
                    char in[16];
                    if (!fgets(in, sizeof in, stdin)) return 0;
                } else if (served == warmup + count) {
                    printf("DONE %ld %ld %ld %ld %ld %llu\n", responses, errors, wrong_id, wrong_kind, other,
                           response_bytes);
                    fflush(stdout);
                    char in[16];
                    while (fgets(in, sizeof in, stdin)) {}
                    return 0;
                }
                served++;
                struct stub_answer *a = served % fail_every == 0 ? &fail : served % big_every == 0 ? &big : &small;
                in_flight_fails = a == &fail;
                snprintf(id, sizeof id, ID_FMT, served % 10000000000L);
                memcpy(a->bytes + a->id_at, id, ID_LEN);
                send_all(fd, a->bytes, a->len);
            } else if (strncmp(line, "POST /2018-06-01/runtime/invocation/", 36) == 0) {
                const char *rest = line + 36;
                const char *kind = rest + ID_LEN;
                if (strncmp(rest, id, ID_LEN) != 0 || kind[0] != '/') wrong_id++;
                if (strncmp(kind, "/response ", 10) == 0) {
                    responses++;
                    response_bytes += body;
                    if (in_flight_fails) wrong_kind++;
                } else if (strncmp(kind, "/error ", 7) == 0) {
                    errors++;
                    if (!in_flight_fails) wrong_kind++;
                } else {
                    other++;
                }
                id[0] = 0; /* a second POST for the same invoke is a wrong id */
                send_accepted(fd);
            } else {
                other++;
                static const char nf[] = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
                send_all(fd, nf, sizeof nf - 1);
            }
        }
        close(fd);
    }
}
