# Runs inside the built image (sh, as the image's user), called by container_build.sh with
# SIM_PORT, HEALTH_PORT, HEALTHCHECK_JSON (the image's HEALTHCHECK test) and
# RETARUS_PASSWORD_FILE set. The simulator serves three sample faxes; the worker, started
# exactly as ENTRYPOINT starts it, must OCR and file them, pass the image's HEALTHCHECK, and
# exit 0 on SIGTERM sent to tini.
set -eu
dir=/tmp/smoke
mkdir -p "$dir/out"
printf 'smoke-password\n' >"$dir/password"
cat >"$dir/faxflow.toml" <<EOF
[retarus]
base_url = "http://127.0.0.1:$SIM_PORT/faxin/rest/v1"
username = "99999"
password = "\${RETARUS_PASSWORD}"
topics = ["smoke"]
[worker]
spool_dir = "$dir/spool"
quarantine_dir = "$dir/quarantine"
poll_interval_max = 1
reload = false
[journal]
path = "$dir/journal.sqlite"
[health]
listen = "127.0.0.1:$HEALTH_PORT"
[plugins.ocr]
languages = "deu+eng"
[plugins.folder]
base = "$dir/out"
[plugins.rules.default]
[[plugins.rules.default.route]]
type = "folder"
EOF

fail() {
    echo "SMOKE FAILED: $*" >&2
    echo "--- worker log" >&2; cat "$dir/worker.log" >&2 || true
    echo "--- simulator log" >&2; tail -20 "$dir/sim.log" >&2 || true
    kill "$sim" "$worker" 2>/dev/null || true
    exit 1
}
healthcheck() {  # the image's HEALTHCHECK command, as docker would run it
    FAXFLOW_HEALTH_URL="http://127.0.0.1:$HEALTH_PORT/healthz" python3 -c '
import json, os, subprocess, sys
test = json.loads(os.environ["HEALTHCHECK_JSON"])
assert test[0] == "CMD", test
sys.exit(subprocess.call(test[1:], stderr=subprocess.DEVNULL))'
}
count() { find "$dir/out" -name "$1" | wc -l; }

faxflow simulator --port "$SIM_PORT" --user 99999:smoke-password --topic smoke=99999 \
    --samples 3 >"$dir/sim.log" 2>&1 &
sim=$!
/usr/bin/tini -- /usr/local/bin/faxflow-entrypoint run -c "$dir/faxflow.toml" \
    >"$dir/worker.log" 2>&1 &
worker=$!

i=0
until healthcheck; do
    kill -0 "$worker" 2>/dev/null || fail "the worker exited"
    i=$((i + 1)); [ $i -lt 60 ] || fail "HEALTHCHECK never passed"; sleep 1
done
echo "HEALTHCHECK passes"
i=0
until [ "$(count '*.json')" -ge 3 ]; do
    kill -0 "$worker" 2>/dev/null || fail "the worker exited"
    i=$((i + 1)); [ $i -lt 180 ] || fail "3 faxes not delivered in 180 s"; sleep 1
done
# The simulator's samples read "Sample fax N of 3 for topic smoke": tesseract + poppler ran.
python3 - "$dir/out" <<'PY' || fail "the OCR text is not in the sidecars"
import json, pathlib, sys
texts = [json.loads(p.read_text()).get("text", "") for p in pathlib.Path(sys.argv[1]).rglob("*.json")]
print("OCR text:", [t.strip()[:40] for t in texts])
sys.exit(0 if len(texts) == 3 and all("Sample fax" in t for t in texts) else 1)
PY
echo "delivered: $(count '*.json') sidecar(s), $(count '*.pdf') pdf(s)"

kill -TERM "$worker"
code=0
wait "$worker" || code=$?
[ "$code" -eq 0 ] || fail "worker exited $code on SIGTERM"
if healthcheck; then fail "HEALTHCHECK still passes with the worker stopped"; fi
grep -q Traceback "$dir/worker.log" && fail "traceback in the worker log"
kill "$sim" 2>/dev/null || true
echo "graceful stop on SIGTERM; HEALTHCHECK fails once stopped"
