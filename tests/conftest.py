"""Shared pytest set-up. Fixtures live in tests/fixtures/ by subject and are loaded as plugins here."""

pytest_plugins = [
    "tests.fixtures.cherry_sandbox",
    "tests.fixtures.crm_sandbox",
    "tests.fixtures.databases",
    "tests.fixtures.sandbox_env",
    "tests.fixtures.smtp",
]
