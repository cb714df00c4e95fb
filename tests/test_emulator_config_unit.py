"""The emulator's configuration, pure logic without sockets: ``--env-file`` (dotenv and SAM's
env.json), the ``--functions`` file and ``--function`` option, the runtime environment, and the
invoke path's function references (issue 19). Hostile input gets one clear line naming the
file and line, never a traceback or a silently dropped variable."""
import argparse
import json

import pytest

from lambdaric.emulator.cli import build_parser
from lambdaric.emulator.envfile import MAX_FILE_BYTES, EnvFile, EnvFileError, parse_dotenv, parse_env_file, read_env_file
from lambdaric.emulator.environment import XRAY_DAEMON_ADDRESS, function_environment
from lambdaric.emulator.function_config import ConfigError, FunctionSpec, parse_function_option, parse_functions_file, plan_functions
from lambdaric.emulator.functions import Function, Functions, FunctionSettings
from lambdaric.emulator.invoke_api import FunctionRef, Refused, parse_function

# ----------------------------------------------------------------------------------- dotenv


def test_dotenv_shapes():
    text = (
        "# a comment\n"
        "\n"
        "PLAIN=value\n"
        "export EXPORTED=yes\n"
        "  SPACED = around  \n"
        "EMPTY=\n"
        "TRAILING=bare # a comment\n"
        "HASH=a#b\n"
        "SINGLE='lit $X \\n # not a comment'\n"
        'DOUBLE="tab\\there \\"q\\" \\\\ new\\nline" # comment\n'
        'MULTI="-----BEGIN KEY-----\n'
        "abc\n"
        '-----END KEY-----"\n'
        "EQUALS=a=b=c\n"
        "UNICODE=caf\u00e9 \u2603\n"
        "_UNDER=1\n"
        "PLAIN=later wins\n"
    )
    assert parse_dotenv(text) == {
        "PLAIN": "later wins",
        "EXPORTED": "yes",
        "SPACED": "around",
        "EMPTY": "",
        "TRAILING": "bare",
        "HASH": "a#b",
        "SINGLE": "lit $X \\n # not a comment",
        "DOUBLE": 'tab\there "q" \\ new\nline',
        "MULTI": "-----BEGIN KEY-----\nabc\n-----END KEY-----",
        "EQUALS": "a=b=c",
        "UNICODE": "caf\u00e9 \u2603",
        "_UNDER": "1",
    }


def test_dotenv_windows_line_ends_and_byte_order_mark():
    assert parse_env_file("\ufeffA=1\r\nB='2'\r\n") == EnvFile({"A": "1", "B": "2"}, {})


@pytest.mark.parametrize("text, message", [
    ("A=1\nJUSTAWORD\n", "f.env:2: expected KEY=VALUE, got 'JUSTAWORD'"),
    ("MY-VAR=1\n", "f.env:1: invalid variable name 'MY-VAR' (letters, digits and _, not starting with a digit)"),
    ("1ABC=1\n", "f.env:1: invalid variable name '1ABC'"),
    ("=value\n", "f.env:1: invalid variable name ''"),
    ("export =x\n", "f.env:1: invalid variable name ''"),
    ("A=\"open\nstill open\n", "f.env:1: the double-quoted value is never closed"),
    ("\n\nA='open\n", "f.env:3: the single-quoted value is never closed"),
    ("A=\"closed\" junk\n", "f.env:1: unexpected text after the closing quote: 'junk'"),
    ("A=nul\x00here\n", "f.env:1: the value of A holds a NUL character"),
    ("A=\"nul\\\x00\"\n", "f.env:1: the value of A holds a NUL character"),
    ("B=1\nexport\n", "f.env:2: expected KEY=VALUE, got 'export'"),
    ("X" * 500 + "\n", "f.env:1: expected KEY=VALUE, got '" + "X" * 60 + "...'"),
])
def test_dotenv_errors_name_the_file_and_line(text, message):
    with pytest.raises(EnvFileError) as info:
        parse_env_file(text, "f.env")
    assert str(info.value).startswith(message), str(info.value)
    assert "\n" not in str(info.value)


