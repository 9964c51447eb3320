#!/usr/bin/env bash
# Runs ledgerlake binaries against the sandbox misbehaving one way at a time (extract sandbox --hostile)
# and prints, per mode and binary: exit code, wall seconds, peak RSS, rows loaded, and whether a
# credential reached the output or any file under the work dir. Used for the before/after table in
# bench/README.md:  bench/hostile.sh bin/extract-before bin/extract
# The sandbox is the last binary's (the one that has the modes). Each run is cut at $LIMIT seconds.
set -u
LIMIT=${LIMIT:-180}
SANDBOX=${@: -1}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
secrets=(sandbox-secret apidemo-password "$(printf 'apidemouser:apidemo-password' | base64)")

# mode → the streams it is about (signicat list; gsapi list)
declare -A streams=(
  [token-echo-400]="organizations;" [token-echo-500]="organizations;" [welcome-echo-403]=";country_codes"
  [welcome-echo-500]=";country_codes" [foreign-next]="organizations;" [foreign-redirect]=";users"
  [future-invoice]="invoices;" [null-list]="organizations;organizations" [hang-once]=";country_codes"
  [trickle-once]=";country_codes" [retry-after-day]=";users" [endless-next]="contacts;"
  [huge-list]=";organizations" [huge-page]="contacts;" [huge-value]=";users" [huge-pdf]="invoices,invoice_pdfs;" [missing-invoice]="invoices,invoice_lines;"
  [dotdot-invoice]="invoices,invoice_lines;" [bad-partition]="invoices;" [invalid-utf8]=";country_codes" [duplicate-keys]=";country_codes"
)
modes=${MODES:-"${!streams[@]}"}

config() { # dir url signicat-streams gsapi-streams
  printf 'output_dir: %s/lake\nwarehouse: %s/wh.duckdb\niceberg: {enabled: false}\nsources:\n' "$1" "$1"
  if [ -n "$3" ]; then printf '  signicat:\n    base_url: %s/account-management\n    token_url: %s/auth/open/connect/token\n    client_id: org-sandbox-client\n    client_secret: ${SIGNICAT_CLIENT_SECRET}\n    organization_id: o-p-0TgcUq7CylltM7OkwB4t\n    since: 2025-06-01\n    pdfs: %s\n    streams: [%s]\n' "$2" "$2" "$([[ $3 == *pdfs* ]] && echo true || echo false)" "$3"; fi
  if [ -n "$4" ]; then printf '  gsapi:\n    base_url: %s/api/interface/gsapi\n    username: apidemouser\n    password: ${GSAPI_PASSWORD}\n    since: 2025-06-01\n    streams: [%s]\n' "$2" "$4"; fi
}

printf '%-17s %-28s %5s %8s %8s %9s %s\n' mode binary exit seconds RSS_MB rows leak
for mode in $modes; do
  IFS=';' read -r sig gs <<<"${streams[$mode]}"
  for bin in "$@"; do
    # A sandbox of its own for each binary: some modes misbehave once.
    port=$((20000 + RANDOM % 20000))
    "$SANDBOX" sandbox --addr 127.0.0.1:$port --scale 0.05 --hostile "$mode" >/dev/null 2>&1 &
    sb=$!
    sleep 1
    dir="$work/$mode-$(basename "$bin")"
    mkdir -p "$dir"
    # null-list is about a second run: the first (clean) one is made with the mode off, by a separate sandbox.
    if [ "$mode" = null-list ]; then
      "$SANDBOX" sandbox --addr 127.0.0.1:$((port + 1)) --scale 0.05 >/dev/null 2>&1 &
      clean=$!; sleep 1
      config "$dir" "http://127.0.0.1:$((port + 1))" "$sig" "$gs" >"$dir/p.yaml"
      SIGNICAT_CLIENT_SECRET=sandbox-secret GSAPI_PASSWORD=apidemo-password "$bin" run --config "$dir/p.yaml" >/dev/null 2>&1
      kill $clean; wait $clean 2>/dev/null
    fi
    config "$dir" "http://127.0.0.1:$port" "$sig" "$gs" >"$dir/p.yaml"
    start=$(date +%s.%N)
    SIGNICAT_CLIENT_SECRET=sandbox-secret GSAPI_PASSWORD=apidemo-password \
      /usr/bin/time -f '%M' -o "$dir/rss" timeout -s KILL "$LIMIT" "$bin" run --config "$dir/p.yaml" >"$dir/out" 2>"$dir/err"
    code=$?
    secs=$(echo "$(date +%s.%N) - $start" | bc)
    rss=$(( $(tail -1 "$dir/rss" 2>/dev/null | grep -E '^[0-9]+$' || echo 0) / 1024 ))
    rows=$(awk '$2=="ok"||$2=="failed"{n+=$3} END{print n+0}' "$dir/out")
    leak=no
    for s in "${secrets[@]}"; do
      grep -rqaF -- "$s" "$dir/lake" "$dir/wh.duckdb" "$dir/out" "$dir/err" 2>/dev/null && leak=YES
    done
    [ $code -eq 137 ] && code="kill"
    printf '%-17s %-28s %5s %8.1f %8s %9s %s\n' "$mode" "$(basename "$bin")" "$code" "$secs" "$rss" "$rows" "$leak"
    kill $sb; wait $sb 2>/dev/null
  done
done
