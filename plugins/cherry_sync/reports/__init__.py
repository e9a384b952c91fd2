"""The monthly Cherry metrics email: plain Python, no Airflow, testable on its own.

- `window`: which 90 local days a report covers, and the 90 before them;
- `figures`: the report's figures from Cherry's reporting metrics and the sync store (pandas, exact money);
- `chart`: the weekly payment volume chart (matplotlib, Agg);
- `render`: HTML (Jinja2 + css-inline) and plain-text bodies from the packaged templates (`cherry_sync/templates/`);
- `send`: the MIME message (text + HTML + inline chart) and its delivery through an Airflow SMTP connection;
- `run`: one practice's report end to end, with the send ledger that makes it go out once.
"""
