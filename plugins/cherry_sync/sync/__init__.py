"""The sync engine: orchestrates hooks, domain rules and the store for one practice. No Airflow here."""
