"""`cherry_onboard` follows the house policy of every DAG (tests/dags/test_dag_integrity.py) and keeps the
authorization code out of what Airflow renders."""

from __future__ import annotations

from tests.dags.test_dag_integrity import dagbag, test_dag_policy  # noqa: F401 - `dagbag` is the fixture

DAG_ID = "cherry_onboard"


def test_onboard_dag_follows_the_policy(dagbag):  # noqa: F811
    test_dag_policy(dagbag, DAG_ID)


def test_the_form_masks_the_code_and_no_task_templates_it(dagbag):  # noqa: F811
    dag = dagbag.dags[DAG_ID]
    assert dag.schedule is None  # manual only
    code = dag.params.get_param("authorization_code")
    assert code.value is None and code.schema["format"] == "password"  # the trigger form's masked input
    assert dag.params.get_param("check_cherry_keys").value is True
    for task in dag.tasks:
        for name in task.template_fields:
            assert "authorization_code" not in repr(getattr(task, name, None)), (task.task_id, name)
    assert {t.task_id for t in dag.tasks} == {
        "exchange_authorization_code",
        "onboarding_report",
        "summarize",
        "fail_run_if_a_practice_failed",
    }
    for task_id in ("exchange_authorization_code", "onboarding_report"):
        assert dag.get_task(task_id).pool == "cherry_sync_refresh"
