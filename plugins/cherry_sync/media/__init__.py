"""The media import (issue 6): Cherry marketing assets into each practice's CRM media library.

Plain Python, testable without Airflow: `sources` (Cherry API, asset folder), `content_types` (what the media
library takes), `folders` (the `Cherry/<category>` folders), `importer` (one practice's run). The Airflow side is
`cherry_sync.operators.media.MediaImportOperator` and `dags/cherry_media_import.py`; see docs/media-import.md.
"""
