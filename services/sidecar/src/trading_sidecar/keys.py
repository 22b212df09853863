"""``trading-sidecar-keys`` (``make keys``): CURVE certificates for the sidecar and publishers.

Writes zmq.auth's certificate files (what ``zmq.auth.create_certificates`` writes, and
what the sidecar and the publisher read) into one folder, laid out by who gets what::

    keys/server.key_secret            sidecar:   TT_SIDECAR_CURVE_SECRET_KEY_FILE
    keys/server.key                   publisher: TT_PUBLISHER_CURVE_SERVER_KEY_FILE
    keys/clients/<name>.key           sidecar:   TT_SIDECAR_CURVE_CLIENTS_DIR (public keys only)
    keys/publishers/<name>.key_secret publisher: TT_PUBLISHER_CURVE_SECRET_KEY_FILE

The clients folder holds public keys only, so it can be mounted into the sidecar without
handing it any publisher's secret. An existing server key is kept unless ``--rotate-server``
is given (a new server key means every publisher needs the new ``server.key``); an
existing client is never overwritten. Adding a client to a running system is therefore
``trading-sidecar-keys --client NAME`` plus copying ``clients/NAME.key`` to the sidecar.
Secret files are written readable by their owner only.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import zmq.auth
from telemetry_contract.cli import new_parser

SERVER = "server"
CLIENTS = "clients"
PUBLISHERS = "publishers"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def _create(folder: Path, name: str) -> tuple[Path, Path]:
    """A fresh pair ``name.key`` / ``name.key_secret`` in ``folder``, secret mode 0600.

    Written in a private temporary folder first and moved in, so a reader never sees a
    half-written certificate and the secret is never world-readable, not even briefly.
    """
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".new-") as scratch:
        public, secret = zmq.auth.create_certificates(scratch, name)
        Path(secret).chmod(0o600)
        public_path, secret_path = folder / f"{name}.key", folder / f"{name}.key_secret"
        shutil.move(public, public_path)
        shutil.move(secret, secret_path)
    return public_path, secret_path


def generate(out: Path, clients: Sequence[str], *, rotate_server: bool = False) -> list[str]:
    """Create what is missing under ``out``; returns one line per file written."""
    for name in clients:
        if not _NAME.match(name) or name == SERVER:
            raise ValueError(f"client name {name!r}: use letters, digits, . _ - (not 'server')")
    written: list[str] = []
    if rotate_server or not (out / f"{SERVER}.key_secret").exists():
        public, secret = _create(out, SERVER)
        written += [f"server secret  {secret}", f"server public  {public}"]
    for name in clients:
        secret_path = out / PUBLISHERS / f"{name}.key_secret"
        if secret_path.exists():
            continue
        public, secret = _create(out / PUBLISHERS, name)
        (out / CLIENTS).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(public, out / CLIENTS / f"{name}.key")
        public.unlink()  # the publisher's own folder keeps only its secret certificate
        written += [f"client secret  {secret}", f"client public  {out / CLIENTS / f'{name}.key'}"]
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = new_parser(
        "trading-sidecar-keys",
        "Generate CURVE certificates for the sidecar and its publishers (zmq.auth format).\n"
        "Existing keys are kept. The sidecar reads TT_SIDECAR_CURVE_*, publishers\n"
        "TT_PUBLISHER_CURVE_*; docs/operations.md says which file goes where.",
        "trading-sidecar",
    )
    parser.add_argument("--out", type=Path, default=Path("keys"), help="folder (default ./keys)")
    parser.add_argument(
        "--client",
        action="append",
        dest="clients",
        metavar="NAME",
        help="a publisher to create a key pair for; repeatable (default: publisher)",
        default=None,
    )
    parser.add_argument(
        "--rotate-server",
        action="store_true",
        help="replace the server key pair (every publisher then needs the new server.key)",
    )
    args = parser.parse_args(argv)
    try:
        written = generate(
            args.out, args.clients or ["publisher"], rotate_server=args.rotate_server
        )
    except (ValueError, OSError) as exc:
        print(f"trading-sidecar-keys: {exc}", file=sys.stderr)
        return 2
    for line in written or ["nothing to do: every requested key exists"]:
        print(line)
    out = args.out
    print(
        "\nsidecar:   TT_SIDECAR_CURVE_SECRET_KEY_FILE="
        f"{out / 'server.key_secret'} TT_SIDECAR_CURVE_CLIENTS_DIR={out / CLIENTS}"
        f"\npublisher: TT_PUBLISHER_CURVE_SERVER_KEY_FILE={out / 'server.key'} "
        f"TT_PUBLISHER_CURVE_SECRET_KEY_FILE={out / PUBLISHERS}/<name>.key_secret"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
