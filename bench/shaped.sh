#!/usr/bin/env bash
# Syncs the demo pipeline, with each binary given, against two sandboxes shaped like the real APIs
# (one host per API, 20 ms a request, 429 above ALLOWED (16) requests in flight), alternating binaries, RUNS
# times each; prints extraction seconds, requests per API, the bound (the busier API's requests ×
# 20 ms ÷ ALLOWED) and the ratio; then, where a host was paused, the seconds each host was closed by
# Retry-After answers and the ratio with that counted in the bound (each API's requests × 20 ms ÷ ALLOWED
# plus its pauses, the longer of the two). The sandboxes are the last binary's. QUIET=1: their 429s
# carry no Retry-After (the last binary's sandbox must know --quiet-limit). Last, each host's limit at
# the end and its 429s (Signicat/GSAPI).
#   bench/shaped.sh bin/extract-before bin/extract
set -u
RUNS=${RUNS:-3}
ALLOWED=${ALLOWED:-16}
quiet=(); [ -n "${QUIET:-}" ] && quiet=(--quiet-limit)
SANDBOX=${@: -1}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
sig=$((30000 + RANDOM % 10000)); gs=$((sig + 1))
"$SANDBOX" sandbox --addr 127.0.0.1:$sig --latency 20ms --concurrency $ALLOWED "${quiet[@]}" >/dev/null 2>&1 &
"$SANDBOX" sandbox --addr 127.0.0.1:$gs --latency 20ms --concurrency $ALLOWED "${quiet[@]}" >/dev/null 2>&1 &
sleep 1
demo=$(dirname "$0")/../pipelines/demo.yaml
printf '%-26s %4s %9s %9s %9s %8s %6s %9s %7s %7s %7s\n' binary run extract_s signicat gsapi bound_s ratio paused_s ratio_p limits 429s
for i in $(seq "$RUNS"); do
  n=0
  for bin in "$@"; do
    # Numbered, not named by the binary: two binaries both called "extract" must not share a lake,
    # or the second run is an incremental one.
    n=$((n + 1)); dir="$work/$n-$i"; mkdir -p "$dir"
    sed -e "s#\${LEDGERLAKE_SANDBOX_URL}/api#http://127.0.0.1:$gs/api#" -e "s#\${LEDGERLAKE_SANDBOX_URL}#http://127.0.0.1:$sig#" \
        -e "s#data/demo#$dir#" "$demo" >"$dir/p.yaml"
    echo "iceberg: {enabled: false}" >>"$dir/p.yaml"
    SIGNICAT_CLIENT_ID=org-sandbox-client SIGNICAT_CLIENT_SECRET=sandbox-secret GSAPI_USERNAME=apidemouser GSAPI_PASSWORD=apidemo-password \
      "$bin" run --config "$dir/p.yaml" >/dev/null 2>&1
    python3 - "$dir" "$n:$(basename "$bin")" "$i" "$sig" "$gs" "$ALLOWED" <<'PY'
import json, glob, sys, datetime
d, name, i, sig, gs, allowed = sys.argv[1:]
allowed = int(allowed)
rep = json.load(open(sorted(glob.glob(d + "/lake/_manifests/*.report.json"))[-1]))
m = json.load(open(sorted(f for f in glob.glob(d + "/lake/_manifests/*.json") if not f.endswith("report.json"))[-1]))
t = lambda s: datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))
extract = (t(m["finished_at"]) - t(m["started_at"])).total_seconds()
req = {"signicat": 0, "gsapi": 0}
for s in rep["streams"]:
    req[s["table"].split("_")[0]] += s["requests"]
bound = max(req.values()) * 0.020 / allowed
hosts = {h["host"]: h for h in m.get("hosts") or []}
if any("paused_seconds" in h for h in hosts.values()):
    paused = {api: hosts.get("127.0.0.1:" + p, {}).get("paused_seconds", 0) for api, p in (("signicat", sig), ("gsapi", gs))}
    pbound = max(req[a] * 0.020 / allowed + paused[a] for a in req)
    extra = f"{paused['signicat']:4.2f}+{paused['gsapi']:4.2f} {extract/pbound:7.2f}"
else:
    extra = f"{'-':>9s} {'-':>7s}"
h = [hosts.get("127.0.0.1:" + p, {}) for p in (sig, gs)]
limits = "/".join(str(x.get("final", "-")) for x in h)
refused = "/".join(str(x.get("throttled", "-")) for x in h)
print(f"{name:26s} {i:>4s} {extract:9.2f} {req['signicat']:9d} {req['gsapi']:9d} {bound:8.2f} {extract/bound:6.2f} {extra} {limits:>7s} {refused:>7s}")
PY
  done
done
