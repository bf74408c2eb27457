"""Redis: every key (keys.py), the Lua scripts (lua/) and their typed entries (scripts.py), URLs and clock."""
