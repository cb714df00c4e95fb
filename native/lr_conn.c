/*
 * lambdaric native hot path: one keep-alive connection to the Runtime API.
 *
 * Why C here: the Python transport spends most of its own time splitting and lower-casing
 * header lines. This file sends each request with one gathered sendmsg (no copy of the
 * body, the request id or the content type), receives into one caller-owned buffer, parses
 * the head in place (lr_http.c) and hands back the Lambda-Runtime-* values as one
 * NUL-joined block, so Python makes one string and one split per invoke.
 *
 * Blocking and signals: the socket gets SO_RCVTIMEO/SO_SNDTIMEO of `poll_ms`, so a blocked
 * call returns within that time (or at once on EINTR) with LR_WAIT; every call is
 * resumable (progress lives in lr_conn), and the Python loop around it lets the
 * interpreter run signal handlers between attempts. cffi releases the GIL for each call.
 *
 * Safety: every index is checked against `cap`; nothing is allocated; malformed input
 * gives LR_BAD with a reason (LR_E_*), never a crash.
 *
 * The rules this file keeps (fuzz_lr_conn.c checks those marked [F] after every call):
 *
 * Memory. The caller owns everything: the lr_conn (allocated zeroed), the receive buffer
 * `buf` of `cap` bytes (lr_init refuses cap < 2 * LR_MAX_HEAD), `common`, the pieces given to
 * lr_post / lr_send_* (read during the call only), and `dst` of lr_read_body / lr_pull. Nothing
 * here allocates or frees, and there is no mutable static state: calls on different lr_conns
 * are independent.
 *
 * The buffer. [F] 0 <= start <= end <= cap after every call. buf[start:end] are the received
 * bytes not handed out yet; they always begin where the last answer (or the part of a body
 * already handed out) ended. When a call hands out the last of them (LR_DONE, lr_read_body,
 * lr_pull) start and end go back to 0 (`drained`), so the next answer is received at the front.
 * While a head is read (phase 1, have_head 0) it begins at `start`, and buf[start:end] holds at
 * most LR_MAX_HEAD bytes each time fill() is called (the parser answers 0, "more", only
 * then); so when end reaches cap, start >= cap - LR_MAX_HEAD > 0 and moving the unread bytes
 * to the front makes room (fill's refusal cannot happen). Once the head is in (have_head 1):
 * head_at == start is where it begins, head_len its length, and head_len + body_len <= cap -
 * head_at (the unread bytes are moved to the front first when that makes it true), so fill()
 * is never called with end == cap while have_head is set.
 *
 * The head parse. `scan` (lr_parse_head_resume) holds how far the head at buf[start:end] was
 * parsed: its offsets count from start, so moving the unread bytes to the front keeps it
 * right, and each receive looks only at the bytes it brought and the lines they complete (a
 * head received in n pieces costs about one parse, not n: work linear in the head's length).
 * A line ends at its '\n' alone, so a CR LF split between receives needs no care. [F] It is
 * fresh (line = scanned = 0) whenever phase is 0: end_exchange resets it, so every answer's
 * head is parsed from its own first byte; [F] what it holds after a receive is what
 * lr_parse_head of buf[start:end] gives (and so is an LR_BAD's reason).
 *
 * Phases. phase 0: no request in flight; lr_next / lr_post send theirs (after LR_WAIT: the
 * rest of it, `sent` bytes having gone out; the caller passes the same arguments again).
 * phase 1: the request went out (begin_answer), its answer is awaited; lr_next / lr_post /
 * lr_answer only read. end_exchange() is the one way back to 0: when a head is in and its body
 * is left to lr_read_body / lr_pull (start is then the body's first byte), when a whole answer
 * is in (LR_DONE), and on LR_BAD. LR_WAIT keeps everything for the next call. After LR_CLOSED,
 * LR_OS or LR_STALLED the connection is done for: the caller closes it, and lr_reset or lr_init
 * clears the state (clear_state).
 *
 * Return codes, and what each guarantees about the fields:
 *   LR_DONE       lr_next / lr_post / lr_answer: the whole answer is in: status, keep_alive,
 *                 values / values_len and head_len are its; [F] its body is buf[body_off :
 *                 body_off + body_len] (body_off = head_at + head_len, within cap), valid until
 *                 the next receive; phase 0. lr_read_body: dst holds len bytes, got is 0 again.
 *                 lr_send_*: every byte went out, sent is 0 again. lr_unread: the bytes are in
 *                 front of start.
 *   LR_BODY_*     the head is in (status, keep_alive, values, head_len as for LR_DONE); the body
 *                 begins at start; phase 0. LR_BODY_LARGE: body_len bytes follow, got is 0.
 *                 LR_BODY_TO_CLOSE: keep_alive is 0.
 *   LR_WAIT       nothing is lost: progress stays in sent, start/end, have_head and got.
 *   LR_CLOSED     the peer closed: a receive got 0 bytes (`partial`: part of an answer or body
 *                 was in; lr_pull leaves it as it was; err untouched), or a call failed with
 *                 EPIPE or ECONNRESET in phase 0 (a send, or lr_read_body's / lr_pull's receive:
 *                 err holds which, partial whether unread bytes or a head were in).
 *   LR_OS         [F] err holds the errno (never EINTR or EAGAIN, those are LR_WAIT);
 *                 EPIPE / ECONNRESET in phase 1 (an answer awaited) also set partial as above.
 *   LR_BAD        [F] perr holds the LR_E_* and error_at where (an offset in the head, 0 when
 *                 there is none); the exchange is over (phase 0, have_head 0) and start is where
 *                 the refused head begins (native.py re-parses buf[start:end] for the message).
 *   LR_STALLED    [F] err is ETIMEDOUT and partial is 1: answer_ms passed since the first byte
 *                 of the awaited answer (answer_end: 0 until that byte, set by stalled()).
 * Results are never cleared between calls (lr_init clears them): read a field only after a
 * return code that promises it. [F] values_len < LR_VALUES_SIZE, with 8 NULs between 9 values.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "lr_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <time.h>

#define PREFIX "/2018-06-01/runtime"
#define MAX_IOV 12

/* take_values copies at most every byte of a head (at most LR_MAX_HEAD) plus the
 * LR_H_CONTENT_TYPE NUL separators between its values, and keeps values_len < LR_VALUES_SIZE:
 * so no value is ever left out for want of room. C99 has no _Static_assert: a negative array
 * size fails the compile instead. */
