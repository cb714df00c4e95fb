/* lambdaric native hot path: the Runtime API exchange (lr_http.c parses, lr_conn.c does the I/O).
 * This header is also the cffi declaration (native/build_native.py reads it), so it holds only
 * what cffi's C parser understands: plain types, enums, integer #defines, prototypes. */
#ifndef LR_HTTP_H
#define LR_HTTP_H

#include <stddef.h>

#define LR_MAX_HEAD 65536
#define LR_VALUES_SIZE 65600

enum {
    LR_H_REQUEST_ID, LR_H_DEADLINE, LR_H_FUNCTION_ARN, LR_H_TRACE_ID, LR_H_CLIENT_CONTEXT,
    LR_H_COGNITO_IDENTITY, LR_H_TENANT_ID, LR_H_INVOCATION_ID, LR_H_CONTENT_TYPE,
    LR_H_CONTENT_LENGTH, LR_H_TRANSFER_ENCODING, LR_H_CONNECTION, LR_H_COUNT
};

/* What was wrong with a malformed answer (lr_parse_head returns the negative). */
enum { LR_E_STATUS = 1, LR_E_HEADER, LR_E_NUL, LR_E_REPEATED, LR_E_TOO_LARGE, LR_E_LENGTH, LR_E_BODY_LIMIT, LR_E_UNSAFE };

typedef struct { long off; long len; int present; } lr_span;

typedef struct {
    int status;
    long content_length;
    long error_at;
    lr_span headers[LR_H_COUNT];
} lr_head;

int lr_parse_head(const char *buf, size_t len, lr_head *out);

/* A head parse that resumes where it stopped, as more bytes of the same answer arrive (lr_conn
 * keeps one per answer, so a head received in many pieces is parsed once, not once per piece).
 * line = scanned = 0 starts a new parse; lr_parse_head_resume(buf, len, scan) then answers what
 * lr_parse_head(buf, len, &scan->head) answers, on every call, as long as buf's first bytes are
 * those of the earlier calls and len never shrinks; after a non-zero answer, start anew. */
typedef struct {
    lr_head head;   /* the lines parsed so far */
    size_t line;    /* where the first line not parsed yet begins (0: the status line) */
    size_t scanned; /* buf[line:scanned] holds no '\n' (searched already) */
} lr_scan;

int lr_parse_head_resume(const char *buf, size_t len, lr_scan *scan);
int lr_content_length(const char *buf, const lr_head *head, long long *value);

/* ---- the connection (lr_conn.c) ---------------------------------------------------------- */

/* Results of the exchange calls. */
enum {
    LR_DONE = 0,          /* answer complete; its body is buf[body_off : body_off + body_len] */
    LR_BODY_LARGE = 1,    /* head read; body_len bytes follow: read them with lr_read_body */
    LR_BODY_CHUNKED = 2,  /* head read; a chunked body follows: lr_pull the raw bytes */
    LR_BODY_TO_CLOSE = 3, /* head read; the body runs to the end of the connection: lr_pull */
    LR_WAIT = -1,         /* interrupted by a signal or the poll interval passed: call again */
    LR_CLOSED = -2,       /* the peer closed the connection (`partial`: part of an answer came) */
    LR_OS = -3,           /* an OS error: `err` holds errno */
    LR_BAD = -4,          /* malformed answer or unsafe input: `perr` holds LR_E_*, `error_at` where */
    LR_STALLED = -5       /* the answer was not complete `answer_ms` after its first byte came */
};

/* Which request lr_post sends. */
/* LR_POST_INIT_ERROR and LR_POST_RESTORE_ERROR take no request id (pass ""). GET /next and
 * GET /restore/next are both lr_next, each with its own prebuilt request bytes. */
enum { LR_POST_RESPONSE, LR_POST_ERROR, LR_POST_INIT_ERROR, LR_POST_STREAM, LR_POST_RESTORE_ERROR };

/* One keep-alive connection to the Runtime API. Allocated (zeroed) and owned by the caller,
 * as is the receive buffer `buf` of `cap` bytes; the C side never allocates. Fields below
 * `public` are results for the caller to read; the rest is state. */
typedef struct {
    int fd;
    char *buf;
    size_t cap;
    const char *common;  /* " HTTP/1.1\r\nHost: ...\r\nUser-Agent: ...\r\n", owned by the caller */
    size_t common_len;
    /* state */
    size_t start, end;   /* unread received bytes are buf[start:end] */
    int phase;           /* 0: sending, 1: receiving */
    int have_head;
    size_t sent;         /* bytes of the current request already sent */
    size_t head_at, head_len;
    size_t got;          /* bytes of a large body already read */
    lr_scan scan;        /* the head being parsed at buf[start:end] (phase 1; reset with the exchange) */
    long long limit;
    char length_line[48];
    int answer_ms;       /* bound on an answer once its first byte is in (0: none); the caller sets it */
    long long answer_end; /* CLOCK_MONOTONIC ms by which the answer must be complete; 0: no byte yet */
    /* public results */
    int status;
    int keep_alive;
    int partial;
    int err;
    int perr;
    long error_at;
    size_t body_off;
    size_t body_len;
    size_t values_len;   /* values: the first 9 known headers' values joined by NUL ("" = absent) */
    char values[LR_VALUES_SIZE];
} lr_conn;

int lr_init(lr_conn *c, int fd, char *buf, size_t cap, const char *common, size_t common_len, int poll_ms);
void lr_reset(lr_conn *c); /* forget the exchange in progress; results stay */
int lr_next(lr_conn *c, const char *request, size_t request_len, long long limit);
int lr_post(lr_conn *c, int kind, const char *request_id, size_t request_id_len, const char *content_type,
            size_t content_type_len, const char *extra, size_t extra_len, const char *body, size_t body_len,
            long long limit);
int lr_answer(lr_conn *c, long long limit);
int lr_read_body(lr_conn *c, char *dst, size_t len);
long lr_pull(lr_conn *c, char *dst, size_t len);
int lr_unread(lr_conn *c, const char *src, size_t len);
int lr_send_chunk(lr_conn *c, const char *data, size_t len);
int lr_send_last_chunk(lr_conn *c, const char *trailers, size_t len);
int lr_tune_malloc(int mmap_threshold, int trim_threshold);
/* putenv(3) of buf once src (n bytes, NUL included) is copied into it: the caller owns buf (lambdaric.traceenv) */
int lr_putenv_copy(char *buf, size_t cap, const char *src, size_t n);

/* Connecting without Python's socket module (lr_conn.c): a numeric IPv4 / IPv6 address only. */
enum { LR_NOT_NUMERIC = -100000 }; /* lr_connect: not a numeric address (the caller resolves it) */
int lr_connect(const char *host, int port);  /* a connecting fd (then lr_connect_wait), or -errno */
int lr_connect_wait(int fd, int poll_ms);    /* 0 connected, LR_WAIT (call again), or -errno */
int lr_peer_closed(int fd);                  /* 1: the peer closed or reset (or fd is bad); 0: not */
int lr_close(int fd);                        /* close(2): 0, or -errno */

#endif
