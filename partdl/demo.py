"""``make demo``: a real download from an embedded object store, interrupted and resumed.

Starts moto's S3 server on 127.0.0.1 (OSS clients talk to it path-style), uploads a
generated object, runs the ``partdl`` command on it, presses Ctrl-C part-way (a real
SIGINT), runs the same command again to resume, and checks the file byte for byte.
It needs the ``dev`` extra (moto); nothing leaves this machine.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .crc import crc64

BUCKET = "partdl-demo"
KEY = "datasets/demo.bin"
# The command signs V4, as OSS requires; a loopback endpoint names no region.
REGION = "cn-hangzhou"
SIZE = 256 * 1024 * 1024
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


# What moto reads to route a request to its S3 backend; it checks no signature.
_S3_SCOPE = "AWS4-HMAC-SHA256 Credential=demo/20200101/us-east-1/s3/aws4_request, Signature=0"


def _with_oss_crc(app: WsgiApp, crc: int) -> WsgiApp:
    """Add the header OSS sends and moto does not, so the CRC check runs for real.

    An OSS V4 Authorization names the service ``oss``, unknown to moto: it is
    replaced by an S3 one so that moto's router sends the request to S3.
    """

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("HTTP_AUTHORIZATION", "").startswith("OSS"):
            environ = {**environ, "HTTP_AUTHORIZATION": _S3_SCOPE}

        def start(status: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
            if environ.get("PATH_INFO", "").endswith(KEY) and status[:3] in ("200", "206"):
                headers.append(("x-oss-hash-crc64ecma", str(crc)))
            return start_response(status, headers, *exc)

        return app(environ, start)

    return wrapped


def _start_store(crc: int) -> tuple[str, Callable[[], None]]:
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app = _with_oss_crc(DomainDispatcherApplication(create_backend_app), crc)
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return f"http://127.0.0.1:{server.server_port}", server.shutdown


def _upload(endpoint: str, data: bytes) -> None:
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="demo",
        aws_secret_access_key="demo",
    )
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=data)


def _command(endpoint: str, destination: Path) -> list[str]:
    return [
        sys.executable, "-m", "partdl", f"oss://{BUCKET}/{KEY}", str(destination),
        "--endpoint", endpoint, "--region", REGION, "--part-size", "8MiB", "--task-num", "4",
    ]  # fmt: skip


def _interrupt_part_way(command: list[str], env: dict[str, str], checkpoint: Path) -> None:
    # A shell without job control (a script's `cmd &`, some CI runners) starts a command
    # with SIGINT ignored, and a child inherits that: the demo's Ctrl-C would be lost.
    # A handled signal is reset to the default on exec, so this gives the child its own.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    child = subprocess.Popen(command, env=env)
    # A demo may watch the clock; the journal gains a line per finished part.
    while child.poll() is None:
        if checkpoint.exists() and checkpoint.read_bytes().count(b"\n") > 12:
            child.send_signal(signal.SIGINT)
            break
        time.sleep(0.05)
    print(f"\n[demo] the first run exited with status {child.wait()}", flush=True)


def main() -> int:
    print(f"[demo] generating a {SIZE // 2**20} MiB object ...", flush=True)
    data = os.urandom(SIZE)
    endpoint, stop = _start_store(crc64(data))
    try:
        _upload(endpoint, data)
        print(f"[demo] uploaded oss://{BUCKET}/{KEY} to the local store at {endpoint}", flush=True)
        with tempfile.TemporaryDirectory(prefix="partdl-demo-") as directory:
            destination = Path(directory) / "demo.bin"
            env = {**os.environ, "OSS_ACCESS_KEY_ID": "demo", "OSS_ACCESS_KEY_SECRET": "demo"}
            command = _command(endpoint, destination)
            print("[demo] $ " + " ".join(command[2:]), flush=True)
            print("[demo] pressing Ctrl-C part-way through ...", flush=True)
            _interrupt_part_way(command, env, Path(f"{destination}.dcp"))
            print("[demo] running the same command again: it resumes", flush=True)
            subprocess.run(command, env=env, check=True)
            same = destination.read_bytes() == data
            print(f"[demo] the file is byte-identical to the object: {same}", flush=True)
            leftovers = sorted(p.name for p in Path(directory).iterdir() if p != destination)
            print(f"[demo] files left beside it: {leftovers or 'none'}", flush=True)
            return 0 if same and not leftovers else 1
    finally:
        stop()


if __name__ == "__main__":
    sys.exit(main())
