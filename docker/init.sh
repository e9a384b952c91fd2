#!/usr/bin/env bash
# airflow-init (docker-compose.yml): everything that must be true before the other Airflow components start.
# Idempotent, so it runs on every `docker compose up`; any failure stops the deployment (the other Airflow
# services wait for this one to complete successfully).
set -euo pipefail

bin_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
include_dir="${CHERRY_SYNC_INCLUDE_DIR:-/opt/airflow/include}"

echo "== Airflow $(airflow version)"

echo "== metadata database: migrate"
airflow db migrate

echo "== pools from ${include_dir}/pools.json"
airflow pools import "${include_dir}/pools.json"

echo "== registry, shared secrets and connections"
python "${bin_dir}/preflight.py"

echo "== UI login (SimpleAuthManager)"
# The api-server reads users from [core] simple_auth_manager_users and their passwords from this file.
: "${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE:?must be set (docker-compose.yml)}"
: "${CHERRY_SYNC_ADMIN_PASSWORD:?set CHERRY_SYNC_ADMIN_PASSWORD in .env}"
if [[ "${CHERRY_SYNC_ADMIN_PASSWORD}" == change-me* ]]; then
  echo "error: CHERRY_SYNC_ADMIN_PASSWORD is still the .env.example placeholder" >&2
  exit 1
fi
python - <<'PY'
import json, os
path = os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
users = [entry.split(":")[0] for entry in os.environ.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin").split(",")]
tmp = path + ".tmp"
# Created 0600 (not chmod-ed after writing): the password is never readable by others, even for a moment.
fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
os.fchmod(fd, 0o600)  # a stale tmp file keeps its old mode through O_CREAT
with os.fdopen(fd, "w") as handle:
    json.dump({user: os.environ["CHERRY_SYNC_ADMIN_PASSWORD"] for user in users}, handle)
os.replace(tmp, path)
print(f"passwords written for: {', '.join(users)}")
PY

echo "== airflow-init done"
