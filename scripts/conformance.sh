#!/usr/bin/env bash
# Runs an upstream conformance suite against the lab cluster
# (scripts/k8s-lab.sh up) with ebmesh as its only service proxy and network
# policy enforcer, and keeps the report in conformance/reports/SUITE-TIME/:
#
#   k8s      Kubernetes' e2e tests, [sig-network] [Conformance]
#   netpol   Kubernetes' e2e NetworkPolicy tests (Netpol), every one
#   gateway  Gateway API's conformance suite, mesh profiles (GAMMA)
#   cyclonus cyclonus's generated NetworkPolicy cases: each policy probed from
#            every pod to every pod of three namespaces, on TCP and UDP
#
# Options: --focus REGEX   run only the tests matching REGEX (within the suite;
#                          cyclonus: its tags, comma-separated, --include)
#          --timeout MIN   bound the run (defaults: k8s 120, netpol 240, gateway 90)
#          --nodes N       ginkgo processes for the e2e suites (default 2)
#
# What it builds (cached under /var/cache/ebmesh, nothing from a registry):
# the suites' binaries (scripts/k8s/build-e2e.sh, build-gateway.sh) and the
# images their pods run (images/e2e.sh, images/gateway.sh), imported into
# the cluster's containerd. Skip lists: conformance/*-skip.txt, one regular
# expression per line with its reason. The report directory holds the
# summary (summary.md), what the suite wrote (JUnit XML, the Gateway API
# conformance report YAML) and the run's facts; the full log stays in
# /var/lib/ebmesh-k8s/conformance/ (not committed: too large).
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
. "$REPO/scripts/k8s/versions.sh"
. "$REPO/scripts/k8s/config.sh"
. "$REPO/scripts/k8s/lib.sh"
. "$REPO/scripts/k8s/daemons.sh"
. "$REPO/images/lib.sh"
. "$REPO/images/toolbox.sh"
. "$REPO/images/pause.sh"
. "$REPO/images/e2e.sh"
. "$REPO/images/gateway.sh"

suite="${1:-}"; [ $# -gt 0 ] && shift
focus=""; timeout_min=""; nodes=2
while [ $# -gt 0 ]; do
  case "$1" in
    --focus) focus="$2"; shift 2 ;;
    --timeout) timeout_min="$2"; shift 2 ;;
    --nodes) nodes="$2"; shift 2 ;;
    *) k8s_die "conformance.sh: unknown option $1" ;;
  esac
done
case "$suite" in
  k8s) timeout_min="${timeout_min:-120}" ;;
  netpol) timeout_min="${timeout_min:-240}" ;;
  gateway) timeout_min="${timeout_min:-90}" ;;
  cyclonus) timeout_min="${timeout_min:-120}" ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac

KUBECTL=("$K8S_BIN/kubectl" --kubeconfig "$K8S_ADMIN_KUBECONFIG")
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
report="$REPO/conformance/reports/$suite-$stamp"
logdir="$K8S_STATE/conformance/$suite-$stamp"

# The cluster answers, its node is Ready and ebmesh's agent runs on it.
cluster_check() {
  [ "$(id -u)" -eq 0 ] || k8s_die "conformance.sh needs root (the lab cluster's images and containerd)"
  [ -f "$K8S_ADMIN_KUBECONFIG" ] && "${KUBECTL[@]}" get --raw /readyz >/dev/null 2>&1 \
    || k8s_die "no lab cluster answers: bash scripts/k8s-lab.sh up"
  "${KUBECTL[@]}" wait --for=condition=Ready "node/$K8S_NODE_NAME" --timeout=60s >/dev/null \
    || k8s_die "node $K8S_NODE_NAME is not Ready"
  "${KUBECTL[@]}" -n ebmesh-system rollout status daemonset --timeout=120s >/dev/null \
    || k8s_die "ebmesh's agent is not rolled out in ebmesh-system (bash scripts/k8s-lab.sh up)"
}

# import_images RECIPE...: builds each image (cached) and imports it.
import_images() {
  local r
  for r in "$@"; do
    "image_$r" || { img_cleanup; k8s_die "building the $r image failed"; }
    k8s_import "$IMG_REF" "$IMG_ARCHIVE"
  done
}

