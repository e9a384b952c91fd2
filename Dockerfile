# Cherry Sync's image for every service of docker-compose.yml that runs Python: the Airflow components and
# the API sandboxes. Airflow's own image, plus exactly the pinned requirements.txt the test suite runs on.
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

# requirements.txt pins every package (apache-airflow==3.3.2 included); installing it as its own
# constraint means nothing unpinned can slip in.
COPY --chown=airflow:0 requirements.txt /opt/cherry-sync/requirements.txt
RUN pip install --no-cache-dir \
        -r /opt/cherry-sync/requirements.txt \
        --constraint /opt/cherry-sync/requirements.txt \
    && python -c "import airflow, airflow.providers.celery, airflow.providers.http, airflow.providers.smtp, \
psycopg2, redis, fastapi, uvicorn; assert airflow.__version__ == '3.3.2', airflow.__version__"

# Deployment helpers of airflow-init (docker/init.sh, docker/preflight.py). DAGs, plugins, include/ and sandbox/ are
# mounted by docker-compose.yml, not baked in.
COPY --chown=airflow:0 docker/init.sh docker/preflight.py /opt/cherry-sync/bin/
