"""examples/thumbnailer end to end: the function runs under the emulator (``python -m lambdaric
app.handler`` in the example's folder), talks to a real S3-compatible server on loopback (moto
in server mode) through boto3 and AWS_ENDPOINT_URL_S3, and runs Debian's ffmpeg on a video
that ffmpeg generated here. What is checked is what the user would see: the PNG in the bucket
(signature, IHDR width and height), the function's result and its log."""
import base64
import copy
import json
import os
import shutil
import struct
import subprocess
import urllib.parse

import pytest

from peers import peer_module

from emulator_harness import REPO, RunningEmulator
from lambdaric import events

boto3 = peer_module("boto3", "pip install boto3")
moto_server = pytest.importorskip("moto.server", reason='moto is not installed (pip install "moto[server]")')
if tuple(int(x) for x in boto3.__version__.split(".")[:2]) < (1, 28):
    pytest.skip("boto3 %s does not read AWS_ENDPOINT_URL_S3 (pip install 'boto3>=1.28')" % boto3.__version__, allow_module_level=True)
if not shutil.which("ffmpeg"):
    pytest.skip("ffmpeg is not installed (apt-get install -y ffmpeg)", allow_module_level=True)

EXAMPLE = os.path.join(REPO, "examples", "thumbnailer")
BUCKET = "uploads"
REGION = "us-east-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing"}


def s3_event(bucket, keys):
    """One ObjectCreated:Put record per key, from the S3 sample event (keys URL-encoded as S3
    sends them: a space becomes '+')."""
    template = events.load("s3")["Records"][0]
    records = []
    for key in keys:
        record = copy.deepcopy(template)
        record["s3"]["bucket"]["name"] = bucket
        record["s3"]["bucket"]["arn"] = "arn:aws:s3:::" + bucket
        record["s3"]["object"]["key"] = urllib.parse.quote_plus(key, safe="/")
        records.append(record)
    return {"Records": records}


def png_size(data):
    """(width, height) from a PNG's IHDR chunk, after checking the signature and chunk order."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:8]
    length, kind = struct.unpack(">I4s", data[8:16])
    assert (length, kind) == (13, b"IHDR")
    return struct.unpack(">II", data[16:24])


def make_video(path, seconds):
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-f", "lavfi",
         "-i", "testsrc=duration=%s:size=640x360:rate=25" % seconds, "-pix_fmt", "yuv420p", path],
        check=True, timeout=60,
    )


@pytest.fixture(scope="module")
def s3_endpoint():
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield "http://%s:%d" % (host, port)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def s3(s3_endpoint):
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name=REGION,
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    made = {}
    for name, seconds in (("clip", 2), ("short", 0.4)):
        made[name] = str(folder / (name + ".mp4"))
        make_video(made[name], seconds)
    return made


@pytest.fixture(scope="module")
def emu(s3_endpoint):
    env = dict(CREDENTIALS, AWS_ENDPOINT_URL_S3=s3_endpoint, AWS_REGION=REGION, AWS_DEFAULT_REGION=REGION,
               PYTHONDONTWRITEBYTECODE="1")
    with RunningEmulator({}, handler="app.handler", cwd=EXAMPLE, env=env) as running:
        yield running


def invoke(emu, event):
    answer = emu.client().invoke(FunctionName="function", Payload=json.dumps(event).encode(), LogType="Tail")
    return answer, json.loads(answer["Payload"].read()), base64.b64decode(answer["LogResult"]).decode()


def test_thumbnail_next_to_the_uploaded_video(emu, s3, videos):
    s3.upload_file(videos["clip"], BUCKET, "videos/2024/my clip.mp4")
    answer, result, log = invoke(emu, s3_event(BUCKET, ["videos/2024/my clip.mp4"]))
    assert "FunctionError" not in answer, result
    thumb = s3.get_object(Bucket=BUCKET, Key="videos/2024/my clip.png")
    data = thumb["Body"].read()
    assert png_size(data) == (320, 180)
    assert thumb["ContentType"] == "image/png"
    assert result == {
        "thumbnails": [{"bucket": BUCKET, "source": "videos/2024/my clip.mp4", "key": "videos/2024/my clip.png", "size": len(data)}],
        "skipped": [],
    }
    assert "thumbnail s3://uploads/videos/2024/my clip.png (%d bytes) from s3://uploads/videos/2024/my clip.mp4" % len(data) in log


def test_short_video_gives_its_first_frame_and_other_keys_are_skipped(emu, s3, videos):
    """A video shorter than THUMBNAIL_AT (1 s) still gets a thumbnail; the PNGs the function
    writes (S3 notifies for them too) are skipped, not thumbnailed again."""
    s3.upload_file(videos["short"], BUCKET, "short.MP4")
    before = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])}
    answer, result, _ = invoke(emu, s3_event(BUCKET, ["short.MP4", "videos/2024/my clip.png"]))
    assert "FunctionError" not in answer, result
    data = s3.get_object(Bucket=BUCKET, Key="short.png")["Body"].read()
    assert png_size(data) == (320, 180)
    assert result == {
        "thumbnails": [{"bucket": BUCKET, "source": "short.MP4", "key": "short.png", "size": len(data)}],
        "skipped": ["videos/2024/my clip.png"],
    }
    after = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert after - before == {"short.png"}


def test_a_file_that_is_not_a_video_is_a_function_error(emu, s3):
    s3.put_object(Bucket=BUCKET, Key="broken.mp4", Body=b"not a video at all")
    answer, result, log = invoke(emu, s3_event(BUCKET, ["broken.mp4"]))
    assert answer["FunctionError"] == "Unhandled"
    assert result["errorType"] == "RuntimeError"
    assert result["errorMessage"].startswith("ffmpeg failed (exit 1): ")
    assert "Invalid data found when processing input" in result["errorMessage"]
    assert "[ERROR] RuntimeError: ffmpeg failed" in log
    assert "broken.png" not in {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
