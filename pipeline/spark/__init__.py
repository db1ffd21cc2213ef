"""The Spark engine (issue 14): DuckDB on every shard, Spark for the distribution.

Optional: needs the `spark` extra (`pip install 'omneo-bulk[spark]'`) and Java 17. Nothing in
the default engine imports this package.
"""
