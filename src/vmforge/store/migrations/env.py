"""Alembic environment: vmforge passes its own connection in ``config.attributes``."""

from alembic import context

from vmforge.store.models import Base
import vmforge.store.artifact_models  # noqa: F401,E402  (registers the artifact tables on Base.metadata)
import vmforge.store.identity_models  # noqa: F401,E402  (service principals, role assignments)
import vmforge.store.tenancy_models  # noqa: F401,E402  (resource groups, managed identities, custom roles)
import vmforge.store.lineage_models  # noqa: F401,E402  (artifact lineage and revocation)

connection = context.config.attributes.get("connection")
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
