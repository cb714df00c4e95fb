/* lambdaric native hot path: the Runtime API response-head parser (see lr_http.c). */
#ifndef LR_HTTP_H
#define LR_HTTP_H

#include <stddef.h>

#define LR_MAX_HEAD 65536

enum {
    LR_H_REQUEST_ID, LR_H_DEADLINE, LR_H_FUNCTION_ARN, LR_H_TRACE_ID, LR_H_CLIENT_CONTEXT,
    LR_H_COGNITO_IDENTITY, LR_H_TENANT_ID, LR_H_INVOCATION_ID, LR_H_CONTENT_TYPE,
    LR_H_CONTENT_LENGTH, LR_H_TRANSFER_ENCODING, LR_H_CONNECTION, LR_H_COUNT
};

enum { LR_E_STATUS = 1, LR_E_HEADER, LR_E_NUL, LR_E_REPEATED, LR_E_TOO_LARGE, LR_E_LENGTH };

typedef struct { long off; long len; int present; } lr_span;

typedef struct {
    int status;
    int header_count;
    long content_length;
    long error_at;
    lr_span headers[LR_H_COUNT];
} lr_head;

int lr_parse_head(const char *buf, size_t len, lr_head *out);
int lr_content_length(const char *buf, const lr_head *head, long long *value);

#endif
