"""The web board (`kanban serve`): pages, live updates, the JSON API, and who may use them.

`app` builds the ASGI application for one board, `pages` and `api` answer requests through
`actions` (the CLI's board functions), `live` pushes board changes as server-sent events,
`security` decides who may ask and refuses forged requests, `html` writes every page with its
text escaped, `server` listens and runs it. The stylesheet and the script are in ``static/``,
shipped in the package: no build step, no CDN.
"""