# Facts of the run, for the summary.
run_facts() {
  local agent
  agent="$("${KUBECTL[@]}" -n ebmesh-system get daemonset -o jsonpath='{.items[0].spec.template.spec.containers[0].image}' 2>/dev/null || true)"
  printf '%s\n' \
    "date: $(date -u +%FT%TZ)" \
    "ebmesh: $(git -C "$REPO" rev-parse --short HEAD)$(git -C "$REPO" diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)'), agent image $agent" \
    "cluster: Kubernetes $K8S_VERSION, one node, no kube-proxy; containerd $(containerd --version | awk '{print $3}'); CoreDNS $COREDNS_VERSION"
}

# entries FILE: a list file's entries, without comments and blank lines
# (none is not an error: an empty skip list is the goal).
entries() { grep -vE '^\s*(#|$)' "$1" || true; }
entry_count() { entries "$1" | grep -c . || true; }

# skip_regex FILE: the skip list's expressions joined into one.
skip_regex() {
  entries "$1" | sed 's/ -- .*//' | paste -sd'|' -
}

# run_e2e NAME FOCUS SKIPFILE: Kubernetes' e2e.test under ginkgo, bounded.
run_e2e() {
  local name="$1" suite_focus="$2" skipfile="$3"
  bash "$REPO/scripts/k8s/build-e2e.sh"
  bash "$REPO/scripts/k8s/build-tools.sh" coredns
  k8s_say "building and importing the e2e images"
  import_images pause "${E2E_IMAGES[@]}"
  local skip; skip="$(skip_regex "$skipfile")"
  local f="$suite_focus"
  [ -n "$focus" ] && f="$focus"
  mkdir -p "$report" "$logdir"
  run_facts > "$report/facts.txt"
  {
    echo "suite: $name ($K8S_E2E_BIN/e2e.test, ginkgo --nodes=$nodes)"
    echo "focus: $f"
    echo "skip: $(basename "$skipfile") ($(entry_count "$skipfile") entries)"
  } >> "$report/facts.txt"
  k8s_say "running $name: focus /$f/, $(entry_count "$skipfile") skip entries, at most $timeout_min min; log: $logdir/e2e.log"
  local t0=$SECONDS rc=0
  # --timeout is ginkgo's own bound (it then reports what ran); timeout(1)
  # stops a run that does not end even then.
  KUBE_TEST_REPO_LIST="$REPO/conformance/k8s-repo-list.yaml" \
  timeout --kill-after=60 "$((timeout_min + 5))m" \
    "$K8S_E2E_BIN/ginkgo" --nodes="$nodes" --timeout="${timeout_min}m" --no-color \
      --focus="$f" ${skip:+--skip="$skip"} \
      "$K8S_E2E_BIN/e2e.test" -- \
      --kubeconfig="$K8S_ADMIN_KUBECONFIG" --provider=skeleton \
      --dns-domain="$K8S_CLUSTER_DOMAIN" --report-dir="$logdir" \
      --e2e-output-dir="$logdir" --allowed-not-ready-nodes=0 \
      --system-pods-startup-timeout=2m \
    2>&1 | tee "$logdir/e2e.log" | progress_e2e || rc=$?
  local secs=$((SECONDS - t0))
  [ -f "$logdir/junit_01.xml" ] || k8s_die "the run wrote no JUnit report (exit $rc); log: $logdir/e2e.log"
  echo "duration: $((secs / 60)) min $((secs % 60)) s" >> "$report/facts.txt"
  summarize --junit "$logdir/junit_01.xml" --focus "$f" --junit-out "$report/junit.xml" --skips "$skipfile"
}

# progress_e2e: ginkgo's output reduced to one line per finished test.
progress_e2e() {
  local n=0 line
  while IFS= read -r line; do
    case "$line" in
      *"[PASSED]"*|*"[FAILED]"*|*"[SKIPPED]"*|*"[TIMEDOUT]"*|*"[PANICKED]"*|*"[INTERRUPTED]"*) n=$((n + 1)); printf '  %4d %s\n' "$n" "${line:0:200}" ;;
      "Ran "*" of "*" Specs"*|"FAIL!"*|"SUCCESS!"*|*"Test Suite Failed"*|*"Test Suite Passed"*) printf '  %s\n' "$line" ;;
    esac
  done
}

# The features ebmesh declares to Gateway API's suite (conformance/gateway-features.txt).
gateway_features() { entries "$REPO/conformance/gateway-features.txt" | awk '{print $1}' | paste -sd, -; }

