/* libFuzzer harness for the JSON codec (lr_json.c), with an embedded Python.
 *
 * lr_json.c is compiled into this binary (ASan + UBSan + fuzzer coverage) and registered as the
 * built-in module _codec; the interpreter is the system's libpython (not instrumented). For each
 * input:
 *   1. decode(bytes) and decode(bytearray) must agree; when the codec answers (not NOT_MINE), the
 *      value must equal simplejson.loads(input) with the same types all the way down;
 *   2. when simplejson.loads accepts the input, the codec must accept it too unless it is one of the
 *      documented NOT_MINE cases (checked by the Python side: BOM, NaN/Infinity are refused by
 *      simplejson anyway, lone surrogates, >4300-digit ints, nesting);
 *   3. the decoded value re-encoded by encode/encode_str/encode_ascii must equal simplejson's text
 *      with lambdaric's settings (or be NOT_MINE only where simplejson's text has a lone surrogate).
 * A broken invariant aborts (a libFuzzer crash with the input saved).
 *
 * The first byte of an input, when it is 0x01, turns the rest into a str (decoded as UTF-8 with
 * surrogatepass) before decoding, to exercise the str path.
 *
 * Build and run: native/fuzz.sh (LAMBDARIC_FUZZ_ONLY=lr_json). Needs clang and a CPython with its
 * shared library and simplejson; PYTHONPATH must let the embedded interpreter import simplejson.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

PyMODINIT_FUNC PyInit__codec(void);

static PyObject *check; /* the Python checker below */

static const char CHECKER[] =
    "import simplejson, sys\n"
    "import _codec\n"
    "sys.setrecursionlimit(8000)  # (same() below recurses twice per level)\n"
    "NOT_MINE = _codec.NOT_MINE\n"
    "REF = simplejson.JSONEncoder(use_decimal=False, allow_nan=True, ensure_ascii=False)\n"
    "REF_ASCII = simplejson.JSONEncoder(use_decimal=False, allow_nan=True)\n"
    "def same(a, b):\n"
    "    if type(a) is not type(b): return False\n"
    "    if isinstance(a, float): return repr(a) == repr(b)\n"
    "    if isinstance(a, dict):\n"
    "        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)\n"
    "    if isinstance(a, list): return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))\n"
    "    return a == b\n"
    "def check(data):\n"
    "    if data[:1] == b'\\x01':\n"
    "        data = data[1:].decode('utf-8', 'surrogatepass')\n"
    "    ours = _codec.decode(data)\n"
    "    if isinstance(data, bytes):\n"
    "        again = _codec.decode(bytearray(data))\n"
    "        assert (ours is NOT_MINE) == (again is NOT_MINE) and (ours is NOT_MINE or same(ours, again)), data\n"
    "    try:\n"
    "        ref = simplejson.loads(data)\n"
    "    except (ValueError, RecursionError):\n"
    "        assert ours is NOT_MINE, ('accepted what simplejson refuses', data, ours)\n"
    "        return\n"
    "    if ours is NOT_MINE:\n"
    "        return  # allowed (unusual input); marshal.py then uses simplejson\n"
    "    assert same(ours, ref), ('different value', data, ours, ref)\n"
    "    text = REF.encode(ref)\n"
    "    for fn, want in ((_codec.encode_str, text), (_codec.encode_ascii, REF_ASCII.encode(ref))):\n"
    "        got = fn(ours)\n"
    "        assert got is not NOT_MINE and got == want, ('encoded differently', fn, data, got, want)\n"
    "    assert _codec.encode(ours) == text.encode('utf-8'), data\n";

static void fail(const char *what) {
    fprintf(stderr, "fuzz_lr_json: %s\n", what);
    if (PyErr_Occurred()) PyErr_Print();
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    PyObject *globals, *r;
    (void)argc;
    (void)argv;
    if (PyImport_AppendInittab("_codec", PyInit__codec) < 0) fail("cannot register _codec");
    Py_InitializeEx(0);
    globals = PyDict_New();
    if (!globals || PyDict_SetItemString(globals, "__builtins__", PyEval_GetBuiltins()) < 0) fail("globals");
    r = PyRun_String(CHECKER, Py_file_input, globals, globals);
    if (!r) fail("the checker does not load (is simplejson on PYTHONPATH?)");
    Py_DECREF(r);
    check = PyDict_GetItemString(globals, "check");
    if (!check) fail("no check()");
    Py_INCREF(check);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    PyObject *arg, *r;
    arg = PyBytes_FromStringAndSize((const char *)data, (Py_ssize_t)size);
    if (!arg) fail("bytes");
    r = PyObject_CallFunctionObjArgs(check, arg, NULL);
    Py_DECREF(arg);
    if (!r) {
        if (PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
            PyErr_Clear(); /* a 0x01 input that is not UTF-8 even with surrogatepass */
            return 0;
        }
        fail("invariant broken");
    }
    Py_DECREF(r);
    return 0;
}
