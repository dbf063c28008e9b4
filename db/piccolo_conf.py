"""Piccolo's configuration module, used only by the migration machinery.

``db.migrate`` sets ``PICCOLO_CONF=db.piccolo_conf`` and ``BLENDTUNE_DATABASE_URL`` before
Piccolo imports this; the running app binds its own engine (``db.engine``).
"""

import os

from piccolo.conf.apps import AppRegistry

from db.engine import create_engine

DB = create_engine(os.environ.get("BLENDTUNE_DATABASE_URL", ""))
APP_REGISTRY = AppRegistry(apps=["db.piccolo_app"])
