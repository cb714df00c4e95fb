/* lambdaric._codec: the JSON encoder and decoder of events and results, in C.
 *
 * Written against the Python limited API (abi3, 3.9 and later) so that one wheel serves every
 * Python lambdaric supports. It handles only the exact common types and gives up on anything
 * else by returning NOT_MINE; lambdaric/marshal.py then hands the whole value (or the whole
 * input) to simplejson, exactly as before the codec existed. So the output can differ from
 * simplejson's only if a common case is written differently, which tests/test_codec_*.py check.
 *
 *   encode(obj)        -> bytes (UTF-8, simplejson's text with lambdaric's settings) | NOT_MINE
 *   encode_str(obj)    -> the same as a str                                          | NOT_MINE
 *   encode_ascii(obj)  -> str with \uXXXX escapes (ensure_ascii=True)               | NOT_MINE
 *   decode(data)       -> the object simplejson.loads(data) returns                  | NOT_MINE
 *                         (data: bytes, bytearray or str)
 *
 * Encoder: dict (exact; every key an exact str), list, exact tuple, exact str, exact int,
 * exact float, True, False, None. Anything else (subclasses, namedtuples, Decimal, non-str keys,
 * lone surrogates, nesting past the bounds) is NOT_MINE.
 * Decoder: strict RFC 8259 JSON as simplejson reads it. NOT_MINE for anything invalid or unusual
 * (a BOM, NaN/Infinity, \u escapes giving lone surrogates, ints of more than 4300 digits,
 * nesting past the bounds, bytes that are not UTF-8): simplejson gives the value or the error.
 *
 * Every read is bounds-checked against the input's end; the GIL is held throughout and no
 * Python code runs during a call (only exact built-in types are touched).
 * Nesting: one Py_EnterRecursiveCall per level (as simplejson's C code does) after a margin of
 * MARGIN levels taken at entry, so the codec gives up before simplejson would hit the limit;
 * and never deeper than MAX_DEPTH levels of C recursion.
 */
#define Py_LIMITED_API 0x03090000
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if Py_LIMITED_API + 0 < 0x030A0000
/* In the limited API from 3.10; exported (same signature) by CPython 3.3 and later, 3.9 included. */
PyAPI_FUNC(const char *) PyUnicode_AsUTF8AndSize(PyObject *unicode, Py_ssize_t *size);
#endif

#define MAX_DEPTH 2000
#define MARGIN 16

static PyObject *not_mine; /* the sentinel: a plain object() */
static PyObject *gc_isenabled, *gc_disable, *gc_enable; /* gc.isenabled, gc.disable, gc.enable */

/* ------------------------------------------------------------------------------------- buffer */

typedef struct {
    char *data;
    size_t len, cap;
} buf_t;

static int buf_grow(buf_t *b, size_t more) {
    size_t need, cap;
    char *data;
    if (more > (size_t)PY_SSIZE_T_MAX - b->len) return -1;
    need = b->len + more;
    if (need <= b->cap) return 0;
    cap = b->cap ? b->cap : 256;
    while (cap < need) {
        if (cap > (size_t)PY_SSIZE_T_MAX / 2) { cap = need; break; }
        cap *= 2;
    }
    data = (char *)realloc(b->data, cap);
    if (!data) return -1;
    b->data = data;
    b->cap = cap;
    return 0;
}

static inline int buf_put(buf_t *b, const char *s, size_t n) {
    if (n == 0) return 0;
    if (b->cap - b->len < n && buf_grow(b, n) < 0) return -1;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    return 0;
}

static inline int buf_putc(buf_t *b, char c) {
    if (b->len == b->cap && buf_grow(b, 1) < 0) return -1;
    b->data[b->len++] = c;
    return 0;
}

#define PUT_LIT(b, lit) buf_put((b), (lit), sizeof(lit) - 1)

/* ------------------------------------------------------------------------------- word scans */

/* Eight bytes at a time (portable C99: memcpy loads, no alignment assumed). A word is "plain" when
 * none of its bytes is '"', '\\' or a control character below 0x20 (and, in ASCII mode, none is
 * 0x7f or above 0x7f): such words are skipped whole. The tests are exact per word (the classic
 * has-zero-byte and has-less-than formulas), so a word that is not plain is then read byte by byte. */
