"""Agent and operator tokens: the model (model.py), the Redis store (store.py) and the CLI (cli.py)."""
