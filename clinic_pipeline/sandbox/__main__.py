"""`python -m clinic_pipeline.sandbox`: the same flags as `clinic-pipeline sandbox`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from clinic_pipeline.sandbox.ratelimit import PLANS
from clinic_pipeline.sandbox.server import serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clinic_pipeline.sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--db", type=Path, default=Path("data/sandbox/freshsales.sqlite"))
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--test-mode", action="store_true", help="enable the /_sandbox/ controls")
    parser.add_argument("--plan", choices=sorted(PLANS), default="unlimited")
    parser.add_argument("--requests-per-hour", type=int)
    parser.add_argument("--requests-per-minute", type=int)
    parser.add_argument("--max-file-bytes", type=int)
    parser.add_argument("--retry-after", action="store_true", help="send Retry-After with 429 answers")
    parser.add_argument("--ssl-certfile", type=Path, help="serve HTTPS with this certificate chain (PEM)")
    parser.add_argument("--ssl-keyfile", type=Path, help="the private key of --ssl-certfile (PEM)")
    args = parser.parse_args(argv)
    try:
        serve(
            host=args.host,
            port=args.port,
            db=args.db,
            api_key=args.api_key,
            test_mode=args.test_mode,
            plan=args.plan,
            requests_per_hour=args.requests_per_hour,
            requests_per_minute=args.requests_per_minute,
            max_file_bytes=args.max_file_bytes,
            retry_after=args.retry_after,
            ssl_certfile=args.ssl_certfile,
            ssl_keyfile=args.ssl_keyfile,
        )
    except ValueError as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
