#!/usr/bin/env bash
# Start a real Redmine (Debian's packages, SQLite) on 127.0.0.1 for tests/test_dest_redmine.py.
#   source <(bash tests/servers/redmine-setup.sh [port])   # exports the two variables
# Needs root (apt-get). Stop it with: kill "$(cat /tmp/faxflow-redmine.pid)"
set -euo pipefail
port="${1:-3123}"
if [ ! -d /usr/share/redmine ]; then
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q redmine redmine-sqlite thin >&2
fi
cd /usr/share/redmine
# Enable the REST API, make sure a project exists, print the admin's API key.
key=$(RAILS_ENV=production X_DEBIAN_SITEID=default bin/rails runner '
Setting.rest_api_enabled = "1"
Project.find_by(identifier: "faxflow") || Project.create!(name: "Faxflow",
  identifier: "faxflow", is_public: true, tracker_ids: Tracker.pluck(:id))
puts User.find_by(login: "admin").api_key' 2>/dev/null | tail -1)
RAILS_ENV=production X_DEBIAN_SITEID=default setsid bin/rails server -b 127.0.0.1 \
    -p "$port" -e production >/tmp/faxflow-redmine.log 2>&1 &
echo $! >/tmp/faxflow-redmine.pid
for _ in $(seq 1 120); do
    if curl -fs -o /dev/null -H "X-Redmine-API-Key: $key" \
        "http://127.0.0.1:$port/projects.json"; then
        echo "export FAXFLOW_TEST_REDMINE_URL=http://127.0.0.1:$port"
        echo "export FAXFLOW_TEST_REDMINE_KEY=$key"
        exit 0
    fi
    sleep 1
done
echo "redmine did not start; see /tmp/faxflow-redmine.log" >&2
exit 1