typedef char lr_values_cover_a_head[LR_VALUES_SIZE > LR_MAX_HEAD + LR_H_CONTENT_TYPE ? 1 : -1];

/* The exchange is over (its head is in, or it was refused): the next lr_next / lr_post sends.
 * `next`: where the bytes not handed out yet begin. */
static void end_exchange(lr_conn *c, size_t next) {
    c->start = next;
    c->have_head = 0;
    c->phase = 0;
    c->scan.line = c->scan.scanned = 0; /* the next answer's head is parsed anew */
}

/* Every received byte was handed out: receive at the front of the buffer again. */
static void drained(lr_conn *c) {
    if (c->start == c->end) c->start = c->end = 0;
}

/* Forget the exchange in progress (a new or closed connection); results stay readable. */
static void clear_state(lr_conn *c) {
    c->end = 0;
    end_exchange(c, 0);
    c->sent = 0;
    c->got = 0;
}

static void clear_results(lr_conn *c) {
    c->status = 0;
    c->keep_alive = 1;
    c->partial = 0;
    c->err = 0;
    c->perr = 0;
    c->error_at = 0;
    c->body_off = c->body_len = 0;
    c->values_len = 0;
}

int lr_init(lr_conn *c, int fd, char *buf, size_t cap, const char *common, size_t common_len, int poll_ms) {
    struct timeval tv;
    int one = 1;
    if (cap < 2 * LR_MAX_HEAD) return -EINVAL; /* a whole head plus room to read behind it */
    c->fd = fd;
    c->buf = buf;
    c->cap = cap;
    c->common = common;
    c->common_len = common_len;
    clear_state(c);
    clear_results(c);
    tv.tv_sec = poll_ms / 1000;
    tv.tv_usec = (poll_ms % 1000) * 1000;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0 && errno != EOPNOTSUPP && errno != ENOPROTOOPT)
        return -errno; /* (a Unix socket has no TCP_NODELAY: fine) */
    if (poll_ms > 0) {
        if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0) return -errno;
        if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0) return -errno;
    }
    return 0;
}

