"""The Spark engine's tests (a package, so that its conftest is not the `conftest` the other tests import)."""
