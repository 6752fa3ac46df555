"""Browsing a ledger in Datasette, with metadata that explains it.

The metadata (titles, column descriptions, hidden counter tables, canned
queries) ships as rsr/metadata.yml and is attached to the ledger's database
name at start; the plugin in rsr/datasette_plugin/ adds the run summary, a
prompt's page with its rollouts side by side and the export picks, and cut
texts in tables. Datasette opens the file read-only, so browsing is safe while a
sampler writes.
"""

import asyncio
import copy
import os
from importlib import resources
from pathlib import Path

import yaml

from .db import open_db

PLUGIN_NAME = "rsr.datasette_plugin"


def load_metadata(db_name) -> dict:
    "rsr/metadata.yml with its database section named for this ledger."
    metadata = yaml.safe_load(resources.files("rsr").joinpath("metadata.yml").read_text())
    metadata = copy.deepcopy(metadata)
    metadata["databases"] = {db_name: metadata["databases"].pop("ledger")}
    return metadata


def register_plugin():
    "Register rsr's Datasette plugin once."
    from datasette.plugins import pm

    from . import datasette_plugin

    if not pm.is_registered(datasette_plugin):
        pm.register(datasette_plugin, name=PLUGIN_NAME)


def make_datasette(db_path):
    "A Datasette instance for one ledger (checked to be an rsr ledger first)."
    from datasette.app import Datasette

    open_db(db_path, readonly=True).close()
    register_plugin()
    metadata = load_metadata(Path(db_path).stem)
    if not os.access(Path(db_path).absolute().parent, os.W_OK):
        # Read-only media: SQLite cannot create the -shm file a WAL reader needs,
        # so open the ledger as immutable (nothing can write it there anyway).
        return Datasette(immutables=[str(db_path)], metadata=metadata)
    return Datasette([str(db_path)], metadata=metadata)


def database_url(db_path, host="127.0.0.1", port=8001) -> str:
    "Where the ledger's own page (the run summary) is served."
    from datasette.utils import tilde_encode

    return f"http://{host}:{port}/{tilde_encode(Path(db_path).stem)}"


def serve(db_path, host="127.0.0.1", port=8001, on_start=None):
    "Serve the ledger until interrupted; on_start() is called once it is checked."
    import uvicorn

    datasette = make_datasette(db_path)
    if on_start is not None:
        on_start()
    asyncio.run(datasette.invoke_startup())
    uvicorn.run(datasette.app(), host=host, port=port, log_level="warning", lifespan="on")