void lr_reset(lr_conn *c) { clear_state(c); }

static int wait_or_error(lr_conn *c, int e) {
    if (e == EINTR || e == EAGAIN || e == EWOULDBLOCK) return LR_WAIT;
    c->err = e;
    if (e == EPIPE || e == ECONNRESET) {
        c->partial = c->have_head || c->end > c->start;
        return c->phase == 0 ? LR_CLOSED : LR_OS;
    }
    return LR_OS;
}

#ifdef LR_FUZZ_CLOCK
long long lr_fuzz_now_ms(void); /* fuzz_lr_conn.c's virtual clock: stalls are tested without sleeping */
#define now_ms lr_fuzz_now_ms
#else
static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
#endif

/* The answer bound (`answer_ms`): a /next may wait forever for its answer to begin (the
 * sandbox is frozen between events), but an answer that began and then stalls is a fault.
 * The first byte arms the deadline; every receive after it (or its poll timeout) checks it.
 * `got`: bytes came in this receive. Returns 1 when the deadline has passed. */
static int stalled(lr_conn *c, int got) {
    long long now;
    if (!c->answer_ms || (!got && !c->answer_end)) return 0;
    now = now_ms();
    if (!c->answer_end) {
        c->answer_end = now + c->answer_ms;
        return 0;
    }
    if (now <= c->answer_end) return 0;
    c->err = ETIMEDOUT;
    c->partial = 1;
    return 1;
}

/* An answer is awaited from now on: bytes already buffered are its beginning. */
static void begin_answer(lr_conn *c) {
    c->phase = 1;
    c->answer_end = 0;
    if (c->end > c->start) stalled(c, 1);
}

/* A receive failed with `e`: LR_WAIT (call again), unless the answer bound ran out. */
static int recv_failed(lr_conn *c, int e) {
    int r = wait_or_error(c, e);
    return r == LR_WAIT && stalled(c, 0) ? LR_STALLED : r;
}

/* Send iov[0..n), skipping the c->sent bytes that went out on an earlier, interrupted attempt. */
static int send_iov(lr_conn *c, struct iovec *iov, int n) {
    size_t skip = c->sent;
    int i = 0;
    while (i < n && skip >= iov[i].iov_len) skip -= iov[i++].iov_len;
    if (i < n) {
        iov[i].iov_base = (char *)iov[i].iov_base + skip;
        iov[i].iov_len -= skip;
    }
    while (i < n) {
        struct msghdr msg;
        ssize_t w;
        memset(&msg, 0, sizeof msg);
        msg.msg_iov = iov + i;
        msg.msg_iovlen = (size_t)(n - i);
        w = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
        if (w < 0) return wait_or_error(c, errno);
        c->sent += (size_t)w;
        while (i < n && (size_t)w >= iov[i].iov_len) w -= (ssize_t)iov[i++].iov_len;
        if (i < n) {
            iov[i].iov_base = (char *)iov[i].iov_base + w;
            iov[i].iov_len -= (size_t)w;
        }
    }
    c->sent = 0;
    return LR_DONE;
}

/* A malformed answer or an unsafe request: LR_BAD, always with the reason and where. */
static int bad(lr_conn *c, int why, long at) {
    c->perr = why;
    c->error_at = at;
    end_exchange(c, c->start);
    return LR_BAD;
}

