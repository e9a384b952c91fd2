"""The media import: Cherry marketing assets into each practice's CRM media library.

Plain Python, testable without Airflow: `sources` (Cherry API, asset folder), `content_types` (what the media
library takes), `folders` (the `Cherry/<category>` folders), and one practice's run: `importer` orchestrates the
`planner` (what to upload, skip or retire), the `uploader` (downloads and the write window of uploads), the
`reconciler` (the upload ledger against the CRM) and the `catalogue` (what the run learned, recorded). The
Airflow side is `cherry_sync.operators.media.MediaImportOperator` and `dags/cherry_media_import.py`; see
docs/media-import.md.
"""
