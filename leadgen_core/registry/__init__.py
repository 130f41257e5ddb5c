"""The registry beside acra/: loading staged rows (CSV or API), the set-based companies upsert, and the
background upsert jobs."""
