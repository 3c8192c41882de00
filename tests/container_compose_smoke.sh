# Runs inside the built image (sh, as the image's user): compose.yaml's worker service, three
# replicas, with the image's own /etc/faxflow/faxflow.toml and the environment compose gives
# (secrets as *_FILE, the PostgreSQL password through PGPASSWORD_FILE), against a simulator
# topic with $FAXES faxes and the test's PostgreSQL on the host. Every fax must be filed once.
# Replicas share this network namespace here (compose gives each its own), so each gets its
# own health port and spool folder; the rest of the config is used as shipped.
set -eu
dir=/tmp/compose
out=/var/lib/faxflow/out
mkdir -p "$dir"
printf 'demo-password\n' >"$dir/retarus_password"

export RETARUS_BASE_URL="http://127.0.0.1:$SIM_PORT/faxin/rest/v1"
export RETARUS_USERNAME=99999 RETARUS_TOPIC=demo
export RETARUS_PASSWORD_FILE="$dir/retarus_password"

faxflow simulator --port "$SIM_PORT" --user 99999:demo-password --topic demo=99999 \
    --samples "$FAXES" >"$dir/sim.log" 2>&1 &
sim=$!

fail() {
    echo "COMPOSE SMOKE FAILED: $*" >&2
    for n in 1 2 3; do echo "--- worker $n" >&2; cat "$dir/worker$n.log" >&2 || true; done
    kill $pids "$sim" 2>/dev/null || true
    exit 1
}

pids=""
set -- $HEALTH_PORTS
for n in 1 2 3; do
    port=$1; shift
    sed -e "s|listen = \"0.0.0.0:8000\"|listen = \"127.0.0.1:$port\"|" \
        -e "s|spool_dir = \"/var/lib/faxflow/spool\"|spool_dir = \"/var/lib/faxflow/spool/w$n\"|" \
        /etc/faxflow/faxflow.toml >"$dir/faxflow$n.toml"
    grep -q "127.0.0.1:$port" "$dir/faxflow$n.toml" || fail "the shipped config changed its listen line"
    /usr/bin/tini -- /usr/local/bin/faxflow-entrypoint run -c "$dir/faxflow$n.toml" \
        >"$dir/worker$n.log" 2>&1 &
    pids="$pids $!"
done

i=0
until [ "$(find "$out" -name '*.json' | wc -l)" -ge "$FAXES" ]; do
    for pid in $pids; do kill -0 "$pid" 2>/dev/null || fail "a worker exited"; done
    i=$((i + 1)); [ $i -lt 240 ] || fail "$FAXES faxes not filed in 240 s"; sleep 1
done
sleep 3  # a duplicate delivery would show up now
sidecars=$(find "$out" -name '*.json' | wc -l)
[ "$sidecars" -eq "$FAXES" ] || fail "$sidecars sidecars for $FAXES faxes: delivered twice"
echo "filed: $sidecars of $FAXES faxes, each once"

# compose's worker healthcheck (/readyz: pulling and the PostgreSQL journal writable)
for port in $HEALTH_PORTS; do
    python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/readyz', timeout=4)" \
        || fail "/readyz on port $port is not 200"
done
echo "all three replicas ready"

for pid in $pids; do kill -TERM "$pid"; done
for pid in $pids; do
    code=0; wait "$pid" || code=$?
    [ "$code" -eq 0 ] || fail "a worker exited $code on SIGTERM"
done
for n in 1 2 3; do
    if grep -q Traceback "$dir/worker$n.log"; then fail "traceback in worker $n's log"; fi
    if grep -qF "$LEAK_CHECK" "$dir/worker$n.log"; then fail "worker $n logged the password"; fi
done
kill "$sim" 2>/dev/null || true
echo "three replicas stopped cleanly"