def test_read_env_file_errors(tmp_path):
    with pytest.raises(EnvFileError) as info:
        read_env_file(str(tmp_path / "none"))
    assert str(info.value) == "%s: cannot read it: No such file or directory" % (tmp_path / "none")
    with pytest.raises(EnvFileError, match=r": cannot read it: Is a directory$"):
        read_env_file(str(tmp_path))
    latin = tmp_path / "latin.env"
    latin.write_bytes(b"A=1\nB=caf\xe9\n")
    with pytest.raises(EnvFileError, match=r"latin\.env:2: not UTF-8 text \(byte 0xe9\)$"):
        read_env_file(str(latin))
    big = tmp_path / "big.env"
    big.write_bytes(b"A=" + b"x" * MAX_FILE_BYTES + b"\n")
    with pytest.raises(EnvFileError, match=r"big\.env: larger than 1048576 bytes: not an env file$"):
        read_env_file(str(big))
    ok = tmp_path / "ok.env"
    ok.write_text("A=1\n")
    assert read_env_file(str(ok)) == EnvFile({"A": "1"}, {})


# ----------------------------------------------------------------------------------- env.json


def test_env_json_sections():
    parsed = parse_env_file(json.dumps({
        "Parameters": {"STAGE": "local", "N": 3, "F": 1.5, "ON": True, "OFF": False},
        "orders": {"TABLE": "orders", "STAGE": "orders-stage"},
        "thumbs": {},
    }))
    assert parsed.common == {"STAGE": "local", "N": "3", "F": "1.5", "ON": "true", "OFF": "false"}
    assert parsed.for_function("orders") == dict(parsed.common, TABLE="orders", STAGE="orders-stage")
    assert parsed.for_function("thumbs") == parsed.common
    assert parsed.for_function("unknown") == parsed.common
    assert parse_env_file("  \n {}") == EnvFile({}, {})


@pytest.mark.parametrize("text, message", [
    ('{"Parameters": {"A": 1}', "e.json:1:24: invalid JSON: Expecting ',' delimiter"),
    ('{"Parameters": {"A": 1},\n "f": {"B": }}', "e.json:2:13: invalid JSON: Expecting value"),
    ("[1]", None),  # not '{': read as dotenv
    ('{"Parameters": [1]}', "e.json: 'Parameters' must be an object of VARIABLE: value, not an array"),
    ('{"f": "A=1"}', "e.json: 'f' must be an object of VARIABLE: value, not str"),
    ('{"f": {"A": null}}', "e.json: 'f', A: the value must be a string, number or boolean, not null"),
    ('{"f": {"A": {"nested": 1}}}', "e.json: 'f', A: the value must be a string, number or boolean, not an object"),
    ('{"f": {"A": [1]}}', "e.json: 'f', A: the value must be a string, number or boolean, not an array"),
    ('{"f": {"BAD-NAME": "1"}}', "e.json: 'f': invalid variable name 'BAD-NAME'"),
    ('{"f": {"A": "nul\\u0000"}}', "e.json: 'f', A: the value holds a NUL character"),
    ('{"f": {"A": "1"}, "f": {"B": "2"}}', "e.json: 'f' is given twice in one object"),
    ('{"f": {"A": "1", "A": "2"}}', "e.json: 'A' is given twice in one object"),
    ('{"f": ' * 100000 + "}" * 100000, "e.json: invalid JSON: nested too deeply"),
])
def test_env_json_errors(text, message):
    with pytest.raises(EnvFileError) as info:
        parse_env_file(text, "e.json")
    if message is not None:
        assert str(info.value).startswith(message), str(info.value)
    assert "\n" not in str(info.value)


# ----------------------------------------------------------------------------------- --functions, --function


