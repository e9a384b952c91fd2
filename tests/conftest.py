"""Shared pytest set-up. Fixtures live in tests/fixtures/ by subject and are loaded as plugins here."""

pytest_plugins = [
    "tests.fixtures.sandboxes",
    "tests.fixtures.databases",
]
