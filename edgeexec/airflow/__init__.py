"""What runs inside Airflow: the executor, its Redis dispatcher, task logs, the logging config and the plugin.

Everything here imports Airflow; nothing outside this package (but the shims at the public paths) does.
"""
