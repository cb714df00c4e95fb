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
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static char *inbuf;
static size_t incap = 1 << 16, inlen;

/* Read one whole HTTP request (head + Content-Length body) from fd; 0 on EOF.
   The request line goes to line (cut to llen - 1), the body length to *body_len. */
static int read_request(int fd, char *line, size_t llen, size_t *body_len) {
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
    while (m + 1 < llen && m < head_end && inbuf[m] != '\r') { line[m] = inbuf[m]; m++; }
    line[m] = 0;
    *body_len = body;
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

#define ID_FMT "soak-%010ld"
#define ID_LEN 15

/* One event's whole /next answer, the request id at id_at (overwritten per invoke). */
struct answer { char *bytes; size_t len, id_at; };

static struct answer load(const char *path) {
    struct answer a = {0};
    FILE *ef = fopen(path, "rb");
    if (!ef) { perror(path); exit(2); }
    struct stat st;
    fstat(fileno(ef), &st);
    size_t elen = (size_t)st.st_size;
    char head[1024];
    int hlen = snprintf(head, sizeof head,
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        "Lambda-Runtime-Aws-Request-Id: " ID_FMT "\r\n"
                        "Lambda-Runtime-Deadline-Ms: 4102444800000\r\n"
                        "Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:012345678912:function:soak\r\n"
                        "Lambda-Runtime-Trace-Id: Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1\r\n"
                        "Content-Length: %zu\r\n\r\n",
                        0L, elen);
    if (hlen <= 0 || hlen >= (int)sizeof head) exit(2);
    a.bytes = malloc(elen + (size_t)hlen + 1);
    if (!a.bytes) exit(3);
    memcpy(a.bytes, head, (size_t)hlen);
    if (fread(a.bytes + hlen, 1, elen, ef) != elen) exit(6);
    fclose(ef);
    a.id_at = (size_t)((char *)memmem(a.bytes, (size_t)hlen, "soak-", 5) - a.bytes);
    a.len = (size_t)hlen + elen;
    return a;
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
    struct answer small = load(argv[5]), big = load(argv[6]), fail = load(argv[8]);
    inbuf = malloc(incap);
    if (!inbuf) return 3;

    int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(ls, (struct sockaddr *)&addr, sizeof addr) || listen(ls, 16)) { perror("listen"); return 2; }
    socklen_t alen = sizeof addr;
    getsockname(ls, (struct sockaddr *)&addr, &alen);
    FILE *pf = fopen(argv[1], "w");
    if (!pf) return 2;
    fprintf(pf, "%d\n", ntohs(addr.sin_port));
    fclose(pf);

    long served = 0, responses = 0, errors = 0, wrong_id = 0, wrong_kind = 0, other = 0;
    unsigned long long response_bytes = 0;
    int in_flight_fails = 0, ready_said = 0;
    char id[32] = "", line[256];
    for (;;) {
        int fd = accept(ls, NULL, NULL); /* a runtime reconnecting: serve the new connection */
        if (fd < 0) { if (errno == EINTR) continue; return 5; }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        inlen = 0;
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
                struct answer *a = served % fail_every == 0 ? &fail : served % big_every == 0 ? &big : &small;
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
                static const char ok[] = "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{\"status\":\"OK\"}\n";
                send_all(fd, ok, sizeof ok - 1);
            } else {
                other++;
                static const char nf[] = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
                send_all(fd, nf, sizeof nf - 1);
            }
        }
        close(fd);
    }
}
