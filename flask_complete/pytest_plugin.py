"""pytest plugin: the test database, per-test isolation and fixtures."""
