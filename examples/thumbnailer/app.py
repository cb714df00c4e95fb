"""Video thumbnailer: an S3 ``ObjectCreated`` event for an ``.mp4`` makes a PNG of one frame
next to it (``videos/clip.mp4`` -> ``videos/clip.png``), as in the Lambda container-image
launch example. Container images exist for this kind of function: ffmpeg is an ordinary
Debian package in the image instead of a layer built by hand.

Settings (environment): ``THUMBNAIL_WIDTH`` (pixels, default 320; the height keeps the aspect
ratio), ``THUMBNAIL_AT`` (seconds into the video, default 1; a shorter video gives its first
frame), ``FFMPEG`` (the program, default ``ffmpeg`` on PATH). boto3 finds S3 as it always does;
``AWS_ENDPOINT_URL_S3`` points it elsewhere (a local S3-compatible server when testing).
"""
import os
import subprocess
import tempfile
import urllib.parse

import boto3

WIDTH = int(os.environ.get("THUMBNAIL_WIDTH", "320"))
AT = float(os.environ.get("THUMBNAIL_AT", "1"))
FFMPEG = os.environ.get("FFMPEG", "ffmpeg")

# Made once per execution environment (at init), reused by every warm invoke.
s3 = boto3.client("s3")


def handler(event, context):
    """One thumbnail per ``.mp4`` record; other keys (the PNGs this function writes, which
    trigger it again when the bucket notifies on every ObjectCreated) are skipped."""
    thumbnails, skipped = [], []
    for record in event["Records"]:
        bucket = record["s3"]["bucket"]["name"]
        # S3 event keys are URL-encoded, a space as "+": "my clip.mp4" arrives as "my+clip.mp4"
        key = urllib.parse.unquote_plus(record["s3"]["object"]["key"])
        if not key.lower().endswith(".mp4"):
            skipped.append(key)
            continue
        thumbnails.append(make_thumbnail(bucket, key))
    return {"thumbnails": thumbnails, "skipped": skipped}


def make_thumbnail(bucket, key):
    thumb_key = key[: -len(".mp4")] + ".png"
    # /tmp is the only writable place in Lambda; the directory goes away with its files
    with tempfile.TemporaryDirectory() as tmp:
        video = os.path.join(tmp, "video.mp4")
        png = os.path.join(tmp, "thumbnail.png")
        s3.download_file(bucket, key, video)
        grab_frame(video, png, AT)
        if not os.path.getsize(png):  # the video is shorter than AT: take its first frame
            grab_frame(video, png, 0)
        if not os.path.getsize(png):
            raise RuntimeError("ffmpeg found no video frame in s3://%s/%s" % (bucket, key))
        size = os.path.getsize(png)
        s3.upload_file(png, bucket, thumb_key, ExtraArgs={"ContentType": "image/png"})
    print("thumbnail s3://%s/%s (%d bytes) from s3://%s/%s" % (bucket, thumb_key, size, bucket, key))
    return {"bucket": bucket, "source": key, "key": thumb_key, "size": size}


def grab_frame(video, png, at):
    """One frame ``at`` seconds in, scaled to WIDTH (height even, aspect kept), as PNG.
    Past the end of the video ffmpeg succeeds and writes nothing: the file is left empty."""
    open(png, "wb").close()
    argv = [FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
            "-ss", "%g" % at, "-i", video, "-frames:v", "1", "-vf", "scale=%d:-2" % WIDTH,
            "-f", "image2", "-c:v", "png", png]
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
    if done.returncode:
        raise RuntimeError("ffmpeg failed (exit %d): %s" % (done.returncode, done.stderr.decode(errors="replace").strip()[-2000:]))
