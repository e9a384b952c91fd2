"""Cherry Sync: Airflow pipelines that keep Aesthetix CRM (HighLevel) in step with Cherry patient financing."""
