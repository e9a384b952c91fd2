"""API hooks: one per service, driven by an Airflow connection."""