/* Receive more bytes behind c->end, moving unread bytes to the front when the end is reached. */
static int fill(lr_conn *c) {
    ssize_t r;
    if (c->end == c->cap) {
        size_t keep = c->end - c->start;
        if (c->start == 0) return bad(c, LR_E_TOO_LARGE, 0); /* cannot happen: callers bound what they buffer */
        memmove(c->buf, c->buf + c->start, keep);
        c->head_at -= c->have_head ? c->start : 0;
        c->start = 0;
        c->end = keep;
    }
    r = recv(c->fd, c->buf + c->end, c->cap - c->end, 0);
    if (r < 0) return recv_failed(c, errno);
    if (r == 0) {
        c->partial = c->have_head || c->end > c->start;
        return LR_CLOSED;
    }
    c->end += (size_t)r;
    return stalled(c, 1) ? LR_STALLED : LR_DONE;
}

static int lower(int ch) { return (ch >= 'A' && ch <= 'Z') ? ch + ('a' - 'A') : ch; }

/* Case-insensitive: does span `s` of the head contain `word`, or equal it (`whole`)? */
static int span_has(const char *head, const lr_span *s, const char *word, int whole) {
    size_t n = strlen(word), i, j;
    if (!s->present || (size_t)s->len < n) return 0;
    if (whole && (size_t)s->len != n) return 0;
    for (i = 0; i + n <= (size_t)s->len; i++) {
        for (j = 0; j < n && lower((unsigned char)head[s->off + (long)(i + j)]) == word[j]; j++) {
        }
        if (j == n) return 1;
    }
    return 0;
}

/* Copy the values of the first LR_H_CONTENT_TYPE+1 known headers, NUL-joined, to c->values. */
static void take_values(lr_conn *c, const char *head, const lr_head *h) {
    size_t at = 0;
    int i;
    for (i = 0; i <= LR_H_CONTENT_TYPE; i++) {
        const lr_span *s = &h->headers[i];
        if (i) c->values[at++] = '\0';
        if (s->present && s->len > 0 && at + (size_t)s->len < sizeof c->values) {
            memcpy(c->values + at, head + s->off, (size_t)s->len);
            at += (size_t)s->len;
        }
    }
    c->values_len = at;
}

/* Read one answer: its head, and its body when the body fits in the buffer. */
static int read_answer(lr_conn *c) {
    const lr_head *h = &c->scan.head;
    for (;;) {
        if (!c->have_head) { /* (resumed where the last receive's parse stopped) */
            int n = lr_parse_head_resume(c->buf + c->start, c->end - c->start, &c->scan);
            long long length = -1;
            size_t need;
            int r;
            if (n < 0) return bad(c, -n, h->error_at);
            if (n == 0) {
                if ((r = fill(c)) != LR_DONE) return r;
                continue;
            }
            c->have_head = 1;
            c->head_at = c->start;
            c->head_len = (size_t)n;
            c->status = h->status;
            c->keep_alive = !span_has(c->buf + c->start, &h->headers[LR_H_CONNECTION], "close", 1);
            take_values(c, c->buf + c->start, h);
            if (span_has(c->buf + c->start, &h->headers[LR_H_TRANSFER_ENCODING], "chunked", 0)) {
                end_exchange(c, c->start + c->head_len);
                return LR_BODY_CHUNKED;
            }
            r = lr_content_length(c->buf + c->start, h, &length);
            if (r < 0) return bad(c, LR_E_LENGTH, h->headers[LR_H_CONTENT_LENGTH].off);
            if (r == 0) {
                if (h->status >= 200 && h->status != 204 && h->status != 304) {
                    end_exchange(c, c->start + c->head_len);
                    c->keep_alive = 0;
                    return LR_BODY_TO_CLOSE;
                }
                length = 0;
            }
            c->body_len = (size_t)length;
            if (length > c->limit) return bad(c, LR_E_BODY_LIMIT, 0);
            need = c->head_len + (size_t)length;
            if (need > c->cap - c->head_at) {
                if (need <= c->cap) { /* fits once the unread bytes move to the front */
                    memmove(c->buf, c->buf + c->start, c->end - c->start);
                    c->end -= c->start;
                    c->start = c->head_at = 0;
                } else {
                    end_exchange(c, c->start + c->head_len); /* lr_read_body takes the body from here */
                    c->got = 0;
                    return LR_BODY_LARGE;
                }
            }
        }
        if (c->end - c->head_at >= c->head_len + c->body_len) {
            c->body_off = c->head_at + c->head_len;
            end_exchange(c, c->body_off + c->body_len);
            drained(c);
            return LR_DONE;
        }
        {
            int r = fill(c);
            if (r != LR_DONE) return r;
        }
    }
}