def test_functions_file():
    specs = parse_functions_file(json.dumps({"functions": {
        "orders": {"handler": "app.orders", "timeout": 10, "memory": 512, "environment": {"TABLE": "t", "N": 2},
                   "concurrency": 2, "tracing": "Active"},
        "legacy": {"command": "python -m awslambdaric 'legacy.handler'", "tracing": "PassThrough", "max_concurrency": 4,
                   "snapstart": False},
        "argv": {"command": ["./bootstrap", "a b"], "handler": "h"},
    }}))
    assert specs == [
        FunctionSpec("orders", handler="app.orders", timeout=10.0, memory=512, environment={"TABLE": "t", "N": "2"},
                     concurrency=2, xray_sampled=True),
        FunctionSpec("legacy", command=["python", "-m", "awslambdaric", "legacy.handler"], max_concurrency=4,
                     snapstart=False, xray_sampled=False),
        FunctionSpec("argv", handler="h", command=["./bootstrap", "a b"]),
    ]


@pytest.mark.parametrize("obj, message", [
    ([], 'fn.json: expected {"functions": {NAME: {settings}, ...}}'),
    ({"functions": {}}, "fn.json: no functions in it"),
    ({"functions": {"a": {"handler": "x.y"}}, "extra": 1}, 'fn.json: expected {"functions"'),
    ({"functions": {"bad name": {"handler": "x.y"}}}, "fn.json: invalid function name 'bad name' (1 to 64 letters, digits, - and _)"),
    ({"functions": {"x" * 65: {"handler": "x.y"}}}, "fn.json: invalid function name 'xxxx"),
    ({"functions": {"arn:aws:lambda:us-east-1:123456789012:function:f": {"handler": "x.y"}}}, "fn.json: invalid function name"),
    ({"functions": {"a": "x.y"}}, "fn.json: function 'a': its settings must be an object"),
    ({"functions": {"a": {}}}, "fn.json: function 'a': give a handler or a command"),
    ({"functions": {"a": {"handler": "x.y", "timout": 3}}}, "fn.json: function 'a': unknown setting 'timout' (known: handler, command,"),
    ({"functions": {"a": {"handler": ""}}}, "fn.json: function 'a': handler must be module.function"),
    ({"functions": {"a": {"handler": 7}}}, "fn.json: function 'a': handler must be module.function"),
    ({"functions": {"a": {"command": []}}}, "fn.json: function 'a': command must be a string or a non-empty array of strings"),
    ({"functions": {"a": {"command": ["ok", 1]}}}, "fn.json: function 'a': command must be"),
    ({"functions": {"a": {"handler": "x.y", "timeout": 0}}}, "fn.json: function 'a': timeout must be a number from 0.001 to 900"),
    ({"functions": {"a": {"handler": "x.y", "timeout": 901}}}, "fn.json: function 'a': timeout must be a number from 0.001 to 900"),
    ({"functions": {"a": {"handler": "x.y", "timeout": "3"}}}, "fn.json: function 'a': timeout must be a number"),
    ({"functions": {"a": {"handler": "x.y", "timeout": True}}}, "fn.json: function 'a': timeout must be a number"),
    ({"functions": {"a": {"handler": "x.y", "memory": 127}}}, "fn.json: function 'a': memory must be a whole number from 128 to 10240"),
    ({"functions": {"a": {"handler": "x.y", "memory": 512.5}}}, "fn.json: function 'a': memory must be a whole number"),
    ({"functions": {"a": {"handler": "x.y", "concurrency": 0}}}, "fn.json: function 'a': concurrency must be a whole number from 1 to 1000"),
    ({"functions": {"a": {"handler": "x.y", "tracing": "active"}}}, "fn.json: function 'a': tracing must be Active or PassThrough"),
    ({"functions": {"a": {"handler": "x.y", "snapstart": "yes"}}}, "fn.json: function 'a': snapstart must be true or false"),
    ({"functions": {"a": {"handler": "x.y", "environment": {"A-B": "1"}}}}, "fn.json: function 'a': environment: 'Parameters': invalid variable name 'A-B'"),
    ({"functions": {"a": {"handler": "x.y", "environment": ["A=1"]}}}, "fn.json: function 'a': environment: 'Parameters' must be an object"),
])
def test_functions_file_errors(obj, message):
    with pytest.raises(ConfigError) as info:
        parse_functions_file(json.dumps(obj), "fn.json")
    assert str(info.value).startswith(message), str(info.value)


