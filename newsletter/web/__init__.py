"""Web parts of the tool: the staff preview server (`newsletter preview`).

Each server lives in its own module and imports Starlette, uvicorn and watchfiles itself, so the
rest of the tool starts without them.
"""
