"""Count the API requests of matching users in a Kubernetes audit log (JSON lines on stdin)
and list the ones the authorizer refused (HTTP 403).

    tail -c +N audit.log | python3 audit_denials.py --user-pattern '^system:serviceaccount:.*:lakeform$'

Exit status: 0 when there were requests and none was denied; 1 when any was denied; 2 when no
request of a matching user is in the log (nothing was checked) unless --allow-none."""

import argparse
import collections
import json
import re
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--user-pattern", required=True, help="regex on user.username")
    parser.add_argument("--allow-none", action="store_true", help="exit 0 when no request matched")
    args = parser.parse_args()
    user = re.compile(args.user_pattern)
    total = 0
    denied = collections.Counter()
    for line in sys.stdin:
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by rotation or by the byte offset
        if event.get("stage") != "ResponseComplete":
            continue
        if not user.search(event.get("user", {}).get("username", "")):
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