def test_functions_file_not_json():
    with pytest.raises(ConfigError, match=r"^fn\.json:1:1: invalid JSON: Expecting value$"):
        parse_functions_file("functions:\n  a: x.y\n", "fn.json")


@pytest.mark.parametrize("value, message", [
    ("a", "--function a: expected NAME=module.function"),
    ("a=", "--function a=: expected NAME=module.function"),
    ("=x.y", "--function =x.y: invalid function name ''"),
    ("a b=x.y", "--function a b=x.y: invalid function name 'a b'"),
    ("a:1=x.y", "--function a:1=x.y: invalid function name 'a:1'"),
    ("%s=x.y" % ("n" * 65), "--function nnn"),
])
def test_function_option_errors(value, message):
    with pytest.raises(ConfigError) as info:
        parse_function_option(value)
    assert str(info.value).startswith(message), str(info.value)


def test_function_option():
    assert parse_function_option("orders=src/app.orders") == FunctionSpec("orders", handler="src/app.orders")


def _plan(argv, inherited=None, cwd="/task"):
    said = []
    args = build_parser().parse_args(argv)
    functions, any_name = plan_functions(args, cwd, inherited if inherited is not None else {"PATH": "/bin"}, said.append)
    return functions, any_name, said


def test_plan_one_unnamed_function_takes_every_name():
    functions, any_name, _ = _plan(["app.handler"])
    assert any_name and [f.name for f in functions] == ["function"]
    assert functions[0].command[1:] == ["-m", "lambdaric", "app.handler"]
    functions, any_name, _ = _plan([], {"_HANDLER": "env.handler"})
    assert any_name and functions[0].handler == "env.handler"
    functions, any_name, _ = _plan(["--command", "./bootstrap", "--function-name", "fn"])
    assert any_name and functions[0].command == ["./bootstrap"] and functions[0].name == "fn"


def test_plan_named_functions():
    functions, any_name, _ = _plan(["app.h", "--function", "b=app.b", "--function", "c=app.c", "--timeout", "7", "--memory", "256"])
    assert not any_name and [f.name for f in functions] == ["function", "b", "c"]
    assert [(f.timeout, f.memory_mb, f.env["AWS_LAMBDA_FUNCTION_NAME"]) for f in functions] == [
        (7.0, 256, "function"), (7.0, 256, "b"), (7.0, 256, "c")]
    # with only named functions, an inherited $_HANDLER adds no function of its own
    functions, _, _ = _plan(["--function", "b=app.b"], {"_HANDLER": "env.handler"})
    assert [f.name for f in functions] == ["b"] and functions[0].env["_HANDLER"] == "app.b"
    # --command is every function's runtime command; each reads its own _HANDLER
    functions, _, _ = _plan(["--command", "./bootstrap", "--function", "b=app.b"])
    assert [(f.name, f.command, f.env["_HANDLER"]) for f in functions] == [("b", ["./bootstrap"], "app.b")]


def test_plan_errors(tmp_path):
    for argv, message in (
        ([], "no handler given (pass module.function, set _HANDLER, give --function NAME=module.function"),
        (["--function", "a=x.y", "--function", "a=x.z"], "function 'a' is given twice"),
        (["app.h", "--function", "function=x.z"], "function 'function' is given twice"),
        (["app.h", "--function-name", "bad name"], "--function-name: invalid function name 'bad name'"),
        (["app.h", "--env-file", str(tmp_path / "missing.env")], "%s: cannot read it" % (tmp_path / "missing.env")),
        (["--functions", str(tmp_path / "missing.json")], "%s: cannot read it" % (tmp_path / "missing.json")),
    ):
        with pytest.raises((ConfigError, EnvFileError)) as info:
            _plan(argv)
        assert str(info.value).startswith(message), (argv, str(info.value))


