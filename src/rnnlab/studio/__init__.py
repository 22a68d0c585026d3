"""`rnnlab studio`: a local web page in which a language model reads and writes.

`app.create_app` builds the Starlette application from models, word vectors and training runs
loaded beforehand and reachable only by the names given to them; `security` keeps the server
to its own user; `generation` streams sampled tokens with the distribution each came from.
Starlette and uvicorn come with the `studio` extra, so nothing here is imported by the rest of
rnnlab.
"""
