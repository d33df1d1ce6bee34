"""Alembic's environment for the gateway's store: revisions run on a connection the caller
opens (`forecast_gateway.store.database.Database.upgrade`), never from an alembic.ini."""

from alembic import context

from forecast_gateway.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