# run_gateway: Gateway API's suite, mesh profiles, bounded; its report YAML kept.
run_gateway() {
  bash "$REPO/scripts/k8s/build-gateway.sh"
  k8s_say "building and importing the echo images"
  import_images "${GW_IMAGES[@]}"
  mkdir -p "$report" "$logdir"
  run_facts > "$report/facts.txt"
  local version skip features
  version="$(git -C "$REPO" describe --tags --always 2>/dev/null || git -C "$REPO" rev-parse --short HEAD)"
  skip="$(entries "$REPO/conformance/gateway-skip.txt" | sed 's/ -- .*//' | paste -sd, -)"
  features="$(gateway_features)"
  {
    echo "suite: sigs.k8s.io/gateway-api $GATEWAY_API_VERSION conformance, profiles MESH-HTTP and MESH-GRPC; echo app: Istio's (istio.io/istio $ISTIO_ECHO_VERSION)"
    echo "supported features: $features"
    echo "skip: gateway-skip.txt ($(entry_count "$REPO/conformance/gateway-skip.txt") entries)"
  } >> "$report/facts.txt"
  k8s_say "running Gateway API $GATEWAY_API_VERSION conformance (MESH-HTTP, MESH-GRPC), at most $timeout_min min; log: $logdir/gotest.json"
  local t0=$SECONDS rc=0
  # The suite's own flags (conformance/utils/flags); the client finds the
  # cluster through KUBECONFIG. test2json turns -test.v into JSON lines.
  KUBECONFIG="$K8S_ADMIN_KUBECONFIG" timeout --kill-after=60 "$((timeout_min + 5))m" \
    "$GATEWAY_CONFORMANCE_BIN/conformance.test" -test.v -test.timeout="${timeout_min}m" \
      ${focus:+-test.run="$focus"} \
      --conformance-profiles=MESH-HTTP,MESH-GRPC \
      --supported-features="$features" \
      ${skip:+--skip-tests="$skip"} \
      --organization=ebmesh --project=ebmesh --url=https://github.com/ebmesh/ebmesh \
      --version="$version" --contact=https://github.com/ebmesh/ebmesh/issues \
      --mode=default --report-output="$logdir/report.yaml" --cleanup-base-resources=true \
    2>&1 | go tool test2json -p gateway-api-conformance | tee "$logdir/gotest.json" | progress_gotest || rc=$?
  local secs=$((SECONDS - t0))
  [ -f "$logdir/report.yaml" ] && cp "$logdir/report.yaml" "$report/conformance-report.yaml" \
    || k8s_say "the suite wrote no conformance report (exit $rc)"
  # The tests' verdicts without their output (the log stays in $logdir).
  node -e 'for (const l of require("node:fs").readFileSync(process.argv[1], "utf8").split("\n")) { try { const e = JSON.parse(l); if (e.Test && ["pass","fail","skip"].includes(e.Action)) console.log(JSON.stringify({Test: e.Test, Action: e.Action, Elapsed: e.Elapsed})); } catch {} }' \
    "$logdir/gotest.json" > "$report/results.json"
  echo "duration: $((secs / 60)) min $((secs % 60)) s" >> "$report/facts.txt"
  summarize --gotest "$logdir/gotest.json" --skips "$REPO/conformance/gateway-skip.txt"
}

# progress_gotest: test2json lines reduced to one line per finished test.
progress_gotest() {
  node -e '
    const rl = require("node:readline").createInterface({ input: process.stdin });
    let n = 0;
    rl.on("line", (l) => { try { const e = JSON.parse(l);
      if (e.Test && ["pass","fail","skip"].includes(e.Action)) console.log(`  ${String(++n).padStart(4)} ${e.Action.toUpperCase()} ${e.Test} (${e.Elapsed ?? 0} s)`);
    } catch {} });'
}

