"""The "Cherry Patients" smart list: segment tags on CRM contacts, kept exact and current.

Plain Python over the store and the CRM hook, testable without Airflow:
- `segments`: the segments defined once (their rules, evaluated in SQL by the store and in Python), and their
  tags per practice;
- the store (`SyncStore.smart_list_changes`) computes membership and the diff in SQL;
- `push`: bulk tag additions and removals, falling back to one call per contact for a batch the CRM refuses;
- `verify`: the CRM's Account Status / Active Balance columns and the product's tags against the store;
- `export`: the engineers' CSV (opaque ids and segment flags);
- `run.update_smart_list`: one practice, end to end.

Nothing is imported here: the store imports `segments`, and `run` imports the store.
"""
