"""Storage adapter: schema, engine set-up, migrations. SQL lives here and in the service's queries."""
