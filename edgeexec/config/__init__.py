"""Settings: one typed object per component, read from Airflow config, environment and flags (lookup.py),
and the generated reference page (doc.py)."""
