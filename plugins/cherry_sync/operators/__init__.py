"""Airflow operators: thin units of work that build hooks and the store and call the sync engine."""

from cherry_sync.operators.practice import (
    ApplyEventsOperator,
    ProvisionCustomFieldsOperator,
    SyncPatientsOperator,
)

__all__ = ["ApplyEventsOperator", "ProvisionCustomFieldsOperator", "SyncPatientsOperator"]