# run_cyclonus: cyclonus `generate` (its default tags, or --focus TAGS),
# bounded; its JUnit report kept.
run_cyclonus() {
  bash "$REPO/scripts/k8s/build-cyclonus.sh"
  bash "$REPO/scripts/k8s/build-e2e.sh"
  k8s_say "building and importing the agnhost image"
  import_images pause e2e_agnhost
  # cyclonus names agnhost 2.43 (under --image-registry); the e2e suite's
  # agnhost, built here from the same module at the cluster's version, has
  # the same `connect` and `serve-hostname` commands: it serves under that name.
  local cyclonus_ref="$E2E_REGISTRY/agnhost:2.43"
  _ctr -n k8s.io images tag --force "$IMG_REF" "$cyclonus_ref" >/dev/null
  mkdir -p "$report" "$logdir"
  run_facts > "$report/facts.txt"
  {
    echo "suite: cyclonus $CYCLONUS_VERSION generate ($CYCLONUS_BIN/cyclonus); servers on ports 80 and 81, TCP and UDP; loopback ignored; probe timeout 3 s; agnhost: $IMG_REF as $cyclonus_ref"
    echo "tags: ${focus:-the defaults of cyclonus}"
  } >> "$report/facts.txt"
  k8s_say "running cyclonus $CYCLONUS_VERSION: tags ${focus:-(its defaults)}, at most $timeout_min min; log: $logdir/cyclonus.log"
  local t0=$SECONDS rc=0
  # SCTP: ebmesh judges TCP and UDP only (netpol-skip.txt): no SCTP servers,
  # and the SCTP cases excluded beside cyclonus's own default exclusions.
  # --ignore-loopback: a pod reaching itself (through its own Service) is
  # always allowed by ebmesh, a choice the spec leaves open
  # (docs/networkpolicy.md). A probe waits 3 s, not 10: every pod is on
  # this node, and a denied probe would otherwise hold a case for minutes.
  # The registry's host part is what cyclonus puts before
  # e2e-test-images/agnhost:2.43.
  ( cd "$logdir" && KUBECONFIG="$K8S_ADMIN_KUBECONFIG" timeout --kill-after=60 "${timeout_min}m" \
    "$CYCLONUS_BIN/cyclonus" generate --image-registry "${E2E_REGISTRY%/e2e-test-images}" \
      --server-protocol TCP,UDP ${focus:+--include "$focus"} \
      --exclude sctp,multi-peer,upstream-e2e,example,end-port,namespaces-by-default-label \
      --ignore-loopback --job-timeout-seconds 3 \
      --junit-results-file "$logdir/junit.xml" --cleanup-namespaces ) \
    > "$logdir/cyclonus.log" 2>&1 || rc=$?
  local secs=$((SECONDS - t0))
  grep -E '^(testing [0-9]+ cases|finished policy|- [a-z-]+: [0-9]+$)' "$logdir/cyclonus.log" | sed 's/^/  /' || true
  [ -f "$logdir/junit.xml" ] || k8s_die "cyclonus wrote no JUnit report (exit $rc); log: $logdir/cyclonus.log"
  cp "$logdir/junit.xml" "$report/junit.xml"
  # Each case and, per step, how many of its probes (pod pair, port,
  # protocol) came out as the policy says; the full tables stay in the log.
  grep -E '^(evaluating test case:|Discrepancy found:|[0-9]+ wrong, )' "$logdir/cyclonus.log" > "$report/steps.txt" || true
  echo "duration: $((secs / 60)) min $((secs % 60)) s" >> "$report/facts.txt"
  summarize --junit "$logdir/junit.xml" --skips "$REPO/conformance/netpol-skip.txt"
}

summarize() {
  local tally
  node "$REPO/scripts/conformance/summarize.mjs" "$@" --title "$suite conformance run $stamp" --facts "$report/facts.txt" \
    > "$report/summary.md" 2> "$logdir/tally" || k8s_die "summarize failed: $(cat "$logdir/tally")"
  tally="$(tail -n 1 "$logdir/tally")"
  k8s_say "report: ${report#"$REPO"/}/summary.md"
  # The plain closing line: N passed, N failed, N skipped.
  echo "$suite: $tally"
}

cluster_check
case "$suite" in
  k8s)
    run_e2e "Kubernetes $K8S_VERSION e2e, sig-network conformance" '\[sig-network\].*\[Conformance\]' "$REPO/conformance/k8s-skip.txt" ;;
  netpol)
    run_e2e "Kubernetes $K8S_VERSION e2e, NetworkPolicy (Netpol)" '\[sig-network\] Netpol' "$REPO/conformance/netpol-skip.txt" ;;
  gateway)
    run_gateway ;;
  cyclonus)
    run_cyclonus ;;
esac
