"""
### cherry_media_import — Cherry's marketing assets into each practice's CRM media library

**When:** daily at 10:00 UTC (early morning in US practices), one run at a time. Can be triggered by hand for
chosen practices, with a dry run that lists what would be uploaded.

**Where they land:** Marketing > Media, folder `Cherry`, one subfolder per category (Seasonal, Holiday,
Promotions, Social, Email...). Folders are looked up by name before being created, and remembered.

**Sources:** the practice's Cherry marketing assets, and optionally an asset folder (an object-storage URI such
as `file:///data/cherry-assets`, `s3://aws_default@bucket/assets` or `gs://google_cloud_default@bucket/assets`)
whose first-level folders are the categories. Default: the `CHERRY_SYNC_ASSET_FOLDER` environment variable of
the DAG processor, else none.

**Rules:** each content (sha256) is uploaded once per practice, as `<name>-<sha256[:8]>.<ext>`: a re-run uploads
nothing, a changed asset is uploaded as a new file, a renamed one is not uploaded again. Assets deleted at the
source stay in the CRM and are recorded as retired. Files over 25 MB, of a type the media library does not take,
or whose bytes do not match their checksum or type are rejected with a reason (`rejected_records`, entity
`asset`); the rest go on. Each upload is recorded as soon as the CRM confirms it, so a killed task re-uploads
nothing. See docs/media-import.md.

**Tasks:** `select_practices`, then `import_media` per batch of practices (mapped; docs/scale.md), then
`summarize` (totals from the run ledger: read = listed, created = uploaded, updated = new versions).
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import DAG, Param

from cherry_sync.dag_support import (
    MEDIA_IMPORT_BUDGET,
    MEDIA_POOL,
    PRACTICE_LABEL,
    dry_run_param,
    fail_run_if_a_practice_failed,
    failure,
    practices_param,
    practices_per_task_param,
    runbook,
    select_practices,
    summarize,
)
from cherry_sync.operators.media import MediaImportOperator
from cherry_sync.reasons import ReasonCode

with DAG(
    dag_id="cherry_media_import",
    description="Cherry marketing assets into each practice's CRM media library (daily)",
    doc_md=runbook(
        __doc__,
        failure(
            ReasonCode.ASSET_FOLDER_UNAVAILABLE,
            action="The asset folder cannot be read (wrong URI, missing, not a folder, no access): fix the "
            "`asset_folder` param or `CHERRY_SYNC_ASSET_FOLDER`; nothing was uploaded.",
            where="the URI's storage connection (e.g. `aws_default`)",
        ),
    ),
    schedule="0 10 * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,  # params reach the operators typed (booleans, integers, None)
    default_args=MEDIA_IMPORT_BUDGET.default_args(),
    dagrun_timeout=MEDIA_IMPORT_BUDGET.dagrun_timeout,
    tags=["cherry-sync", "media"],
    params={
        "practices": practices_param(),
        "practices_per_task": practices_per_task_param(),
        "dry_run": dry_run_param("the assets that would be uploaded (name, category, size) and the rejects"),
        "asset_folder": Param(
            os.environ.get("CHERRY_SYNC_ASSET_FOLDER", ""),
            type="string",
            title="Asset folder",
            description=(
                "Optional folder of asset files, one subfolder per category: file:///path, "
                "s3://<conn_id>@bucket/prefix, gs://<conn_id>@bucket/prefix. Empty: Cherry's assets only."
            ),
        ),
    },
) as dag:
    imports = MediaImportOperator.partial(
        task_id="import_media",
        dry_run="{{ params.dry_run }}",
        asset_folder="{{ params.asset_folder }}",
        map_index_template=PRACTICE_LABEL,
        pool=MEDIA_POOL,
    ).expand(batch=select_practices())
    imports >> [summarize(), fail_run_if_a_practice_failed()]