#define ONES UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)

static inline uint64_t load64(const unsigned char *p) {
    uint64_t w;
    memcpy(&w, p, 8);
    return w;
}

static inline uint64_t special_bytes(uint64_t w) {
    uint64_t quote = w ^ (ONES * '"'), slash = w ^ (ONES * '\\');
    return ((w - ONES * 0x20) & ~w) | ((quote - ONES) & ~quote) | ((slash - ONES) & ~slash);
}

/* index of the first byte of s[0..n) that is '"', '\\' or < 0x20 (or >= 0x7f when ascii); n if none */
static inline size_t scan_plain(const unsigned char *s, size_t n, int ascii) {
    size_t i = 0;
    if (ascii) {
        while (i + 8 <= n) {
            uint64_t w = load64(s + i);
            uint64_t del = w + ONES; /* 0x7f + 1 sets the high bit; (>= 0x80 already has it) */
            if ((special_bytes(w) | w | del) & HIGHS) break;
            i += 8;
        }
        while (i < n && s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"' && s[i] != '\\') i++;
    } else {
        while (i + 8 <= n) {
            uint64_t w = load64(s + i);
            if (special_bytes(w) & HIGHS) break;
            i += 8;
        }
        while (i < n && s[i] != '"' && s[i] != '\\' && s[i] >= 0x20) i++;
    }
    return i;
}

/* ------------------------------------------------------------------------------------ encoder */

static const char HEX[] = "0123456789abcdef";

static int put_u_escape(buf_t *b, unsigned int cp) {
    char e[6];
    e[0] = '\\';
    e[1] = 'u';
    e[2] = HEX[(cp >> 12) & 0xf];
    e[3] = HEX[(cp >> 8) & 0xf];
    e[4] = HEX[(cp >> 4) & 0xf];
    e[5] = HEX[cp & 0xf];
    return buf_put(b, e, 6);
}

/* s[0..n) is valid UTF-8 (CPython made it from a str without surrogates). */
static int enc_utf8_text(buf_t *b, const unsigned char *s, size_t n, int ascii) {
    size_t i = 0, run = 0;
    /* worst case 6 bytes per input byte; reserve the common case (no escapes) at once */
    if (buf_grow(b, n + 2) < 0) return -1;
    b->data[b->len++] = '"';
    while (i < n) {
        unsigned char c;
        i += scan_plain(s + i, n - i, ascii);
        if (i >= n) break;
        c = s[i];
        if (buf_put(b, (const char *)s + run, i - run) < 0) return -1;
        if (c < 0x80) {
            const char *short_esc = NULL;
            switch (c) {
            case '"': short_esc = "\\\""; break;
            case '\\': short_esc = "\\\\"; break;
            case '\n': short_esc = "\\n"; break;
            case '\r': short_esc = "\\r"; break;
            case '\t': short_esc = "\\t"; break;
            case '\b': short_esc = "\\b"; break;
            case '\f': short_esc = "\\f"; break;
            default: break;
            }
            if (short_esc ? buf_put(b, short_esc, 2) : put_u_escape(b, c)) return -1;
            i++;
        } else {
            /* ASCII mode: one code point of 2 to 4 bytes -> \uXXXX (a surrogate pair above U+FFFF) */
            unsigned int cp;
            size_t len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
            if (i + len > n) return -1; /* cannot happen for CPython's UTF-8; refuse anyway */
            if (len == 2) cp = ((c & 0x1fu) << 6) | (s[i + 1] & 0x3fu);
            else if (len == 3) cp = ((c & 0x0fu) << 12) | ((s[i + 1] & 0x3fu) << 6) | (s[i + 2] & 0x3fu);
            else cp = ((c & 0x07u) << 18) | ((s[i + 1] & 0x3fu) << 12) | ((s[i + 2] & 0x3fu) << 6) | (s[i + 3] & 0x3fu);
            if (cp > 0xffff) {
                cp -= 0x10000;
                if (put_u_escape(b, 0xd800 | (cp >> 10)) || put_u_escape(b, 0xdc00 | (cp & 0x3ff))) return -1;
            } else if (put_u_escape(b, cp)) {
                return -1;
            }
            i += len;
        }
        run = i;
    }
    if (buf_put(b, (const char *)s + run, n - run) < 0) return -1;
    return buf_putc(b, '"');
}

static int enc_str(buf_t *b, PyObject *o, int ascii) {
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(o, &n); /* fails on lone surrogates: not mine */
    if (!s) return -1;
    return enc_utf8_text(b, (const unsigned char *)s, (size_t)n, ascii);
}

static int enc_int(buf_t *b, PyObject *o) {
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (overflow) {
        /* beyond 64 bits: int's own text (str() refuses past sys.get_int_max_str_digits: not mine) */
        Py_ssize_t n;
        const char *s;
        int rc;
        PyObject *text = PyObject_Str(o);
        if (!text) return -1;
        s = PyUnicode_AsUTF8AndSize(text, &n);
        rc = s ? buf_put(b, s, (size_t)n) : -1;
        Py_DECREF(text);
        return rc;
    }
    if (v == -1 && PyErr_Occurred()) return -1;
    {
        char tmp[24];
        int i = (int)sizeof(tmp);
        unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
        do {
            tmp[--i] = (char)('0' + (int)(u % 10));
            u /= 10;
        } while (u);
        if (v < 0) tmp[--i] = '-';
        return buf_put(b, tmp + i, sizeof(tmp) - (size_t)i);
    }
}

static int enc_float(buf_t *b, PyObject *o) {
    double d = PyFloat_AsDouble(o);
    char *s;
    int rc;
    if (d == -1.0 && PyErr_Occurred()) return -1;
    if (isnan(d)) return PUT_LIT(b, "NaN");
    if (isinf(d)) return d > 0 ? PUT_LIT(b, "Infinity") : PUT_LIT(b, "-Infinity");
    /* repr(float): the shortest text that reads back, as float.__repr__ writes it */
    s = PyOS_double_to_string(d, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    if (!s) return -1;
    rc = buf_put(b, s, strlen(s));
    PyMem_Free(s);
    return rc;
}

static int enc_obj(buf_t *b, PyObject *o, int ascii, int depth);

static int enc_seq(buf_t *b, PyObject *o, int is_list, int ascii, int depth) {
    Py_ssize_t i, n = is_list ? PyList_Size(o) : PyTuple_Size(o);
    int rc = 0;
    if (n < 0) return -1;
    if (n == 0) return PUT_LIT(b, "[]");
    if (depth >= MAX_DEPTH || Py_EnterRecursiveCall(" in lambdaric's codec")) return -1;
    if (buf_putc(b, '[') < 0) rc = -1;
    for (i = 0; rc == 0 && i < n; i++) {
        /* (re-read the size: nothing here runs Python code, but stay in bounds regardless) */
        PyObject *item;
        if (i >= (is_list ? PyList_Size(o) : n)) { rc = -1; break; }
        item = is_list ? PyList_GetItem(o, i) : PyTuple_GetItem(o, i);
        if (!item || (i && PUT_LIT(b, ", ") < 0) || enc_obj(b, item, ascii, depth + 1) < 0) rc = -1;
    }
    if (rc == 0 && buf_putc(b, ']') < 0) rc = -1;
    Py_LeaveRecursiveCall();
    return rc;
}

static int enc_dict(buf_t *b, PyObject *o, int ascii, int depth) {
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    int rc = 0, first = 1;
    if (PyDict_Size(o) == 0) return PUT_LIT(b, "{}");
    if (depth >= MAX_DEPTH || Py_EnterRecursiveCall(" in lambdaric's codec")) return -1;
    if (buf_putc(b, '{') < 0) rc = -1;
    while (rc == 0 && PyDict_Next(o, &pos, &key, &value)) {
        if (!PyUnicode_CheckExact(key)) { rc = -1; break; } /* simplejson coerces other keys */
        if ((!first && PUT_LIT(b, ", ") < 0) || enc_str(b, key, ascii) < 0 || PUT_LIT(b, ": ") < 0 ||
            enc_obj(b, value, ascii, depth + 1) < 0)
            rc = -1;
        first = 0;
    }
    if (rc == 0 && buf_putc(b, '}') < 0) rc = -1;
    Py_LeaveRecursiveCall();
    return rc;
}

static int enc_obj(buf_t *b, PyObject *o, int ascii, int depth) {
    if (PyUnicode_CheckExact(o)) return enc_str(b, o, ascii);
    if (PyDict_CheckExact(o)) return enc_dict(b, o, ascii, depth);
    if (PyList_CheckExact(o)) return enc_seq(b, o, 1, ascii, depth);
    if (o == Py_None) return PUT_LIT(b, "null");
    if (o == Py_True) return PUT_LIT(b, "true");
    if (o == Py_False) return PUT_LIT(b, "false");
    if (PyLong_CheckExact(o)) return enc_int(b, o);
    if (PyFloat_CheckExact(o)) return enc_float(b, o);
    if (PyTuple_CheckExact(o)) return enc_seq(b, o, 0, ascii, depth);
    return -1; /* subclasses, namedtuples, Decimal, RawJSON, bytes, sets...: simplejson's */
}

enum { OUT_BYTES, OUT_STR, OUT_ASCII };

/* The output buffer is kept between calls (up to KEEP bytes), so a big result does not fault in
 * fresh pages every invoke. Nothing in an encode runs Python code, but a nested call would find
 * it busy and use its own. */
#define KEEP ((size_t)16 << 20)
static buf_t spare;
static int spare_busy;

static PyObject *encode_as(PyObject *o, int out) {
    buf_t b = {NULL, 0, 0};
    PyObject *result = NULL;
    int margin, ok, own = !spare_busy;
    if (own) {
        b = spare;
        b.len = 0;
        spare_busy = 1;
    }
    for (margin = 0; margin < MARGIN; margin++)
        if (Py_EnterRecursiveCall(" in lambdaric's codec")) break;
    ok = margin == MARGIN && enc_obj(&b, o, out == OUT_ASCII, 0) == 0;
    while (margin-- > 0) Py_LeaveRecursiveCall();
    if (ok) {
        if (out == OUT_BYTES) result = PyBytes_FromStringAndSize(b.data ? b.data : "", (Py_ssize_t)b.len);
        else result = PyUnicode_DecodeUTF8(b.data ? b.data : "", (Py_ssize_t)b.len, "strict");
    }
    if (own && b.cap <= KEEP) {
        spare = b;
    } else {
        free(b.data);
        if (own) spare.data = NULL, spare.cap = 0;
    }
    if (own) spare_busy = 0;
    if (!result) {
        PyErr_Clear();
        Py_INCREF(not_mine);
        return not_mine;
    }
    return result;
}

static PyObject *py_encode(PyObject *self, PyObject *o) {
    (void)self;
    return encode_as(o, OUT_BYTES);
}

static PyObject *py_encode_str(PyObject *self, PyObject *o) {
    (void)self;
    return encode_as(o, OUT_STR);
}

static PyObject *py_encode_ascii(PyObject *self, PyObject *o) {
    (void)self;
    return encode_as(o, OUT_ASCII);
}

/* ------------------------------------------------------------------------------------ decoder */

/* Dict keys: every event of a function repeats the same few keys (a batch, thousands of times),
 * so their str objects are kept in a table that lives as long as the module: KEY_SLOTS slots, each
 * the raw bytes of one key (up to KEY_MAX, no escapes) and a strong reference to its str, whose
 * hash is computed once when it is made (dict insertion then finds it cached). A slot is replaced
 * by the next key that hashes to it; a hit is confirmed by comparing the bytes. At most
 * KEY_SLOTS small strings are kept (about 100 KB). No Python code runs between a slot's lookup and
 * its update (making a str never triggers the garbage collector), so a nested call cannot see a
 * slot half updated. */
#define KEY_SLOTS 1024 /* a power of two */
#define KEY_MAX 48

typedef struct {
    PyObject *str; /* a strong reference, or NULL */
    size_t len;
    char raw[KEY_MAX];
} key_slot;

static key_slot keys[KEY_SLOTS];

typedef struct {
    const unsigned char *p, *end;
    int depth;
    buf_t scratch; /* unescaped strings */
} dec_t;

static inline void skip_ws(dec_t *d) {
    while (d->p < d->end && (*d->p == ' ' || *d->p == '\n' || *d->p == '\r' || *d->p == '\t')) d->p++;
}

static int hexval(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* four hex digits at p (p + 4 <= end checked by the caller) */
static long hex4(const unsigned char *p) {
    int a = hexval(p[0]), b = hexval(p[1]), c = hexval(p[2]), e = hexval(p[3]);
    if ((a | b | c | e) < 0) return -1;
    return ((long)a << 12) | (b << 8) | (c << 4) | e;
}

/* cp (< 0x110000, no surrogate) as UTF-8 at u; returns the length (1 to 4) */
static size_t put_utf8(unsigned char *u, unsigned long cp) {
    if (cp < 0x80) { u[0] = (unsigned char)cp; return 1; }
    if (cp < 0x800) { u[0] = (unsigned char)(0xc0 | (cp >> 6)); u[1] = (unsigned char)(0x80 | (cp & 0x3f)); return 2; }
    if (cp < 0x10000) {
        u[0] = (unsigned char)(0xe0 | (cp >> 12)); u[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    u[0] = (unsigned char)(0xf0 | (cp >> 18)); u[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
    u[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f)); u[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

/* A cheap hash of a key's bytes: its length and first and last (up to) eight bytes. A collision
 * only costs a miss: a hit is confirmed by comparing the bytes. */
static unsigned int key_hash(const unsigned char *s, size_t n) {
    uint64_t a = 0, z = 0, h;
    if (n >= 8) {
        a = load64(s);
        z = load64(s + n - 8);
    } else {
        size_t i;
        for (i = 0; i < n; i++) a = (a << 8) | s[i];
    }
    h = (a ^ (z * UINT64_C(0x9e3779b97f4a7c15)) ^ n) * UINT64_C(0xff51afd7ed558ccd);
    return (unsigned int)(h >> 40);
}

/* d->p is just past the opening quote. Returns a new str, or NULL (not mine). */
static PyObject *parse_string(dec_t *d, int is_key) {
    const unsigned char *start = d->p, *p = d->p, *end = d->end;
    unsigned char *out;
    buf_t *sc = &d->scratch;
    p += scan_plain(p, (size_t)(end - p), 0);
    if (p >= end || *p < 0x20) return NULL; /* unterminated, or a raw control character (strict) */
    if (*p == '"') {
        size_t n = (size_t)(p - start);
        PyObject *s;
        d->p = p + 1;
        if (is_key && n <= KEY_MAX) {
            key_slot *slot = &keys[key_hash(start, n) & (KEY_SLOTS - 1)];
            PyObject *old;
            if (slot->str && slot->len == n && memcmp(slot->raw, start, n) == 0) {
                Py_INCREF(slot->str);
                return slot->str;
            }
            s = PyUnicode_DecodeUTF8((const char *)start, (Py_ssize_t)n, "strict");
            if (!s) return NULL;
            if (PyObject_Hash(s) == -1) PyErr_Clear(); /* (cannot fail for a str) */
            old = slot->str;
            Py_INCREF(s);
            slot->str = s;
            slot->len = n;
            memcpy(slot->raw, start, n);
            Py_XDECREF(old);
            return s;
        }
        return PyUnicode_DecodeUTF8((const char *)start, (Py_ssize_t)n, "strict");
    }
    /* escapes: unescape into the scratch buffer, from the start. What a string unescapes to is
     * never longer than its text (each escape of k bytes gives at most k bytes), and its text
     * lies within [start, end): with that much room, the bytes are written without more checks. */
    sc->len = 0;
    if (buf_grow(sc, (size_t)(end - start)) < 0) return NULL;
    out = (unsigned char *)sc->data;
    p = start;
    for (;;) {
        size_t k = scan_plain(p, (size_t)(end - p), 0);
        memcpy(out, p, k);
        out += k;
        p += k;
        if (p >= end || *p < 0x20) return NULL;
        if (*p == '"') break;
        /* a backslash */
        if (end - p < 2) return NULL;
        p++;
        switch (*p) {
        case '"': case '\\': case '/': *out++ = *p++; break;
        case 'b': *out++ = '\b'; p++; break;
        case 'f': *out++ = '\f'; p++; break;
        case 'n': *out++ = '\n'; p++; break;
        case 'r': *out++ = '\r'; p++; break;
        case 't': *out++ = '\t'; p++; break;
        case 'u': {
            long cp, lo;
            if (end - p < 5) return NULL;
            cp = hex4(p + 1);
            if (cp < 0) return NULL;
            p += 5;
            if (cp >= 0xdc00 && cp <= 0xdfff) return NULL; /* a lone low surrogate: simplejson's */
            if (cp >= 0xd800 && cp <= 0xdbff) {
                /* must be followed by \u and a low surrogate, else it is lone: simplejson's */
                if (end - p < 6 || p[0] != '\\' || p[1] != 'u') return NULL;
                lo = hex4(p + 2);
                if (lo < 0xdc00 || lo > 0xdfff) return NULL;
                p += 6;
                cp = 0x10000 + (((cp - 0xd800) << 10) | (lo - 0xdc00));
            }
            out += put_utf8(out, (unsigned long)cp);
            break;
        }
        default:
            return NULL;
        }
    }
    d->p = p + 1;
    return PyUnicode_DecodeUTF8(sc->data, (Py_ssize_t)(out - (unsigned char *)sc->data), "strict");
}

static PyObject *parse_number(dec_t *d) {
    const unsigned char *start = d->p, *p = d->p, *end = d->end, *digits;
    int is_float = 0, neg = 0;
    size_t n;
    if (p < end && *p == '-') { neg = 1; p++; }
    digits = p;
    if (p >= end) return NULL;
    if (*p == '0') p++;
    else if (*p >= '1' && *p <= '9') while (p < end && *p >= '0' && *p <= '9') p++;
    else return NULL;
    if (p < end && *p == '.') {
        p++;
        if (p >= end || *p < '0' || *p > '9') return NULL;
        while (p < end && *p >= '0' && *p <= '9') p++;
        is_float = 1;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (p >= end || *p < '0' || *p > '9') return NULL;
        while (p < end && *p >= '0' && *p <= '9') p++;
        is_float = 1;
    }
    d->p = p;
    n = (size_t)(p - start);
    if (!is_float && (size_t)(p - digits) <= 18) {
        long long v = 0;
        const unsigned char *q;
        for (q = digits; q < p; q++) v = v * 10 + (*q - '0');
        return PyLong_FromLongLong(neg ? -v : v);
    }
    if (!is_float && (size_t)(p - digits) > 4300) return NULL; /* int()'s default digit limit: simplejson's */
    {
        char small[64];
        char *text = n < sizeof(small) ? small : (char *)malloc(n + 1);
        PyObject *r = NULL;
        if (!text) return NULL;
        memcpy(text, start, n);
        text[n] = '\0';
        if (is_float) {
            char *stop = NULL;
            double v = PyOS_string_to_double(text, &stop, NULL); /* float(text): inf past the range */
            if (!(v == -1.0 && PyErr_Occurred()) && stop == text + n) r = PyFloat_FromDouble(v);
        } else {
            r = PyLong_FromString(text, NULL, 10);
        }
        if (text != small) free(text);
        return r;
    }
}

static PyObject *parse_value(dec_t *d);

static PyObject *parse_array(dec_t *d) {
    PyObject *list, *item;
    if (d->depth >= MAX_DEPTH || Py_EnterRecursiveCall(" in lambdaric's codec")) return NULL;
    d->depth++;
    list = PyList_New(0);
    if (!list) goto fail;
    d->p++; /* [ */
    skip_ws(d);
    if (d->p < d->end && *d->p == ']') {
        d->p++;
        goto done;
    }
    for (;;) {
        int rc;
        item = parse_value(d);
        if (!item) goto fail;
        rc = PyList_Append(list, item);
        Py_DECREF(item);
        if (rc < 0) goto fail;
        skip_ws(d);
        if (d->p >= d->end) goto fail;
        if (*d->p == ']') {
            d->p++;
            break;
        }
        if (*d->p != ',') goto fail;
        d->p++;
        skip_ws(d);
    }
done:
    d->depth--;
    Py_LeaveRecursiveCall();
    return list;
fail:
    Py_XDECREF(list);
    d->depth--;
    Py_LeaveRecursiveCall();
    return NULL;
}

static PyObject *parse_object(dec_t *d) {
    PyObject *dict, *key = NULL, *value;
    if (d->depth >= MAX_DEPTH || Py_EnterRecursiveCall(" in lambdaric's codec")) return NULL;
    d->depth++;
    dict = PyDict_New();
    if (!dict) goto fail;
    d->p++; /* { */
    skip_ws(d);
    if (d->p < d->end && *d->p == '}') {
        d->p++;
        goto done;
    }
    for (;;) {
        int rc;
        if (d->p >= d->end || *d->p != '"') goto fail;
        d->p++;
        key = parse_string(d, 1);
        if (!key) goto fail;
        skip_ws(d);
        if (d->p >= d->end || *d->p != ':') goto fail;
        d->p++;
        skip_ws(d);
        value = parse_value(d);
        if (!value) goto fail;
        rc = PyDict_SetItem(dict, key, value); /* a repeated key: the last value, the first place */
        Py_DECREF(value);
        Py_CLEAR(key);
        if (rc < 0) goto fail;
        skip_ws(d);
        if (d->p >= d->end) goto fail;
        if (*d->p == '}') {
            d->p++;
            break;
        }
        if (*d->p != ',') goto fail;
        d->p++;
        skip_ws(d);
    }
done:
    d->depth--;
    Py_LeaveRecursiveCall();
    return dict;
fail:
    Py_XDECREF(key);
    Py_XDECREF(dict);
    d->depth--;
    Py_LeaveRecursiveCall();
    return NULL;
}

static int literal(dec_t *d, const char *word, size_t n) {
    if ((size_t)(d->end - d->p) < n || memcmp(d->p, word, n) != 0) return 0;
    d->p += n;
    return 1;
}

static PyObject *parse_value(dec_t *d) {
    if (d->p >= d->end) return NULL;
    switch (*d->p) {
    case '{': return parse_object(d);
    case '[': return parse_array(d);
    case '"': d->p++; return parse_string(d, 0);
    case 't': if (literal(d, "true", 4)) { Py_INCREF(Py_True); return Py_True; } return NULL;
    case 'f': if (literal(d, "false", 5)) { Py_INCREF(Py_False); return Py_False; } return NULL;
    case 'n': if (literal(d, "null", 4)) { Py_INCREF(Py_None); return Py_None; } return NULL;
    default:
        if (*d->p == '-' || (*d->p >= '0' && *d->p <= '9')) return parse_number(d);
        return NULL; /* NaN, Infinity, garbage: simplejson's value or error */
    }
}

/* gc.isenabled, gc.disable and gc.enable, looked up on the first big document (importing gc when
 * the module loads cost ~35 us of every cold start); 0 when they cannot be had (the document is
 * then parsed with the collector as it is), with no exception left set. */
static int gc_functions(void) {
    PyObject *gc;
    if (gc_enable) return 1;
    gc = PyImport_ImportModule("gc");
    if (gc) {
        gc_isenabled = PyObject_GetAttrString(gc, "isenabled");
        gc_disable = PyObject_GetAttrString(gc, "disable");
        gc_enable = PyObject_GetAttrString(gc, "enable");
        Py_DECREF(gc);
    }
    if (!gc_isenabled || !gc_disable || !gc_enable) {
        Py_CLEAR(gc_isenabled);
        Py_CLEAR(gc_disable);
        Py_CLEAR(gc_enable);
        PyErr_Clear();
        return 0;
    }
    return 1;
}

static PyObject *py_decode(PyObject *self, PyObject *data) {
    const char *s;
    Py_ssize_t n;
    dec_t d;
    PyObject *result = NULL, *r;
    int margin, gc_off = 0;
    (void)self;
    if (PyBytes_CheckExact(data)) {
        if (PyBytes_AsStringAndSize(data, (char **)&s, &n) < 0) goto out;
    } else if (PyByteArray_CheckExact(data)) {
        /* (no Python code runs during the call, so nothing can resize it under us) */
        s = PyByteArray_AsString(data);
        n = PyByteArray_Size(data);
        if (!s || n < 0) goto out;
    } else if (PyUnicode_CheckExact(data)) {
        s = PyUnicode_AsUTF8AndSize(data, &n); /* lone surrogates: not mine */
        if (!s) goto out;
    } else {
        goto out;
    }
    /* a UTF-8 byte order mark (simplejson skips it): not mine */
    if (n >= 3 && (unsigned char)s[0] == 0xef && (unsigned char)s[1] == 0xbb && (unsigned char)s[2] == 0xbf) goto out;
    /* A big document makes tens of thousands of dicts and lists, and every 700 of them the cyclic
     * collector would walk the young ones, to find no garbage (a quarter of the time of a 1 MB batch):
     * it is paused for the call (gc.disable, then gc.enable, only when it was enabled; the GIL is
     * held from one to the other). Also for a bytearray (the transport's big bodies): with the
     * collector paused no finalizer can run, so no Python code at all runs until the call returns. */
    if ((n > 16384 || PyByteArray_CheckExact(data)) && gc_functions()) {
        r = PyObject_CallObject(gc_isenabled, NULL);
        if (r == Py_True) {
            PyObject *off = PyObject_CallObject(gc_disable, NULL);
            gc_off = off != NULL;
            Py_XDECREF(off);
        }
        Py_XDECREF(r);
        PyErr_Clear();
        if (PyByteArray_CheckExact(data)) { /* (re-read: nothing ran, but stay exact) */
            s = PyByteArray_AsString(data);
            n = PyByteArray_Size(data);
            if (!s || n < 0) goto restore;
        }
    }
    memset(&d, 0, sizeof(d));
    d.p = (const unsigned char *)s;
    d.end = d.p + n;
    for (margin = 0; margin < MARGIN; margin++)
        if (Py_EnterRecursiveCall(" in lambdaric's codec")) break;
    if (margin == MARGIN) {
        skip_ws(&d);
        result = parse_value(&d);
        if (result) {
            skip_ws(&d);
            if (d.p != d.end) Py_CLEAR(result); /* extra data */
        }
    }
    while (margin-- > 0) Py_LeaveRecursiveCall();
    free(d.scratch.data);
restore:
    if (gc_off) {
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb); /* (no call with an exception set) */
        r = PyObject_CallObject(gc_enable, NULL);
        Py_XDECREF(r);
        PyErr_Clear();
        PyErr_Restore(type, value, tb);
    }
out:
    if (!result) {
        PyErr_Clear();
        Py_INCREF(not_mine);
        return not_mine;
    }
    return result;
}

/* ------------------------------------------------------------------------------------- module */

static PyMethodDef methods[] = {
    {"encode", py_encode, METH_O, "encode(obj) -> UTF-8 bytes of the JSON text, or NOT_MINE"},
    {"encode_str", py_encode_str, METH_O, "encode_str(obj) -> the JSON text as a str, or NOT_MINE"},
    {"encode_ascii", py_encode_ascii, METH_O, "encode_ascii(obj) -> the JSON text with \\uXXXX escapes, or NOT_MINE"},
    {"decode", py_decode, METH_O, "decode(bytes | bytearray | str) -> the parsed value, or NOT_MINE"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "lambdaric._codec",
    "lambdaric's JSON codec for the exact common types (see native/lr_json.c); NOT_MINE means: ask simplejson.",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__codec(void) {
    PyObject *m;
    m = PyModule_Create(&module);
    if (!m) return NULL;
    if (!not_mine) {
        not_mine = PyObject_CallObject((PyObject *)&PyBaseObject_Type, NULL);
        if (!not_mine) {
            Py_DECREF(m);
            return NULL;
        }
    }
    Py_INCREF(not_mine);
    if (PyModule_AddObject(m, "NOT_MINE", not_mine) < 0) {
        Py_DECREF(not_mine);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
