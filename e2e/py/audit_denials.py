"""Count the API requests of matching users in Kubernetes audit logs (JSON lines) and list the
ones the authorizer refused (HTTP 403).

    python3 audit_denials.py --user-pattern '^system:serviceaccount:.*:lakeform$' \
        --since 2026-12-01T05:03:00.000000Z logs/kube-apiserver-audit*.log

Give the current log and its rotated backups: the API server rotates by size, so a run's
requests may span both. --since keeps the requests received at or after that instant (UTC);
files last written before it are not read.

Exit status: 0 when there were requests and none was denied; 1 when any was denied; 2 when no
request of a matching user is in the log (nothing was checked) unless --allow-none."""

import argparse
import collections
import datetime
import json
import os
import re
import sys


def parse_time(text: str) -> datetime.datetime:
    """An audit timestamp (RFC 3339, UTC, 'Z' suffix) as an aware datetime."""
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def lines(paths, since):
    """The lines of every file written at or after `since` (all of stdin when no path given)."""
    if not paths:
        yield from sys.stdin
        return
    for path in paths:
        try:
            if since and os.stat(path).st_mtime < since.timestamp():
                continue
            with open(path, encoding="utf-8", errors="replace") as log:
                yield from log
        except FileNotFoundError:
            continue  # rotated away between the glob and the read


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--user-pattern", required=True, help="regex on user.username")
    parser.add_argument("--allow-none", action="store_true", help="exit 0 when no request matched")
    parser.add_argument("--since", type=parse_time, help="only requests received at or after (UTC)")
    parser.add_argument("logs", nargs="*", help="audit log files (default: stdin)")
    args = parser.parse_args()
    user = re.compile(args.user_pattern)
    total = 0
    denied = collections.Counter()
    for line in lines(args.logs, args.since):
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by rotation or by the byte offset
        if event.get("stage") != "ResponseComplete":
            continue
        if not user.search(event.get("user", {}).get("username", "")):
            continue
        received = event.get("requestReceivedTimestamp")
        if args.since and (not received or parse_time(received) < args.since):
            continue
        total += 1
        if event.get("responseStatus", {}).get("code") == 403:
            ref = event.get("objectRef", {})
            resource = ref.get("resource", "?") + (
                "/" + ref["subresource"] if ref.get("subresource") else ""
            )
            group = ref.get("apiGroup") or "core"
            denied[(event.get("verb"), group, resource, ref.get("namespace", ""))] += 1
    print(f"audit: {total} requests of {args.user_pattern}, {sum(denied.values())} denied (403)")
    for (verb, group, resource, ns), n in sorted(denied.items()):
        print(f"  DENIED {n}x {verb} {group} {resource} (namespace {ns or '-'})")
    if total == 0 and not args.allow_none:
        print("audit: no request of these users in the log: nothing was checked", file=sys.stderr)
        return 2
    return 1 if denied else 0


if __name__ == "__main__":
    sys.exit(main())
