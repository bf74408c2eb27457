"""The gateway: a Starlette app (app.create_app) holding the agents' WebSockets; all state lives in Redis."""