def test_plan_environment_layers(tmp_path):
    (tmp_path / "env.json").write_text(json.dumps({"Parameters": {"STAGE": "common", "AWS_REGION": "eu-west-1"},
                                                   "b": {"STAGE": "b-only"}, "typo": {"X": "1"}}))
    (tmp_path / "fn.json").write_text(json.dumps({"functions": {
        "b": {"handler": "app.b", "environment": {"STAGE": "from-config", "OWN": "b"}, "memory": 1024, "timeout": 3},
        "c": {"handler": "app.c", "environment": {"STAGE": "from-config"}}}}))
    functions, any_name, said = _plan(["--functions", str(tmp_path / "fn.json"), "--env-file", str(tmp_path / "env.json")],
                                      {"PATH": "/bin", "STAGE": "inherited", "AWS_LAMBDA_FUNCTION_NAME": "inherited"})
    assert not any_name
    b, c = functions
    assert (b.env["STAGE"], b.env["OWN"], c.env["STAGE"]) == ("b-only", "b", "common")  # the env file wins over the config
    assert b.env["AWS_REGION"] == "eu-west-1" and b.env["PATH"] == "/bin"
    assert (b.env["AWS_LAMBDA_FUNCTION_NAME"], c.env["AWS_LAMBDA_FUNCTION_NAME"]) == ("b", "c")
    assert (b.memory_mb, b.timeout, b.env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]) == (1024, 3.0, "1024")
    assert said == ["lambdaric: %s: section 'typo' names no function served here (b, c): ignored" % (tmp_path / "env.json")]


def test_plan_warns_past_lambdas_4_kb_of_variables(tmp_path):
    (tmp_path / "big.env").write_text("BIG=%s\n" % ("x" * 4100))
    _, _, said = _plan(["app.h", "--env-file", str(tmp_path / "big.env")])
    assert said == ["lambdaric: function function: its variables take 4103 bytes; Lambda refuses more than 4096"]


# ----------------------------------------------------------------------------------- the runtime environment


def test_function_environment():
    inherited = {"PATH": "/bin", "AWS_LAMBDA_RUNTIME_API": "stale:1", "TZ": "Europe/Paris", "AWS_REGION": "eu-west-2",
                 "AWS_LAMBDA_MAX_CONCURRENCY": "9", "AWS_EXECUTION_ENV": None}
    del inherited["AWS_EXECUTION_ENV"]
    env = function_environment(inherited, name="orders", handler="app.orders", memory_mb=512, cwd="/var/task")
    stream = env.pop("AWS_LAMBDA_LOG_STREAM_NAME")
    assert stream[:11].count("/") == 3 and stream[11:20] == "[$LATEST]" and len(stream) == 52
    assert env == {
        "PATH": "/bin",
        "AWS_REGION": "eu-west-2",  # the developer's region stays
        "AWS_DEFAULT_REGION": "us-east-1",
        "LAMBDA_TASK_ROOT": "/var/task",
        "AWS_XRAY_DAEMON_ADDRESS": "169.254.79.129:2000",
        "_AWS_XRAY_DAEMON_ADDRESS": "169.254.79.129",
        "_AWS_XRAY_DAEMON_PORT": "2000",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "AWS_LAMBDA_FUNCTION_NAME": "orders",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/orders",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "TZ": ":UTC",
        "_HANDLER": "app.orders",
    }
    assert "AWS_EXECUTION_ENV" not in env  # container images get none (README)
    assert XRAY_DAEMON_ADDRESS == env["AWS_XRAY_DAEMON_ADDRESS"]


def test_function_environment_modes_and_overrides():
    def env(**kw):
        return function_environment({}, name="f", handler=None, memory_mb=128, cwd="/t", **kw)

    assert env(snapstart=True)["AWS_LAMBDA_INITIALIZATION_TYPE"] == "snap-start"
    lmi = env(max_concurrency=8)
    assert (lmi["AWS_LAMBDA_INITIALIZATION_TYPE"], lmi["AWS_LAMBDA_MAX_CONCURRENCY"]) == ("lambda-managed-instances", "8")
    assert "_HANDLER" not in env()
    local = env(configured={"AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2999", "TZ": "Asia/Tokyo"})
    assert (local["_AWS_XRAY_DAEMON_ADDRESS"], local["_AWS_XRAY_DAEMON_PORT"], local["TZ"]) == ("127.0.0.1", "2999", "Asia/Tokyo")
    inherited = function_environment({"AWS_XRAY_DAEMON_ADDRESS": "10.0.0.1:3000"}, name="f", handler=None, memory_mb=128, cwd="/t")
    assert (inherited["_AWS_XRAY_DAEMON_ADDRESS"], inherited["_AWS_XRAY_DAEMON_PORT"]) == ("10.0.0.1", "3000")