int lr_next(lr_conn *c, const char *request, size_t request_len, long long limit) {
    if (c->phase == 0) {
        struct iovec iov[1];
        int r;
        iov[0].iov_base = (void *)request;
        iov[0].iov_len = request_len;
        if ((r = send_iov(c, iov, 1)) != LR_DONE) return r;
        begin_answer(c);
        c->limit = limit;
    }
    return read_answer(c);
}

static int is_alnum(int ch) { return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'); }

/* A request id goes into a URL path: only characters that cannot change the path's meaning. */
static int safe_request_id(const char *s, size_t n) {
    size_t i;
    if (n == 0 || n > 256 || !is_alnum((unsigned char)s[0])) return 0;
    for (i = 0; i < n; i++) {
        int ch = (unsigned char)s[i];
        if (!is_alnum(ch) && (ch == 0 || !strchr("._:+=@-", ch))) return 0;
    }
    return 1;
}

/* A header value: printable ASCII and tabs only, so nothing can end the line early. */
static int safe_value(const char *s, size_t n) {
    size_t i;
    if (n > 8192) return 0;
    for (i = 0; i < n; i++) {
        int ch = (unsigned char)s[i];
        if ((ch < 0x20 && ch != '\t') || ch >= 0x7f) return 0;
    }
    return 1;
}

/* Append a piece to the local array `iov` (k pieces so far); a request needing more pieces than
 * the array holds is refused (LR_E_UNSAFE: nothing is sent) rather than written past it. */
#define IOV(p, n)                                                                                                      \
    do {                                                                                                               \
        if ((size_t)k >= sizeof iov / sizeof iov[0]) return bad(c, LR_E_UNSAFE, 0);                                    \
        iov[k].iov_base = (void *)(p);                                                                                 \
        iov[k].iov_len = (n);                                                                                          \
        k++;                                                                                                           \
    } while (0)
#define IOS(s) IOV(s, sizeof(s) - 1)

int lr_post(lr_conn *c, int kind, const char *request_id, size_t request_id_len, const char *content_type,
            size_t content_type_len, const char *extra, size_t extra_len, const char *body, size_t body_len,
            long long limit) {
    if (c->phase == 0) {
        struct iovec iov[MAX_IOV];
        int k = 0, r;
        int no_id = kind == LR_POST_INIT_ERROR || kind == LR_POST_RESTORE_ERROR;
        if (kind < LR_POST_RESPONSE || kind > LR_POST_RESTORE_ERROR) return bad(c, LR_E_UNSAFE, 0);
        if (!no_id && !safe_request_id(request_id, request_id_len)) return bad(c, LR_E_UNSAFE, 0);
        if (!safe_value(content_type, content_type_len)) return bad(c, LR_E_UNSAFE, 0);
        if (c->sent == 0) { /* first attempt: fix the length line (kept for resumed attempts) */
            if (kind == LR_POST_STREAM)
                snprintf(c->length_line, sizeof c->length_line, "Transfer-Encoding: chunked\r\n\r\n");
            else
                snprintf(c->length_line, sizeof c->length_line, "Content-Length: %zu\r\n\r\n", body_len);
        }
        if (kind == LR_POST_INIT_ERROR) {
            IOS("POST " PREFIX "/init/error");
        } else if (kind == LR_POST_RESTORE_ERROR) {
            IOS("POST " PREFIX "/restore/error");
        } else {
            IOS("POST " PREFIX "/invocation/");
            IOV(request_id, request_id_len);
            if (kind == LR_POST_ERROR)
                IOS("/error");
            else
                IOS("/response");
        }
        IOV(c->common, c->common_len);
        IOS("Content-Type: ");
        IOV(content_type, content_type_len);
        IOS("\r\n");
        if (extra_len) IOV(extra, extra_len);
        IOV(c->length_line, strlen(c->length_line));
        if (kind != LR_POST_STREAM && body_len) IOV(body, body_len);
        if ((r = send_iov(c, iov, k)) != LR_DONE) return r;
        if (kind == LR_POST_STREAM) return LR_DONE; /* chunks follow; then lr_answer */
        begin_answer(c);
        c->limit = limit;
    }
    return read_answer(c);
}

int lr_answer(lr_conn *c, long long limit) {
    if (c->phase == 0) begin_answer(c); /* (called again after LR_WAIT: keep the deadline) */
    c->limit = limit;
    return read_answer(c);
}

int lr_read_body(lr_conn *c, char *dst, size_t len) {
    while (c->got < len) {
        size_t buffered = c->end - c->start;
        ssize_t r;
        if (buffered) {
            size_t take = buffered < len - c->got ? buffered : len - c->got;
            memcpy(dst + c->got, c->buf + c->start, take);
            c->start += take;
            c->got += take;
            drained(c);
            continue;
        }
        r = recv(c->fd, dst + c->got, len - c->got, 0);
        if (r < 0) return recv_failed(c, errno);
        if (r == 0) {
            c->partial = 1;
            return LR_CLOSED;
        }
        c->got += (size_t)r;
        if (stalled(c, 1)) return LR_STALLED;
    }
    c->got = 0;
    return LR_DONE;
}

long lr_pull(lr_conn *c, char *dst, size_t len) {
    size_t buffered = c->end - c->start;
    ssize_t r;
    if (buffered) {
        size_t take = buffered < len ? buffered : len;
        memcpy(dst, c->buf + c->start, take);
        c->start += take;
        drained(c);
        return (long)take;
    }
    r = recv(c->fd, dst, len, 0);
    if (r < 0) return recv_failed(c, errno);
    if (r == 0) return LR_CLOSED;
    return stalled(c, 1) ? LR_STALLED : (long)r;
}

/* Put back `len` bytes pulled too far (what followed a chunked body) in front of the
 * bytes still buffered, so the next answer is read from exactly where the body ended. */
int lr_unread(lr_conn *c, const char *src, size_t len) {
    size_t keep = c->end - c->start;
    if (len > c->cap - keep) return bad(c, LR_E_TOO_LARGE, 0);
    if (len > c->start) { /* no room in front: move the unread bytes back */
        memmove(c->buf + len, c->buf + c->start, keep);
        c->start = len;
        c->end = len + keep;
    }
    c->start -= len;
    memmove(c->buf + c->start, src, len);
    return LR_DONE;
}

/* Inside a stream the head and earlier chunks went out: a closed connection is never "closed
 * before an answer, safe to send again" (that would resend part of a stream). */
static int stream_sent(lr_conn *c, int r) {
    if (r == LR_CLOSED || r == LR_OS) c->partial = 1;
    return r;
}

int lr_send_chunk(lr_conn *c, const char *data, size_t len) {
    struct iovec iov[3];
    int k = 0;
    if (len == 0) return LR_DONE; /* an empty chunk would end the body */
    if (c->sent == 0) snprintf(c->length_line, sizeof c->length_line, "%zx\r\n", len);
    IOV(c->length_line, strlen(c->length_line));
    IOV(data, len);
    IOS("\r\n");
    return stream_sent(c, send_iov(c, iov, k));
}

int lr_send_last_chunk(lr_conn *c, const char *trailers, size_t len) {
    struct iovec iov[3];
    int k = 0;
    IOS("0\r\n");
    if (len) IOV(trailers, len);
    IOS("\r\n");
    return stream_sent(c, send_iov(c, iov, k));
}

/*
 * Large payloads: glibc serves allocations above its mmap threshold with mmap and gives
 * them back with munmap, so every multi-megabyte event, body copy and JSON string faults
 * its pages in afresh (perf on the 5 MB echo workload: about a third of the process's CPU
 * in page faults). Raising the mmap threshold above the largest payload and the trim
 * threshold above that keeps freed megabytes in the heap for the next invoke; peak memory
 * is unchanged, the heap just does not shrink back between invokes. glibc only (musl has
 * no mallopt); returns 1 when applied.
 */
int lr_tune_malloc(int mmap_threshold, int trim_threshold) {
#if defined(__GLIBC__)
    return mallopt(M_MMAP_THRESHOLD, mmap_threshold) == 1 && mallopt(M_TRIM_THRESHOLD, trim_threshold) == 1;
#else
    (void)mmap_threshold;
    (void)trim_threshold;
    return 0;
#endif
}

/*
 * putenv(3), for lambdaric.traceenv: the environment keeps the caller's pointer (no copy), so
 * a variable rewritten on every invoke costs no memory, where setenv(3) leaves each replaced
 * value allocated (glibc cannot know whether a getenv() pointer to it is still held). The n
 * bytes of `src` (NAME=value and its NUL) are copied into `buf` (`cap` bytes, owned by the
 * caller, kept alive while it is in the environment), then buf is put: one call per invoke.
 * Returns putenv's result (0 on success), or -1 with nothing written when the copy would not
 * fit or does not end with its NUL.
 */
int lr_putenv_copy(char *buf, size_t cap, const char *src, size_t n) {
    if (n == 0 || n > cap || src[n - 1] != '\0') return -1;
    memcpy(buf, src, n);
    return putenv(buf);
}

/*
 * Connecting (native.py's _connect), so that the native transport needs no socket module: a
 * numeric IPv4 or IPv6 address (what AWS_LAMBDA_RUNTIME_API holds) is connected here; any other
 * host gives LR_NOT_NUMERIC and Python resolves it. The connect is started non-blocking and
 * finished by lr_connect_wait, which waits at most poll_ms at a time and returns LR_WAIT
 * (interrupted or not yet): Python calls it again after running its signal handlers, as for
 * every other call here. The fd is made blocking again once connected (lr_init's timeouts
 * bound each call from then on). No lookup, no allocation; every fd made here is close-on-exec.
 */
int lr_connect(const char *host, int port) {
    struct sockaddr_in a4;
    struct sockaddr_in6 a6;
    struct sockaddr *addr;
    socklen_t len;
    int fd, family, flags;
    if (port < 0 || port > 65535) return -EINVAL;
    memset(&a4, 0, sizeof a4);
    memset(&a6, 0, sizeof a6);
    if (inet_pton(AF_INET, host, &a4.sin_addr) == 1) {
        a4.sin_family = AF_INET;
        a4.sin_port = htons((unsigned short)port);
        addr = (struct sockaddr *)&a4;
        len = sizeof a4;
        family = AF_INET;
    } else if (inet_pton(AF_INET6, host, &a6.sin6_addr) == 1) {
        a6.sin6_family = AF_INET6;
        a6.sin6_port = htons((unsigned short)port);
        addr = (struct sockaddr *)&a6;
        len = sizeof a6;
        family = AF_INET6;
    } else {
        return LR_NOT_NUMERIC;
    }
    fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 ||
        (connect(fd, addr, len) != 0 && errno != EINPROGRESS && errno != EINTR)) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

int lr_connect_wait(int fd, int poll_ms) {
    struct pollfd p;
    int r, err = 0, flags;
    socklen_t n = sizeof err;
    p.fd = fd;
    p.events = POLLOUT;
    p.revents = 0;
    r = poll(&p, 1, poll_ms);
    if (r < 0) return errno == EINTR ? LR_WAIT : -errno;
    if (r == 0) return LR_WAIT;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &n) != 0) return -errno;
    if (err) return -err;
    flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0) return -errno;
    return 0;
}

int lr_peer_closed(int fd) {
    char ch;
    ssize_t r = recv(fd, &ch, 1, MSG_PEEK | MSG_DONTWAIT);
    if (r > 0) return 0;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return 0;
    return 1;
}

int lr_close(int fd) { return close(fd) == 0 ? 0 : -errno; }
