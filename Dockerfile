# Cherry Sync's image for every service of docker-compose.yml that runs Python: the Airflow components and
# the API sandboxes. Airflow's own image, plus exactly the pinned runtime set (requirements.txt: no test tool) and
# the cherry_sync package itself.
#
# The "slim" variant of the official image: Airflow core with a minimal set of providers, so the installed
# set is requirements.txt (celery, postgres, http, smtp, standard, ...) rather than the 50-odd providers of
# the full image, whose own dependencies our pins could break. Same release as requirements.txt's
# apache-airflow pin (tests/deploy/test_compose.py checks both agree).
FROM apache/airflow:slim-3.3.2-python3.11

USER root
# Writable places the compose file mounts named volumes on (a new named volume copies this ownership).
RUN mkdir -p /opt/airflow/auth /opt/cherry-sync/bin /opt/cherry-sync/output \
    && chown -R airflow:0 /opt/airflow/auth /opt/cherry-sync \
    && chmod -R g+rwX /opt/airflow/auth /opt/cherry-sync
USER airflow

# requirements.txt pins every runtime package (apache-airflow==3.3.2 included; the test tools are in
# requirements-dev.txt, not here); installing it as its own constraint means nothing unpinned can slip in.
COPY --chown=airflow:0 requirements.txt /opt/cherry-sync/requirements.txt
RUN pip install --no-cache-dir \
        -r /opt/cherry-sync/requirements.txt \
        --constraint /opt/cherry-sync/requirements.txt \
    && python -c "import airflow, airflow.providers.celery, airflow.providers.smtp, \
psycopg2, redis, fastapi, uvicorn; assert airflow.__version__ == '3.3.2', airflow.__version__"

# The package (its code, email templates, migrations and the provider entry point that registers the `cherry` and
# `aesthetix_crm` connection types), without dependencies: they are the pins above.
COPY --chown=airflow:0 pyproject.toml /opt/cherry-sync/src/pyproject.toml
COPY --chown=airflow:0 plugins/cherry_sync /opt/cherry-sync/src/plugins/cherry_sync
RUN pip install --no-cache-dir --no-deps /opt/cherry-sync/src \
    && python -c "from airflow.providers_manager import ProvidersManager as P; hooks = P().hooks; \
assert 'cherry-sync' in P().providers and {'cherry', 'aesthetix_crm'} <= set(hooks), 'provider not registered'"

# The two Airflow plugins the api-server serves (the webhook receiver and the Cherry Sync operations page): thin
# modules over the installed package, in the image's plugins folder.
COPY --chown=airflow:0 plugins/cherry_sync_webhooks.py plugins/cherry_sync_ops.py /opt/airflow/plugins/

# Deployment helpers of airflow-init (docker/init.sh, docker/preflight.py). DAGs, include/ and sandbox/ are mounted
# by docker-compose.yml, not baked in; the package is (a code change is a `docker compose build`).
COPY --chown=airflow:0 docker/init.sh docker/preflight.py /opt/cherry-sync/bin/