# ----------------------------------------------------------------------------------- finding a function


@pytest.mark.parametrize("raw, ref", [
    ("f", FunctionRef("f")),
    ("f:live", FunctionRef("f", "live")),
    ("123456789012:function:f", FunctionRef("f", None, None, "123456789012")),
    ("123456789012:function:f:3", FunctionRef("f", "3", None, "123456789012")),
    ("arn:aws:lambda:eu-west-1:123456789012:function:f", FunctionRef("f", None, "eu-west-1", "123456789012")),
    ("arn%3Aaws%3Alambda%3Aus-gov-west-1%3A123456789012%3Afunction%3Af%3A%24LATEST", FunctionRef("f", "$LATEST", "us-gov-west-1", "123456789012")),
    ("arn:aws:lambda:us-east-1:12345:function:f", None),  # an account is 12 digits
    ("arn:aws:lambda:Nowhere:123456789012:function:f", None),
    ("arn:aws:lambda::123456789012:function:f", None),
    ("abc:function:f", None),
    ("f:a:b", None),
    ("f%0d%0a", None),
    ("x" * 141, None),
])
def test_parse_function(raw, ref):
    assert parse_function(raw) == ref


def _functions(*names, any_name=False):
    return Functions([Function(FunctionSettings(n, ["true"], {}, "/"), lambda data: None) for n in names], any_name=any_name)


def test_functions_find():
    functions = _functions("a", "b")
    assert functions.find(FunctionRef("b", "3", "us-east-1", "123456789012")).name == "b"
    for ref, status, message in (
        (FunctionRef("c"), 404, "Function not found: arn:aws:lambda:us-east-1:123456789012:function:c"),
        (FunctionRef("a", None, "eu-west-1", "123456789012"), 404, "Functions from 'eu-west-1' are not reachable in this region ('us-east-1')"),
        (FunctionRef("a", None, None, "999999999999"), 404, "Function not found: arn:aws:lambda:us-east-1:999999999999:function:a"),
    ):
        with pytest.raises(Refused) as info:
            functions.find(ref)
        assert (info.value.status, info.value.error_type, info.value.message) == (status, "ResourceNotFoundException", message)
    # one unnamed function takes every name, region and account, as the emulator always did
    single = _functions("function", any_name=True)
    assert single.find(FunctionRef("other", None, "eu-west-1", "999999999999")).name == "function"
    # any_name is for one function only
    with pytest.raises(Refused):
        _functions("a", "b", any_name=True).get("c")
    with pytest.raises(ValueError, match="given twice"):
        _functions("a", "a")
    assert single.arn("x", "7") == "arn:aws:lambda:us-east-1:123456789012:function:x:7"


def test_argparse_options_exist():
    args = build_parser().parse_args(["--function", "a=x.y", "--functions", "f.json", "--env-file", ".env", "--xray-sampled"])
    assert isinstance(args, argparse.Namespace)
    assert (args.function_specs, args.functions_file, args.env_file, args.xray_sampled) == (["a=x.y"], "f.json", ".env", True)


def test_read_functions_file_errors(tmp_path):
    from lambdaric.emulator.function_config import read_functions_file

    for name, data, message in (
        ("big.json", b'{"functions": {"a": {"handler": "x.y", "environment": {"A": "%s"}}}}' % (b"x" * (1024 * 1024)),
         "big.json: larger than 1 MiB: not a functions file"),
        ("latin.json", b'{"functions": {"caf\xe9": {"handler": "x.y"}}}', "latin.json: not UTF-8 text (byte 19)"),
    ):
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(ConfigError) as info:
            read_functions_file(str(path))
        assert str(info.value) == "%s/%s" % (tmp_path, message)
    with pytest.raises(ConfigError) as info:
        read_functions_file(str(tmp_path))
    assert str(info.value) == "%s: cannot read it: Is a directory" % tmp_path
