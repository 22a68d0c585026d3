"""`rnnlab studio`: serve the studio's page for models, word vectors and training runs.

Everything named on the command line is loaded (and every bad path refused) before the
server starts; the page reaches each by its folder or file name, never by a path. The server
listens on 127.0.0.1 unless told otherwise; another address needs --allow-remote and then a
random token that every request must carry, printed in the URL as Jupyter does.
"""

from __future__ import annotations

import argparse
import ipaddress
import secrets
import socket
import webbrowser
from pathlib import Path

from rnnlab.cli.lm import MODEL_HELP
from rnnlab.errors import RnnlabError
from rnnlab.outputs import folder_kind


def _names(paths: list[str]) -> dict[str, str]:
    """Each path under its last component's name, a suffix -2, -3... where names repeat."""
    names: dict[str, str] = {}
    for path in paths:
        base = Path(path).resolve().name or "model"
        name, n = base, 1
        while name in names:
            n += 1
            name = f"{base}-{n}"
        names[name] = path
    return names


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _listen(host: str, port: int) -> socket.socket:
    """A socket bound to host:port, so a busy port is one line before anything starts."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as e:
        raise RnnlabError(f"cannot listen on {host}:{port} ({e.strerror or e})") from None
    return sock


def _allowed_hosts(host: str) -> set[str]:
    """The names a browser may use for this server: loopback names, --host, and for a
    wildcard address the machine's own names and addresses."""
    from rnnlab.studio.security import LOOPBACK_NAMES

    names = {*LOOPBACK_NAMES, host}
    if host in ("0.0.0.0", "::"):
        hostname = socket.gethostname()
        names |= {hostname, socket.getfqdn()}
        try:
            names |= set(socket.gethostbyname_ex(hostname)[2])
        except OSError:
            pass  # a host name that does not resolve: its addresses cannot be used anyway
    return names


def model_paths(given: list[str]) -> list[str]:
    """The models to open: those named (ready-made names included), else every ready-made
    language model, so that a new user sees something at once."""
    import sys

    from rnnlab.ready import ready_models, resolve

    if given:
        return [str(resolve(m, lambda note: print(note, file=sys.stderr))) for m in given]
    shipped = [str(m.path) for m in ready_models() if m.card.get("kind") == "language model"]
    if not shipped:
        raise RnnlabError("name a model folder or training run to open: rnnlab studio MODEL_DIR")
    return shipped


def vector_paths(given: list[str], ready: bool) -> list[str]:
    """The word vectors to open: those named (ready-made names included), else with `ready`
    every ready-made set."""
    import sys

    from rnnlab.ready import ready_models, resolve

    if given:
        return [str(resolve(v, lambda note: print(note, file=sys.stderr))) for v in given]
    return [str(m.path) for m in ready_models() if ready and m.card.get("kind") == "word vectors"]


def run_studio(args: argparse.Namespace) -> None:
    bare = not args.models and not args.vectors  # no argument: everything ready-made
    args.models = model_paths(args.models)
    args.vectors = vector_paths(args.vectors, bare)
    if not _is_loopback(args.host) and not args.allow_remote:
        raise RnnlabError(f"--host {args.host} lets other machines reach the studio; add "
                          f"--allow-remote to confirm (it then needs the printed token)")
    try:
        import uvicorn

        from rnnlab.studio.app import create_app
    except ImportError:
        raise RnnlabError("the studio needs starlette and uvicorn: pip install 'rnnlab[studio]'") from None
    from rnnlab.cli.vectors import print_warning
    from rnnlab.lm import LM
    from rnnlab.word2vec.vectors import WordVectors

    models = {name: LM.load(path) for name, path in _names(args.models).items()}
    vectors = {name: WordVectors.load(path, on_warning=print_warning)
               for name, path in _names(args.vectors).items()}
    run_paths = list(dict.fromkeys(  # a run given both ways is served once
        str(Path(p).resolve())
        for p in [*args.runs, *(m for m in args.models if folder_kind_of(m) == "training-run")]))
    runs = {}
    for name, path in _names(run_paths).items():
        if folder_kind_of(path) != "training-run":
            raise RnnlabError(f"{path}: not a training run's folder (no metrics.jsonl, best/ or last/)")
        runs[name] = Path(path).resolve()
    token = None if _is_loopback(args.host) else secrets.token_urlsafe(24)
    sock = _listen(args.host, args.port)
    port = sock.getsockname()[1]
    shown = socket.gethostname() if args.host in ("0.0.0.0", "::") else args.host
    shown = f"[{shown}]" if ":" in shown else shown
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    app = create_app(models, vectors, runs, token=token, allowed_hosts=_allowed_hosts(args.host))
    print(f"rnnlab studio: {len(models)} model(s), {len(vectors)} vector file(s), "
          f"{len(runs)} run(s) at {url}  (Ctrl-C stops)", flush=True)
    if args.open:
        webbrowser.open(url)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass  # uvicorn has shut down already and passes Ctrl-C on: stopping is what it asked
    print("rnnlab studio: stopped")


def folder_kind_of(path: str) -> str | None:
    """The kind of rnnlab folder `path` is, or None for a file, a missing path or another folder."""
    return folder_kind(path) if Path(path).is_dir() else None


def register(subparsers) -> None:
    """Add the studio subcommand."""
    p = subparsers.add_parser(
        "studio", help="a local web page to watch a language model read and write",
        description="Serve a web page on which language models write text token by token (each "
                    "token's distribution shown, a click branches from another candidate), read "
                    "text (a heat map of each unit's h, C and gates), score it, show how far back "
                    "each prediction reaches (Memory: the gradient over earlier tokens, model "
                    "beside model), follow a training run (Training) and explore word vectors "
                    "(Vectors: neighbours, analogies, a PCA or t-SNE map; exports for the "
                    "Embedding Projector and LSTMVis). With no argument it opens the ready-made "
                    "models and vectors (rnnlab models). The page's address names the view: "
                    "http://127.0.0.1:8000/#memory. Needs the 'studio' extra: "
                    "pip install 'rnnlab[studio]'.")
    p.add_argument("models", metavar="MODEL_OR_RUN_DIR", nargs="*", help=MODEL_HELP)
    p.add_argument("--vectors", metavar="FILE", action="append", default=[],
                   help="word vectors (a file, folder or ready-made name) to query on the page "
                        "(repeat for several)")
    p.add_argument("--run", dest="runs", metavar="DIR", action="append", default=[],
                   help="a training run whose metrics to show (model arguments that are runs "
                        "are added by themselves)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--allow-remote", action="store_true",
                   help="allow a --host other machines can reach; every request then needs "
                        "the random token printed in the URL")
    p.add_argument("--open", action="store_true", help="open the page in a web browser")
    p.set_defaults(func=run_studio)
